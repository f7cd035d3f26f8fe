/**
 * Coupling flows (NICE: Dinh et al. 2015; RealNVP: Dinh et al. 2017) and the
 * plug-in point for other elementwise coupling transforms (e.g. the
 * rational-quadratic splines of Durkan et al. 2019).
 *
 * One coupling layer splits each row of x `[batch, dim]` into two halves by
 * position: first = columns [0, ⌊dim/2⌋), second = [⌊dim/2⌋, dim) (so with
 * odd dim the second half is one wider). One half (x_a) passes through
 * unchanged and, with the optional context, feeds an MLP conditioner; the
 * other half (x_b) goes through an invertible elementwise transform whose
 * parameters are the conditioner's output:
 *
 *   h = MLP([x_a, context]),   y_a = x_a,   y_b = T(x_b; h),
 *   log|det ∂y/∂x| = Σ_j log|∂T_j/∂x_bj|   (triangular Jacobian).
 *
 * Stacks alternate which half is transformed (layer k transforms the second
 * half when k is even, the first when odd: 1-D alternation, no checkerboard),
 * so every coordinate is transformed after two layers. The conditioner's last
 * layer starts at zero, so with a transform that is the identity at h = 0
 * (additive, affine) each coupling starts at the identity.
 *
 * ## Plugging in a transform: the `CouplingTransform` interface
 *
 * A transform acts on the `width` columns [offset, offset + width) of full
 * `[batch, dim]` rows (row stride `dim`), reading and writing them in place
 * (no gathered copies). CouplingFlow
 *   - builds it once from `{ width, backend, seed }` through the factory given
 *     in `CouplingFlowOptions.transform`;
 *   - sizes the conditioner output as `[batch, paramsPerDim · width]` (the
 *     layout inside a row is the transform's own: affine uses [ŝ | t]);
 *   - before `forward`/`inverse`, copies the whole input into the output, so
 *     the transform only writes its own columns of `y` (resp. `x`);
 *   - before `backward`, copies dy into dx, so the transform only writes its
 *     own columns of `dx`; `dh` it overwrites entirely; gradients of its own
 *     parameters (from `parameters()`) it accumulates;
 *   - sums nothing for it: `logDet` `[batch]` is overwritten by the transform
 *     with this layer's log|det| (forward) or its negative (inverse).
 * Arrays it is given belong to CouplingFlow and must not be kept. Its own
 * parameters are listed under the coupling layer's name (e.g. `3.scale`).
 */
import type { Backend } from '../backend/backend';
import { ACTIVATIONS, type Activation } from '../backend/kernels/elementwise';
import { resolveBackend } from '../backend';
import type { BackendName, FloatArray } from '../backend/types';
import { expected, rangeError, typeError } from '../errors';
import { MLP } from '../nn/mlp';
import { createParameter, prefixParameters, type NamedBuffer, type Parameter } from '../nn/parameter';
import { checkArray, checkOneOf, checkPositiveInt, checkSize } from '../validate';
import { Workspace, type Flow, type FlowCallOptions, type FlowForwardResult, type FlowGradients, type FlowInverseResult } from './flow';
import { FlowSequence } from './sequence';

/** An invertible elementwise transform of x_b, parametrized per row by the conditioner output h. */
export interface CouplingTransform {
  /** Short name, e.g. `affine`, `additive`, `spline`. */
  readonly kind: string;
  /** Number of transformed columns. */
  readonly width: number;
  /** Conditioner outputs per transformed column: h is `[batch, paramsPerDim · width]`. */
  readonly paramsPerDim: number;
  /** The transform's own parameters (not produced by the conditioner); may be empty. */
  parameters(): Parameter[];
  /**
   * Optional: adjusts the conditioner's last-layer bias `[paramsPerDim · width]`
   * (zero when called, as are its weights) so the layer starts where the
   * transform wants, e.g. at the identity for a parametrization that is not
   * the identity at h = 0.
   */
  initConditionerBias?(bias: FloatArray): void;
  /**
   * Writes columns [offset, offset + width) of `y` from the same columns of
   * `x`, and `logDet` `[batch]` (overwritten) = Σ log|∂y_b/∂x_b| per row.
   */
  forward(x: FloatArray, h: FloatArray, y: FloatArray, logDet: FloatArray, batch: number, dim: number, offset: number): void;
  /**
   * The exact inverse: columns [offset, offset + width) of `x` from the same
   * columns of `y`, and `logDet` (overwritten) = log|det ∂x_b/∂y_b| per row.
   */
  inverse(y: FloatArray, h: FloatArray, x: FloatArray, logDet: FloatArray, batch: number, dim: number, offset: number): void;
  /**
   * Given the forward's input `x` and `h`, `dy = ∂L/∂y` `[batch, dim]` and
   * `dLogDet = ∂L/∂logDet` `[batch]`: writes columns [offset, offset + width)
   * of `dx`, all of `dh` `[batch, paramsPerDim · width]`, and accumulates the
   * gradients of its own parameters.
   */
  backward(x: FloatArray, h: FloatArray, dy: FloatArray, dLogDet: FloatArray, dx: FloatArray, dh: FloatArray, batch: number, dim: number, offset: number): void;
}

