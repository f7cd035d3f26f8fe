/**
 * What the planar and radial flows share: a stack of K identical layers whose
 * whole forward, backward and inverse each run as one kernel call, with
 * parameters either shared (named, owned by the module) or amortized (one
 * set per example, passed in `options.params`, gradients returned).
 *
 * Shared parameters live in one flat array laid out as the kernels expect
 * (`[K·P]`, the named parameters one after another); the named Parameter
 * objects are views into it, so optimizers and checkpoints see
 * `u`/`w`/`b` (or `z0`/`alpha`/`beta`) with their own shapes.
 */
import type { Backend } from '../backend/backend';
import { resolveBackend } from '../backend';
import type { BackendName, FloatArray } from '../backend/types';
import { FlowVaeError, expected, rangeError, typeError } from '../errors';
import { initUniform, type Parameter } from '../nn/parameter';
import { checkArray, checkBoolean, checkKnownKeys, checkPositiveInt, checkSeed, firstNonFinite } from '../validate';
import { Workspace, type Flow, type FlowCallOptions, type FlowForwardResult, type FlowGradients, type FlowInverseResult } from './flow';

/** Options of a flow stack (`PlanarFlow`, `RadialFlow`). */
export interface FlowStackOptions {
  /** Dimension of z. */
  dim: number;
  /** Number of layers K (default 1). */
  layers?: number;
  /** Take the parameters per example from `options.params` instead of owning them (default false). */
  amortized?: boolean;
  /** Seed of the initialization stream (default 0); the same seed gives the same parameters on every backend. */
  seed?: number;
  /** Backend to run on (default: the current backend). */
  backend?: Backend | BackendName;
  /** Keep the log-det of every layer, readable with `layerLogDets()` after forward (default false). */
  keepLayerLogDets?: boolean;
}

const OPTION_NAMES = ['dim', 'layers', 'amortized', 'seed', 'backend', 'keepLayerLogDets'] as const;

/** The kernel calls of one family (a subset of its Backend entry). */
export interface StackKernels {
  forward(
    x: FloatArray,
    params: FloatArray,
    y: FloatArray,
    logDet: FloatArray,
    layerLogDet: FloatArray | null,
    stash: FloatArray,
    batch: number,
    dim: number,
    layers: number,
    amortized: boolean,
  ): number;
  backward(
    saved: FloatArray,
    stash: FloatArray,
    params: FloatArray,
    dy: FloatArray,
    dLogDet: FloatArray,
    dx: FloatArray,
    dParams: FloatArray,
    batch: number,
    dim: number,
    layers: number,
    amortized: boolean,
  ): number;
  inverse(y: FloatArray, params: FloatArray, x: FloatArray, logDet: FloatArray, batch: number, dim: number, layers: number, amortized: boolean): number;
}

/** How a family describes itself to the stack. */
export interface StackFamily {
  /** Class name used in messages, e.g. `PlanarFlow`. */
  readonly className: string;
  /** Family name (`Flow.kind`). */
  readonly kind: string;
  /** The named parameters of one layer in layout order, each of `dim` or 1 values per layer. */
  readonly parameters: readonly { name: string; perLayer: 'dim' | 1 }[];
  /** Backward needs the forward's input (`x`) or its output (`y`). */
  readonly saved: 'x' | 'y';
  kernels(backend: Backend): StackKernels;
  /** Fills the shared parameters `[K·P]` at construction. */
  initialize(backend: Backend, params: FloatArray, dim: number, seed: number): void;
}

/** Initialization used by both families (as in Pyro): every parameter uniform on ±1/√dim. */
export function initUniformScaled(backend: Backend, params: FloatArray, dim: number, seed: number): void {
  const bound = 1 / Math.sqrt(dim);
  initUniform(backend, params, seed, 0, -bound, bound);
}

export { checkSeed } from '../validate';

/** The backend an option names (see resolveBackend), which must have the kernel family `kind`. */
export function checkBackend(value: unknown, kind: string): Backend {
  const backend = resolveBackend(value);
  if (typeof (backend as unknown as Record<string, unknown>)[kind] !== 'object') {
    throw rangeError(`Expected a backend with the "${kind}" kernels for "backend" but "${backend.name}" has none`);
  }
  return backend;
}

export abstract class FlowStack implements Flow {
  readonly kind: string;
  readonly dim: number;
  readonly layers: number;
  readonly amortized: boolean;
  readonly backend: Backend;
  readonly amortizedSize: number;
  readonly contextDim = 0;
  /** Values per layer P. */
  readonly paramSize: number;
  private readonly family: StackFamily;
  private readonly kernels: StackKernels;
  private readonly keepLayerLogDets: boolean;
  /** Shared parameters `[K·P]` and their gradient (null when amortized). */
  private readonly flatValue: FloatArray | null;
  private readonly flatGrad: FloatArray | null;
  private readonly named: Parameter[];
  private readonly ws: Workspace;
  // State of the last forward, read by backward.
  private batch = 0;
  private saved: FloatArray | null = null;
  private params: FloatArray | null = null;
  private stash: FloatArray | null = null;
  private lastLayerLogDets: FloatArray | null = null;

