/**
 * What IAF and MAF share: K steps, each an elementwise transform of its input
 * whose shift and scale come from a MADE of that input (and of an optional
 * context). The ordering is reversed between steps (Kingma et al. 2016;
 * Papamakarios et al. 2017); it is done by alternating the MADE orderings
 * (natural, reversed, natural, …), which is the same family of maps up to a
 * relabeling of the output coordinates and moves no data.
 *
 * The forward direction is one MADE pass per step; the inverse needs D
 * sequential passes per step (after pass p, the p first coordinates in the
 * ordering are exact), so it exists but is D times slower.
 */
import type { Backend } from '../backend/backend';
import type { Activation } from '../backend/kernels/elementwise';
import { resolveBackend } from '../backend';
import type { BackendName, FloatArray } from '../backend/types';
import { FlowVaeError, expected, rangeError, typeError } from '../errors';
import { MADE } from '../nn/made';
import { prefixParameters, type Parameter } from '../nn/parameter';
import { checkArray, checkPositiveInt, checkSize } from '../validate';
import { Workspace, type Flow, type FlowCallOptions, type FlowForwardResult, type FlowGradients, type FlowInverseResult } from './flow';

export interface AutoregressiveFlowOptions {
  dim: number;
  /** Number of steps K (default 1). */
  layers?: number;
  /** MADE hidden widths (default [4·dim]). */
  hidden?: readonly number[];
  /** Width of the context input (default 0: unconditional). */
  contextDim?: number;
  /** MADE activation (default 'elu'). */
  activation?: Activation;
  /** MADE hidden degrees (default 'random' as in Germain et al.). */
  hiddenDegrees?: 'random' | 'cyclic';
  seed?: number;
  backend?: Backend | BackendName;
}

/** The elementwise step of a family, on the backend's autoregressive kernels. */
export interface StepKernels {
  forward(x: FloatArray, ms: FloatArray, y: FloatArray, logDet: FloatArray, batch: number, dim: number): void;
  backward(x: FloatArray, ms: FloatArray, dy: FloatArray, dLogDet: FloatArray, dx: FloatArray, dms: FloatArray, batch: number, dim: number): void;
  inverse(y: FloatArray, ms: FloatArray, x: FloatArray, logDet: FloatArray, batch: number, dim: number): void;
}

export abstract class AutoregressiveFlow implements Flow {
  abstract readonly kind: string;
  readonly dim: number;
  readonly backend: Backend;
  readonly amortizedSize = 0;
  readonly contextDim: number;
  readonly layers: number;
  readonly hidden: readonly number[];
  readonly mades: readonly MADE[];
  /** MADE outputs per input dimension (2 for IAF/MAF: m and s/α). */
  readonly outputsPerDim: number;
  protected readonly ws: Workspace;
  private inputs: FloatArray[] = [];
  private batch = 0;

  protected constructor(options: AutoregressiveFlowOptions, lastInitScale: number, outputsPerDim = 2) {
    if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
    this.dim = checkPositiveInt(options.dim, 'dim');
    this.layers = checkPositiveInt(options.layers ?? 1, 'layers');
    const hidden = options.hidden ?? [4 * this.dim];
    if (!Array.isArray(hidden)) throw typeError(expected('array of positive integers', 'hidden', hidden));
    this.hidden = hidden.map((h, i) => checkPositiveInt(h, `hidden[${i}]`));
    this.contextDim = checkSize(options.contextDim ?? 0, 'contextDim');
    const seed = checkSize(options.seed ?? 0, 'seed');
    this.backend = resolveBackend(options.backend);
    this.outputsPerDim = outputsPerDim;
    const mades: MADE[] = [];
    for (let k = 0; k < this.layers; k++) {
      mades.push(
        new MADE(this.backend, {
          dim: this.dim,
          hidden: this.hidden,
          contextDim: this.contextDim,
          ordering: k % 2 === 0 ? 'natural' : 'reversed',
          hiddenDegrees: options.hiddenDegrees,
          activation: options.activation,
          seed: seed + 1009 * k,
          lastInitScale,
          outputsPerDim,
        }),
      );
    }
    this.mades = mades;
    this.ws = new Workspace(this.backend);
  }

  protected abstract get step(): StepKernels;

  parameters(): Parameter[] {
    return this.mades.flatMap((m, k) => prefixParameters(String(k), m.parameters()));
  }

  private contextOf(batch: number, options: FlowCallOptions | undefined): FloatArray | null {
    checkPositiveInt(batch, 'batch');
    if (this.contextDim === 0) return null;
    return checkArray(options?.context, 'context', batch * this.contextDim);
  }