/** What a transform factory is given when a coupling layer builds its transform. */
export interface CouplingTransformSpec {
  /** Number of transformed columns. */
  width: number;
  backend: Backend;
  /** Seed for any random initialization of the transform's own parameters. */
  seed: number;
}

export type CouplingTransformFactory = (spec: CouplingTransformSpec) => CouplingTransform;

/** Which half a coupling layer transforms (the other conditions it). */
export type CouplingHalf = 'first' | 'second';

export interface CouplingFlowOptions {
  /** Row width; at least 2 (a coupling needs a half to condition on). */
  dim: number;
  transform: CouplingTransformFactory;
  /** The half that is transformed (default 'second': the first half conditions the second). */
  transformed?: CouplingHalf;
  /** Conditioner hidden widths (default `defaultCouplingHidden(dim)`). */
  hidden?: readonly number[];
  /** Conditioner activation (default 'relu', as in NICE and RealNVP). */
  activation?: Activation;
  /** Width of the context input (default 0: unconditional). */
  contextDim?: number;
  seed?: number;
  backend?: Backend | BackendName;
}

/** Default conditioner: two hidden layers of width clamp(4·dim, 32, 256). */
export function defaultCouplingHidden(dim: number): number[] {
  const width = Math.min(256, Math.max(32, 4 * dim));
  return [width, width];
}

/** Column ranges of a coupling layer: transformed [offset, offset + width), conditioning [condOffset, condOffset + condWidth). */
export function couplingSplit(dim: number, transformed: CouplingHalf) {
  const half = Math.floor(dim / 2);
  return transformed === 'second'
    ? { offset: half, width: dim - half, condOffset: 0, condWidth: half }
    : { offset: 0, width: half, condOffset: half, condWidth: dim - half };
}

function checkHidden(value: unknown, dim: number): number[] {
  const hidden = value ?? defaultCouplingHidden(dim);
  if (!Array.isArray(hidden)) throw typeError(expected('array of positive integers', 'hidden', hidden));
  return hidden.map((h, i) => checkPositiveInt(h, `hidden[${i}]`));
}

function checkCouplingDim(value: unknown): number {
  const dim = checkPositiveInt(value, 'dim');
  if (dim < 2) throw rangeError(expected('integer ≥ 2 (a coupling layer conditions one half on the other)', 'dim', dim));
  return dim;
}

/** One coupling layer: y_a = x_a, y_b = T(x_b; MLP([x_a, context])). */
export class CouplingFlow implements Flow {
  readonly kind: string;
  readonly dim: number;
  readonly backend: Backend;
  readonly amortizedSize = 0;
  readonly contextDim: number;
  readonly transformed: CouplingHalf;
  readonly transform: CouplingTransform;
  readonly conditioner: MLP;
  /** Transformed columns [offset, offset + width); conditioning columns [condOffset, condOffset + condWidth). */
  readonly offset: number;
  readonly width: number;
  readonly condOffset: number;
  readonly condWidth: number;
  private readonly ws: Workspace;
  private input: FloatArray | null = null;
  private h: FloatArray | null = null;
  private batch = 0;

  constructor(options: CouplingFlowOptions) {
    if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
    this.dim = checkCouplingDim(options.dim);
    if (typeof options.transform !== 'function') throw typeError(expected('transform factory function', 'transform', options.transform));
    this.transformed = checkOneOf(options.transformed ?? 'second', 'transformed', ['first', 'second'] as const);
    const hidden = checkHidden(options.hidden, this.dim);
    const activation = checkOneOf(options.activation ?? 'relu', 'activation', ACTIVATIONS);
    this.contextDim = checkSize(options.contextDim ?? 0, 'contextDim');
    const seed = checkSize(options.seed ?? 0, 'seed');
    this.backend = resolveBackend(options.backend);
    const split = couplingSplit(this.dim, this.transformed);
    this.offset = split.offset;
    this.width = split.width;
    this.condOffset = split.condOffset;
    this.condWidth = split.condWidth;

    this.transform = options.transform({ width: this.width, backend: this.backend, seed: seed + 104729 });
    if (this.transform.width !== this.width) {
      throw rangeError(expected(`transform of width ${this.width}`, 'transform.width', this.transform.width), 'ERR_SHAPE');
    }
    checkPositiveInt(this.transform.paramsPerDim, 'transform.paramsPerDim');
    this.kind = `coupling-${this.transform.kind}`;
    this.conditioner = new MLP(this.backend, {
      sizes: [this.condWidth + this.contextDim, ...hidden, this.transform.paramsPerDim * this.width],
      activation,
      seed,
      // Zero last layer: h = 0 at the start, the identity for additive and affine.
      lastInitScale: 0,
    });
    const last = this.conditioner.layers[this.conditioner.layers.length - 1];
    if (this.transform.initConditionerBias && last.bias) this.transform.initConditionerBias(last.bias.value);
    this.ws = new Workspace(this.backend);
  }

