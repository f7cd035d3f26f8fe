/**
 * MADE: masked autoencoder for distribution estimation (Germain et al. 2015),
 * the conditioner of IAF (Kingma et al. 2016) and MAF (Papamakarios et al. 2017).
 *
 * Every unit has a degree. Inputs carry their position in the ordering
 * (1…D); hidden units of layer l get degrees in [min degree of layer l−1, D−1]
 * (Germain et al.: sampled uniformly, or assigned cyclically); a hidden unit
 * sees the previous units of degree ≤ its own, an output of input i sees the
 * last hidden units of degree < degree(i). So output i depends only on inputs
 * that come before i in the ordering. An optional context `h` `[batch,
 * contextDim]` feeds every unit of the first layer without a mask (IAF's
 * encoder context): it carries no information about x, so the autoregressive
 * property holds for any context.
 *
 * Outputs: `outputsPerDim` blocks of D columns (default 2: m in columns
 * [0, D), s in [D, 2D)), column j·D + i belonging to input i.
 *
 * Masking: the parameters hold unmasked weights (so they load into PyTorch
 * modules that compute `F.linear(x, weight * mask, bias)`), and every forward
 * multiplies them by the mask into a private copy used by the products. The
 * function then truly does not depend on masked entries, their gradient is
 * exactly 0 (backward masks it), and nothing an optimizer, weight decay or a
 * checkpoint does to masked entries can break the autoregressive property.
 * Refreshing the copy costs one pass over the weights per forward, small
 * beside the batch products. (Keeping the weights themselves masked after
 * each update would instead rely on every writer of the weights.) With
 * degrees in order the mask is a staircase, and the native layer products
 * (`autoregressive.maskedDenseForward/Backward`) skip its zero half.
 *
 * Parameters are named as an `nn.Sequential` of masked linear layers and
 * activations (`0.weight`, `0.bias`, `2.weight`, …) plus `context.weight`.
 */
import type { Backend } from '../backend/backend';
import { ACTIVATIONS, type Activation } from '../backend/kernels/elementwise';
import type { FloatArray } from '../backend/types';
import { expected, rangeError, typeError } from '../errors';
import { checkArray, checkOneOf, checkPositiveInt, checkSize } from '../validate';
import { Linear } from './linear';
import { createParameter, initUniform, prefixParameters, type Parameter } from './parameter';

/** The ordering of the inputs: natural (1…D), reversed, seeded random, or explicit degrees (a permutation of 1…D). */
export type MadeOrdering = 'natural' | 'reversed' | 'random' | readonly number[];

export interface MADEOptions {
  dim: number;
  /** Hidden layer widths (may be empty: one strictly masked layer). */
  hidden: readonly number[];
  /** Output blocks per input dimension (default 2: m and s). */
  outputsPerDim?: number;
  /** Width of the unmasked context input of the first layer (default 0: none). */
  contextDim?: number;
  ordering?: MadeOrdering;
  /** Hidden degrees: 'random' as in Germain et al. (default) or 'cyclic' (every degree equally often). */
  hiddenDegrees?: 'random' | 'cyclic';
  /** Activation between layers (default 'elu', as in Kingma et al. 2016). */
  activation?: Activation;
  seed: number;
  /** Scale of the output layer's initial weights relative to PyTorch's default (default 1). */
  lastInitScale?: number;
}