  protected constructor(family: StackFamily, options: FlowStackOptions) {
    const name = family.className;
    if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
    checkKnownKeys(options, 'options', OPTION_NAMES);
    this.family = family;
    this.kind = family.kind;
    this.dim = checkPositiveInt(options.dim, 'dim');
    this.layers = options.layers === undefined ? 1 : checkPositiveInt(options.layers, 'layers');
    this.amortized = options.amortized === undefined ? false : checkBoolean(options.amortized, 'amortized');
    const seed = options.seed === undefined ? 0 : checkSeed(options.seed);
    this.keepLayerLogDets = options.keepLayerLogDets === undefined ? false : checkBoolean(options.keepLayerLogDets, 'keepLayerLogDets');
    this.backend = checkBackend(options.backend, family.kind);
    this.kernels = family.kernels(this.backend);
    this.paramSize = family.parameters.reduce((n, p) => n + (p.perLayer === 'dim' ? this.dim : 1), 0);
    const total = this.layers * this.paramSize;
    if (total > 2 ** 32 || this.layers * this.dim > 2 ** 32) {
      throw rangeError(`${name} with dim ${this.dim} and ${this.layers} layers is too large`);
    }
    this.amortizedSize = this.amortized ? total : 0;
    this.ws = new Workspace(this.backend);
    this.named = [];
    if (this.amortized) {
      this.flatValue = null;
      this.flatGrad = null;
    } else {
      this.flatValue = this.backend.alloc(total);
      this.flatGrad = this.backend.alloc(total);
      family.initialize(this.backend, this.flatValue, this.dim, seed);
      let offset = 0;
      for (const p of family.parameters) {
        const size = p.perLayer === 'dim' ? this.layers * this.dim : this.layers;
        this.named.push({
          name: p.name,
          shape: p.perLayer === 'dim' ? [this.layers, this.dim] : [this.layers],
          value: this.flatValue.subarray(offset, offset + size),
          grad: this.flatGrad.subarray(offset, offset + size),
        });
        offset += size;
      }
    }
  }

  /** Named shared parameters (empty when amortized), views of one flat `[K·P]` array. */
  parameters(): Parameter[] {
    return [...this.named];
  }

  /**
   * Per-layer log-dets `[batch, K]` of the last forward (row-major; they sum
   * to its logDet). Needs `keepLayerLogDets: true`.
   */
  layerLogDets(): FloatArray {
    const name = this.family.className;
    if (!this.keepLayerLogDets) throw rangeError(`${name}.layerLogDets needs the option keepLayerLogDets: true`);
    if (!this.lastLayerLogDets) throw rangeError(`${name}.layerLogDets called before forward`);
    return this.lastLayerLogDets;
  }

  private callParams(batch: number, options: FlowCallOptions | undefined): FloatArray {
    if (options !== undefined) {
      if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
      checkKnownKeys(options, 'options', ['params', 'context', 'training']);
      if (options.context !== undefined) {
        throw rangeError(expected(`no context (the ${this.kind} flow is not conditional)`, 'context', options.context));
      }
    }
    if (this.amortized) return checkArray(options?.params, 'params', batch * this.amortizedSize, this.backend.dtype);
    if (options?.params !== undefined) {
      throw rangeError(expected(`no params (this ${this.kind} flow has shared parameters)`, 'params', options.params));
    }
    return this.flatValue!;
  }

  /** First row of a `[batch, width]` array with a non-finite value, or -1. */
  private static firstBadRow(a: FloatArray, width: number): number {
    const i = firstNonFinite(a);
    return i < 0 ? -1 : Math.floor(i / width);
  }

  /** The earlier of two rows where -1 means none. */
  private static earlier(a: number, b: number): number {
    return a < 0 ? Math.max(b, 0) : b < 0 ? a : Math.min(a, b);
  }

  /** Label of the first input `[label, array, width]` whose row `row` is not finite, or null. */
  private static badInput(row: number, inputs: [string, FloatArray, number][]): string | null {
    for (const [label, a, width] of inputs) {
      if (firstNonFinite(a.subarray(row * width, (row + 1) * width)) >= 0) return label;
    }
    return null;
  }

  private nonFinite(what: string, row: number, inputs: [string, FloatArray, number][]): FlowVaeError {
    const name = this.family.className;
    const input = FlowStack.badInput(row, inputs);
    if (input) return new FlowVaeError('ERR_NAN', `${name}.${what}: row ${row} of "${input}" is not finite`);
    return new FlowVaeError('ERR_NAN', `${name}.${what} produced a non-finite value in row ${row} (its inputs are finite)`);
  }