  parameters(): Parameter[] {
    return [...prefixParameters('conditioner', this.conditioner.parameters()), ...this.transform.parameters()];
  }

  private contextOf(batch: number, options: FlowCallOptions | undefined): FloatArray | null {
    checkPositiveInt(batch, 'batch');
    if (this.contextDim === 0) return null;
    return checkArray(options?.context, 'context', batch * this.contextDim);
  }

  /** Runs the conditioner on [x_a, context] of `rows` (x in forward, y in inverse: y_a = x_a). */
  private condition(rows: FloatArray, context: FloatArray | null, batch: number): FloatArray {
    const input = this.ws.get('conditionerInput', batch * (this.condWidth + this.contextDim));
    this.backend.coupling.gather(rows, context, input, batch, this.dim, this.condOffset, this.condWidth, this.contextDim);
    return this.conditioner.forward(input, batch);
  }

  forward(x: FloatArray, batch: number, options?: FlowCallOptions): FlowForwardResult {
    const context = this.contextOf(batch, options);
    checkArray(x, 'x', batch * this.dim);
    const h = this.condition(x, context, batch);
    const y = this.ws.get('y', batch * this.dim);
    const logDet = this.ws.get('logDet', batch);
    y.set(x);
    this.transform.forward(x, h, y, logDet, batch, this.dim, this.offset);
    this.input = x;
    this.h = h;
    this.batch = batch;
    return { y, logDet };
  }

  inverse(y: FloatArray, batch: number, options?: FlowCallOptions): FlowInverseResult {
    const context = this.contextOf(batch, options);
    checkArray(y, 'y', batch * this.dim);
    const h = this.condition(y, context, batch);
    const x = this.ws.get('x', batch * this.dim);
    const logDet = this.ws.get('inverseLogDet', batch);
    x.set(y);
    this.transform.inverse(y, h, x, logDet, batch, this.dim, this.offset);
    // The conditioner now holds the inverse's activations: backward needs a new forward.
    this.batch = 0;
    return { x, logDet };
  }

  backward(gradOutput: FloatArray, gradLogDet: FloatArray): FlowGradients {
    const batch = this.batch;
    if (batch === 0) throw rangeError(`${this.kind} backward called before forward`);
    checkArray(gradOutput, 'gradOutput', batch * this.dim);
    checkArray(gradLogDet, 'gradLogDet', batch);
    const dx = this.ws.get('dx', batch * this.dim);
    const dh = this.ws.get('dh', batch * this.transform.paramsPerDim * this.width);
    dx.set(gradOutput);
    this.transform.backward(this.input!, this.h!, gradOutput, gradLogDet, dx, dh, batch, this.dim, this.offset);
    const dIn = this.conditioner.backward(dh, true)!;
    const gradContext = this.contextDim > 0 ? this.ws.get('gradContext', batch * this.contextDim) : null;
    gradContext?.fill(0);
    this.backend.coupling.scatterAdd(dIn, dx, gradContext, batch, this.dim, this.condOffset, this.condWidth, this.contextDim);
    return { gradInput: dx, gradParams: null, gradContext };
  }
}

/**
 * RealNVP's affine transform: h = [ŝ | t] per row,
 *   s = scale ⊙ tanh(ŝ),  y_b = x_b ⊙ exp(s) + t,  log|det| = Σ s,
 * with `scale` `[width]` a learned bound on |s| (initially 1), which keeps
 * exp(s) in a safe range early in training.
 */
export class AffineCouplingTransform implements CouplingTransform {
  readonly kind = 'affine';
  readonly paramsPerDim = 2;
  readonly width: number;
  readonly scale: Parameter;
  private readonly backend: Backend;

  constructor({ width, backend }: CouplingTransformSpec) {
    this.width = checkPositiveInt(width, 'width');
    this.backend = backend;
    this.scale = createParameter(backend, 'scale', [width]);
    this.scale.value.fill(1);
  }

  parameters(): Parameter[] {
    return [this.scale];
  }

  forward(x: FloatArray, h: FloatArray, y: FloatArray, logDet: FloatArray, batch: number, dim: number, offset: number): void {
    this.backend.coupling.affineForward(x, h, this.scale.value, y, logDet, batch, dim, offset, this.width);
  }