/** mulberry32: integer stream for orderings and degrees, identical on every backend. */
function integerStream(seed: number): (n: number) => number {
  let a = (seed ^ 0x9e3779b9) >>> 0;
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

/** Degrees 1…D of the inputs for an ordering. */
export function inputDegrees(dim: number, ordering: MadeOrdering, seed: number): Uint32Array {
  const deg = new Uint32Array(dim);
  if (Array.isArray(ordering)) {
    const seen = new Uint8Array(dim + 1);
    const what = `permutation of 1…${dim}`;
    if (ordering.length !== dim) throw rangeError(expected(what, 'ordering', ordering), 'ERR_SHAPE');
    ordering.forEach((d: unknown, i: number) => {
      if (typeof d !== 'number' || !Number.isInteger(d) || d < 1 || d > dim || seen[d]) {
        throw rangeError(expected(what, `ordering[${i}]`, d));
      }
      seen[d] = 1;
      deg[i] = d;
    });
    return deg;
  }
  const kind = checkOneOf(ordering, 'ordering', ['natural', 'reversed', 'random'] as const);
  for (let i = 0; i < dim; i++) deg[i] = kind === 'reversed' ? dim - i : i + 1;
  if (kind === 'random') {
    const next = integerStream(seed);
    for (let i = dim - 1; i > 0; i--) {
      const j = next(i + 1);
      [deg[i], deg[j]] = [deg[j], deg[i]];
    }
  }
  return deg;
}

/** Hidden degrees in [min(prevMin, D−1), D−1], sorted (sorting only relabels units). */
function hiddenDegrees(width: number, prevMin: number, dim: number, mode: 'random' | 'cyclic', next: (n: number) => number): Uint32Array {
  const lo = Math.min(prevMin, dim - 1);
  const span = dim - lo; // number of admissible degrees
  const deg = new Uint32Array(width);
  for (let k = 0; k < width; k++) deg[k] = lo + (mode === 'cyclic' ? k % span : next(span));
  return deg.sort();
}

/**
 * A dense layer whose weight is multiplied by the mask given by unit degrees
 * (`out ≥ in`, or `out > in` when `strict`) on every forward.
 */
export class MaskedLinear {
  readonly inDim: number;
  readonly outDim: number;
  readonly weight: Parameter;
  readonly bias: Parameter;
  readonly inDegrees: Uint32Array;
  readonly outDegrees: Uint32Array;
  readonly strict: boolean;
  /** weight ⊙ mask, refreshed by every forward. */
  readonly maskedWeight: FloatArray;
  private input: FloatArray | null = null;
  private batch = 0;
  private out: FloatArray | null = null;

  constructor(
    readonly backend: Backend,
    options: { inDegrees: Uint32Array; outDegrees: Uint32Array; strict: boolean; seed: number; initScale?: number },
  ) {
    this.inDegrees = options.inDegrees;
    this.outDegrees = options.outDegrees;
    this.inDim = options.inDegrees.length;
    this.outDim = options.outDegrees.length;
    this.strict = options.strict;
    // Initialised exactly like Linear (PyTorch's default, from the backend-independent stream).
    const init = new Linear(backend, { inDim: this.inDim, outDim: this.outDim, seed: options.seed, initScale: options.initScale });
    this.weight = init.weight;
    this.bias = init.bias!;
    this.maskedWeight = backend.alloc(this.weight.value.length);
  }

  parameters(): Parameter[] {
    return [this.weight, this.bias];
  }

  /** The pre-activation output of the last forward (owned by the layer). */
  get output(): FloatArray {
    if (!this.out) throw rangeError('MaskedLinear.output read before forward');
    return this.out;
  }

  /** The mask (1 kept, 0 cut) `[outDim, inDim]`, computed by the backend's kernel. */
  mask(): FloatArray {
    const ones = this.backend.alloc(this.weight.value.length).fill(1);
    this.backend.autoregressive.maskWeights(ones, this.outDegrees, this.inDegrees, this.strict, ones, this.outDim, this.inDim);
    return ones;
  }

  /** `[batch, outDim]`; keeps a reference to x for backward. */
  forward(x: FloatArray, batch: number): FloatArray {
    checkArray(x, 'x', batch * this.inDim);
    const b = this.backend;
    if (!this.out || this.out.length !== batch * this.outDim) this.out = b.alloc(batch * this.outDim);
    b.autoregressive.maskedDenseForward(
      x,
      this.weight.value,
      this.bias.value,
      this.outDegrees,
      this.inDegrees,
      this.strict,
      this.maskedWeight,
      this.out,
      batch,
      this.inDim,
      this.outDim,
    );
    this.input = x;
    this.batch = batch;
    return this.out;
  }

  /**
   * Accumulates the (masked) weight and bias gradients; writes ∂L/∂x into
   * `gradInput` (overwritten, or added to with `addToGradInput`) unless it is null.
   */
  backward(gradOut: FloatArray, gradInput: FloatArray | null, addToGradInput = false): void {
    if (!this.input) throw rangeError('MaskedLinear.backward called before forward');
    const b = this.backend;
    const batch = this.batch;
    // Masked entries do not influence the output: their gradient is exactly 0. dx (+)= dy · (W ⊙ M).
    b.autoregressive.maskedDenseBackward(
      this.input,
      this.maskedWeight,
      gradOut,
      this.outDegrees,
      this.inDegrees,
      this.strict,
      gradInput,
      this.weight.grad,
      this.bias.grad,
      batch,
      this.inDim,
      this.outDim,
      addToGradInput,
    );
  }
}

export class MADE {
  readonly dim: number;
  readonly outputsPerDim: number;
  readonly contextDim: number;
  readonly activation: Activation;
  /** Degree (1…D) of each input: its position in the ordering. */
  readonly degrees: Uint32Array;
  readonly layers: MaskedLinear[] = [];
  /** Unmasked context weight `[hidden[0] (or outputs), contextDim]`, no bias. */
  readonly contextWeight: Parameter | null;
  private readonly alpha = 1;
  private hiddenOut: FloatArray[] = [];
  private gradHidden: FloatArray[] = [];
  private context: FloatArray | null = null;
  private batch = 0;

  constructor(
    readonly backend: Backend,
    options: MADEOptions,
  ) {
    if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
    const dim = checkPositiveInt(options.dim, 'dim');
    if (!Array.isArray(options.hidden)) throw typeError(expected('array of positive integers', 'hidden', options.hidden));
    const hidden = options.hidden.map((h, i) => checkPositiveInt(h, `hidden[${i}]`));
    this.dim = dim;
    this.outputsPerDim = checkPositiveInt(options.outputsPerDim ?? 2, 'outputsPerDim');
    this.contextDim = checkSize(options.contextDim ?? 0, 'contextDim');
    this.activation = checkOneOf(options.activation ?? 'elu', 'activation', ACTIVATIONS);
    const seed = checkSize(options.seed, 'seed');
    const mode = checkOneOf(options.hiddenDegrees ?? 'random', 'hiddenDegrees', ['random', 'cyclic'] as const);
    this.degrees = inputDegrees(dim, options.ordering ?? 'natural', seed);
    const next = integerStream(seed + 1);
    let prev = this.degrees;
    hidden.forEach((width, l) => {
      const deg = hiddenDegrees(
        width,
        prev.reduce((a, d) => Math.min(a, d), dim),
        dim,
        mode,
        next,
      );
      this.layers.push(new MaskedLinear(backend, { inDegrees: prev, outDegrees: deg, strict: false, seed: seed + 7919 * (l + 1) }));
      prev = deg;
    });
    const outDegrees = new Uint32Array(this.outputsPerDim * dim);
    for (let j = 0; j < this.outputsPerDim; j++) outDegrees.set(this.degrees, j * dim);
    this.layers.push(
      new MaskedLinear(backend, {
        inDegrees: prev,
        outDegrees,
        strict: true,
        seed: seed + 7919 * (hidden.length + 1),
        initScale: options.lastInitScale ?? 1,
      }),
    );
    if (this.contextDim > 0) {
      const first = this.layers[0];
      this.contextWeight = createParameter(backend, 'weight', [first.outDim, this.contextDim]);
      const bound = 1 / Math.sqrt(this.contextDim);
      initUniform(backend, this.contextWeight.value, seed + 104729, 0, -bound, bound);
    } else {
      this.contextWeight = null;
    }
  }

  get outDim(): number {
    return this.outputsPerDim * this.dim;
  }

  parameters(): Parameter[] {
    const params = this.layers.flatMap((l, i) => prefixParameters(String(2 * i), l.parameters()));
    if (this.contextWeight) params.push(...prefixParameters('context', [this.contextWeight]));
    return params;
  }

  /** `[batch, outputsPerDim · dim]` (owned by the module). Keeps references to x and context for backward. */
  forward(x: FloatArray, batch: number, context?: FloatArray | null): FloatArray {
    checkPositiveInt(batch, 'batch');
    checkArray(x, 'x', batch * this.dim);
    if (this.contextDim > 0) checkArray(context, 'context', batch * this.contextDim);
    const b = this.backend;
    this.batch = batch;
    this.context = this.contextDim > 0 ? context! : null;
    let h = x;
    for (let l = 0; l < this.layers.length; l++) {
      const layer = this.layers[l];
      const pre = layer.forward(h, batch);
      if (l === 0 && this.context) {
        // pre += context · Wcᵀ (unmasked)
        b.dense.gemm(false, true, batch, layer.outDim, this.contextDim, 1, this.context, this.contextWeight!.value, 1, pre);
      }
      if (l + 1 === this.layers.length) return pre;
      const n = batch * layer.outDim;
      if (!this.hiddenOut[l] || this.hiddenOut[l].length !== n) this.hiddenOut[l] = b.alloc(n);
      b.elementwise.forward(this.activation, pre, this.hiddenOut[l], n, this.alpha);
      h = this.hiddenOut[l];
    }
    throw rangeError('unreachable');
  }

  /**
   * Backpropagates `gradOut` `[batch, outDim]` through the last forward:
   * accumulates parameter gradients and adds ∂L/∂x to `gradInput` and
   * ∂L/∂context to `gradContext` (each skipped when null). `gradOut` is not modified.
   */
  backward(gradOut: FloatArray, gradInput: FloatArray | null, gradContext: FloatArray | null): void {
    const batch = this.batch;
    if (batch === 0) throw rangeError('MADE.backward called before forward');
    checkArray(gradOut, 'gradOut', batch * this.outDim);
    if (gradInput) checkArray(gradInput, 'gradInput', batch * this.dim);
    if (gradContext) checkArray(gradContext, 'gradContext', batch * this.contextDim);
    const b = this.backend;
    let g = gradOut;
    for (let l = this.layers.length - 1; l >= 0; l--) {
      const layer = this.layers[l];
      if (l + 1 < this.layers.length) {
        // Through the activation, in place on this module's own buffer.
        const n = batch * layer.outDim;
        b.elementwise.backward(this.activation, layer.output, this.hiddenOut[l], g, g, n, this.alpha);
      }
      if (l > 0) {
        const n = batch * layer.inDim;
        if (!this.gradHidden[l - 1] || this.gradHidden[l - 1].length !== n) this.gradHidden[l - 1] = b.alloc(n);
        layer.backward(g, this.gradHidden[l - 1]);
        g = this.gradHidden[l - 1];
      } else {
        layer.backward(g, gradInput, true);
        if (this.context) {
          const H = layer.outDim;
          const C = this.contextDim;
          b.dense.gemm(true, false, H, C, batch, 1, g, this.context, 1, this.contextWeight!.grad);
          if (gradContext) b.dense.gemm(false, false, batch, C, H, 1, g, this.contextWeight!.value, 1, gradContext);
        }
      }
    }
  }
}