  forward(x: FloatArray, batch: number, options?: FlowCallOptions): FlowForwardResult {
    checkPositiveInt(batch, 'batch');
    checkArray(x, 'x', batch * this.dim, this.backend.dtype);
    const params = this.callParams(batch, options);
    const { dim, layers } = this;
    const y = this.ws.get('y', batch * dim);
    const logDet = this.ws.get('logDet', batch);
    const stash = this.ws.get('stash', batch * layers);
    const perLayer = this.keepLayerLogDets ? this.ws.get('layerLogDets', batch * layers) : null;
    this.batch = 0; // backward is refused until a forward succeeds
    const bad = this.kernels.forward(x, params, y, logDet, perLayer, stash, batch, dim, layers, this.amortized);
    if (bad > 0) {
      const row = FlowStack.earlier(FlowStack.firstBadRow(y, dim), FlowStack.firstBadRow(logDet, 1));
      throw this.nonFinite('forward', row, this.inputsOf('x', x, params));
    }
    this.batch = batch;
    this.saved = this.family.saved === 'x' ? x : y;
    this.params = params;
    this.stash = stash;
    this.lastLayerLogDets = perLayer;
    return { y, logDet };
  }

  private inputsOf(label: string, values: FloatArray, params: FloatArray): [string, FloatArray, number][] {
    const inputs: [string, FloatArray, number][] = [[label, values, this.dim]];
    if (this.amortized) inputs.push(['params', params, this.amortizedSize]);
    return inputs;
  }

  inverse(y: FloatArray, batch: number, options?: FlowCallOptions): FlowInverseResult {
    checkPositiveInt(batch, 'batch');
    checkArray(y, 'y', batch * this.dim, this.backend.dtype);
    const params = this.callParams(batch, options);
    const x = this.ws.get('inverseX', batch * this.dim);
    const logDet = this.ws.get('inverseLogDet', batch);
    const bad = this.kernels.inverse(y, params, x, logDet, batch, this.dim, this.layers, this.amortized);
    if (bad > 0) {
      const row = Math.max(FlowStack.firstBadRow(logDet, 1), 0);
      const inputs = this.inputsOf('y', y, params);
      if (FlowStack.badInput(row, inputs)) throw this.nonFinite('inverse', row, inputs);
      throw new FlowVaeError(
        'ERR_NOT_CONVERGED',
        `${this.family.className}.inverse did not converge for row ${row} (${bad} row${bad === 1 ? '' : 's'} in all)`,
      );
    }
    return { x, logDet };
  }

  backward(gradOutput: FloatArray, gradLogDet: FloatArray): FlowGradients {
    const name = this.family.className;
    const batch = this.batch;
    if (batch === 0) throw rangeError(`${name}.backward called before a successful forward`);
    checkArray(gradOutput, 'gradOutput', batch * this.dim, this.backend.dtype);
    checkArray(gradLogDet, 'gradLogDet', batch, this.backend.dtype);
    const dx = this.ws.get('gradInput', batch * this.dim);
    const dParams = this.amortized ? this.ws.get('gradParams', batch * this.amortizedSize) : this.flatGrad!;
    const bad = this.kernels.backward(
      this.saved!,
      this.stash!,
      this.params!,
      gradOutput,
      gradLogDet,
      dx,
      dParams,
      batch,
      this.dim,
      this.layers,
      this.amortized,
    );
    if (bad > 0) {
      const rowX = FlowStack.firstBadRow(dx, this.dim);
      const row = FlowStack.earlier(rowX, this.amortized ? FlowStack.firstBadRow(dParams, this.amortizedSize) : -1);
      throw this.nonFinite('backward', row, [
        ['gradOutput', gradOutput, this.dim],
        ['gradLogDet', gradLogDet, 1],
      ]);
    }
    if (!this.amortized) {
      const i = firstNonFinite(this.flatGrad!);
      if (i >= 0) {
        const p = this.paramAt(i);
        throw new FlowVaeError('ERR_NAN', `${name}.backward: the gradient of parameter "${p}" is not finite`);
      }
    }
    return { gradInput: dx, gradParams: this.amortized ? dParams : null, gradContext: null };
  }

  /** Name of the shared parameter holding flat index i, e.g. `w[2, 5]`. */
  private paramAt(i: number): string {
    let offset = 0;
    for (const p of this.named) {
      if (i < offset + p.value.length) {
        const j = i - offset;
        return p.shape.length === 2 ? `${p.name}[${Math.floor(j / this.dim)}, ${j % this.dim}]` : `${p.name}[${j}]`;
      }
      offset += p.value.length;
    }
    return '?';
  }
}