  forward(x: FloatArray, batch: number, options?: FlowCallOptions): FlowForwardResult {
    const context = this.contextOf(batch, options);
    checkArray(x, 'x', batch * this.dim);
    const n = batch * this.dim;
    const logDet = this.ws.get('logDet', batch);
    const stepLogDet = this.ws.get('stepLogDet', batch);
    logDet.fill(0);
    let h = x;
    for (let k = 0; k < this.layers; k++) {
      this.inputs[k] = h;
      const ms = this.mades[k].forward(h, batch, context);
      const y = this.ws.get(`y.${k}`, n);
      this.step.forward(h, ms, y, stepLogDet, batch, this.dim);
      for (let r = 0; r < batch; r++) logDet[r] += stepLogDet[r];
      h = y;
    }
    this.batch = batch;
    return { y: h, logDet };
  }

  inverse(y: FloatArray, batch: number, options?: FlowCallOptions): FlowInverseResult {
    const context = this.contextOf(batch, options);
    checkArray(y, 'y', batch * this.dim);
    const n = batch * this.dim;
    const logDet = this.ws.get('inverseLogDet', batch);
    const stepLogDet = this.ws.get('stepLogDet', batch);
    logDet.fill(0);
    // Two buffers: the target of the step being inverted and its solution.
    // Pass p solves the coordinates of degree p + 1 exactly (their MADE inputs
    // are all solved by then); only those are taken from the step's output.
    // The others keep their finite starting values: an unsolved coordinate
    // computed from garbage can overflow, and ∞ times a masked (zero) weight
    // is NaN, which would spread into coordinates already solved.
    const solved = this.ws.get('inverseSolved', n);
    let target = y;
    for (let k = this.layers - 1; k >= 0; k--) {
      const x = this.ws.get(`inverse.${k % 2}`, n);
      x.set(target);
      const degrees = this.mades[k].degrees;
      for (let pass = 0; pass < this.dim; pass++) {
        const ms = this.mades[k].forward(x, batch, context);
        this.step.inverse(target, ms, solved, stepLogDet, batch, this.dim);
        for (let i = 0; i < this.dim; i++) {
          if (degrees[i] !== pass + 1) continue;
          for (let r = 0; r < batch; r++) x[r * this.dim + i] = solved[r * this.dim + i];
        }
      }
      for (let r = 0; r < batch; r++) logDet[r] += stepLogDet[r];
      target = x;
    }
    const bad: number[] = [];
    for (let r = 0; r < batch && bad.length < 10; r++) {
      let finite = Number.isFinite(logDet[r]);
      for (let i = 0; finite && i < this.dim; i++) finite = Number.isFinite(target[r * this.dim + i]);
      if (!finite) bad.push(r);
    }
    if (bad.length > 0) {
      throw new FlowVaeError(
        'ERR_NOT_CONVERGED',
        `The ${this.kind} inverse has no finite solution for row${bad.length > 1 ? 's' : ''} ${bad.join(', ')}${bad.length === 10 ? ', …' : ''} ` +
          `of "y" (a coordinate overflows: the input is outside what the flow maps to)`,
      );
    }
    // The passes ran the MADEs on intermediate values: backward needs a new forward.
    this.batch = 0;
    return { x: target, logDet };
  }

  backward(gradOutput: FloatArray, gradLogDet: FloatArray): FlowGradients {
    const batch = this.batch;
    if (batch === 0) throw rangeError(`${this.kind} backward called before forward`);
    const n = batch * this.dim;
    checkArray(gradOutput, 'gradOutput', n);
    checkArray(gradLogDet, 'gradLogDet', batch);
    const dms = this.ws.get('dms', this.outputsPerDim * n);
    const gradContext = this.contextDim > 0 ? this.ws.get('gradContext', batch * this.contextDim) : null;
    gradContext?.fill(0);
    let g = gradOutput;
    for (let k = this.layers - 1; k >= 0; k--) {
      const made = this.mades[k];
      const dx = this.ws.get(`dx.${k % 2}`, n);
      // MADE outputs were kept by the MADE itself (its output layer's buffer).
      const ms = made.layers[made.layers.length - 1].output;
      this.step.backward(this.inputs[k], ms, g, gradLogDet, dx, dms, batch, this.dim);
      made.backward(dms, dx, gradContext);
      g = dx;
    }
    return { gradInput: g, gradParams: null, gradContext };
  }
}