  inverse(y: FloatArray, h: FloatArray, x: FloatArray, logDet: FloatArray, batch: number, dim: number, offset: number): void {
    this.backend.coupling.affineInverse(y, h, this.scale.value, x, logDet, batch, dim, offset, this.width);
  }

  backward(
    x: FloatArray,
    h: FloatArray,
    dy: FloatArray,
    dLogDet: FloatArray,
    dx: FloatArray,
    dh: FloatArray,
    batch: number,
    dim: number,
    offset: number,
  ): void {
    this.backend.coupling.affineBackward(x, h, this.scale.value, dy, dLogDet, dx, dh, this.scale.grad, batch, dim, offset, this.width);
  }
}

/** NICE's additive transform: h = m per row, y_b = x_b + m, log|det| = 0. */
export class AdditiveCouplingTransform implements CouplingTransform {
  readonly kind = 'additive';
  readonly paramsPerDim = 1;
  readonly width: number;
  private readonly backend: Backend;

  constructor({ width, backend }: CouplingTransformSpec) {
    this.width = checkPositiveInt(width, 'width');
    this.backend = backend;
  }

  parameters(): Parameter[] {
    return [];
  }

  forward(x: FloatArray, h: FloatArray, y: FloatArray, logDet: FloatArray, batch: number, dim: number, offset: number): void {
    this.backend.coupling.additiveForward(x, h, y, batch, dim, offset, this.width);
    logDet.fill(0);
  }

  inverse(y: FloatArray, h: FloatArray, x: FloatArray, logDet: FloatArray, batch: number, dim: number, offset: number): void {
    this.backend.coupling.additiveInverse(y, h, x, batch, dim, offset, this.width);
    logDet.fill(0);
  }

  backward(
    _x: FloatArray,
    _h: FloatArray,
    dy: FloatArray,
    _dLogDet: FloatArray,
    dx: FloatArray,
    dh: FloatArray,
    batch: number,
    dim: number,
    offset: number,
  ): void {
    this.backend.coupling.additiveBackward(dy, dx, dh, batch, dim, offset, this.width);
  }
}

export interface CouplingStackOptions {
  dim: number;
  /** Number of coupling layers (default 2, so every coordinate is transformed once). */
  layers?: number;
  hidden?: readonly number[];
  activation?: Activation;
  contextDim?: number;
  seed?: number;
  backend?: Backend | BackendName;
}

/**
 * K coupling layers with the given transform, alternating the transformed
 * half (second, first, second, …). Layer k's seed is `seed + 7907·k`.
 */
export function alternatingCouplings(options: CouplingStackOptions, transform: CouplingTransformFactory): CouplingFlow[] {
  if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
  const layers = checkPositiveInt(options.layers ?? 2, 'layers');
  const seed = checkSize(options.seed ?? 0, 'seed');
  const flows: CouplingFlow[] = [];
  for (let k = 0; k < layers; k++) {
    flows.push(
      new CouplingFlow({
        dim: options.dim,
        transform,
        transformed: k % 2 === 0 ? 'second' : 'first',
        hidden: options.hidden,
        activation: options.activation,
        contextDim: options.contextDim,
        seed: seed + 7907 * k,
        backend: options.backend,
      }),
    );
  }
  return flows;
}

/**
 * A named sequence of flows (a coupling stack as one Flow with its own
 * `kind`): members run in order, log-dets summed, context shared, parameters
 * named `<index>.<member parameter>`.
 */
export class CouplingStack implements Flow {
  readonly kind: string;
  readonly dim: number;
  readonly backend: Backend;
  readonly amortizedSize = 0;
  readonly contextDim: number;
  readonly sequence: FlowSequence;

  constructor(kind: string, flows: readonly Flow[]) {
    this.kind = kind;
    this.sequence = new FlowSequence(flows);
    this.dim = this.sequence.dim;
    this.backend = this.sequence.backend;
    this.contextDim = this.sequence.contextDim;
  }

  get flows(): readonly Flow[] {
    return this.sequence.flows;
  }

  parameters(): Parameter[] {
    return this.sequence.parameters();
  }

  buffers(): NamedBuffer[] {
    return this.sequence.buffers();
  }

  forward(x: FloatArray, batch: number, options?: FlowCallOptions): FlowForwardResult {
    return this.sequence.forward(x, batch, options);
  }

  inverse(y: FloatArray, batch: number, options?: FlowCallOptions): FlowInverseResult {
    return this.sequence.inverse(y, batch, options);
  }

  backward(gradOutput: FloatArray, gradLogDet: FloatArray): FlowGradients {
    return this.sequence.backward(gradOutput, gradLogDet);
  }
}
