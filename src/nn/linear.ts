/**
 * Linear layer `y = x Wᵀ + b`, W `[out, in]` as PyTorch `nn.Linear`
 * (parameters `weight`, `bias`), initialised like PyTorch: uniform on
 * ±1/sqrt(in), drawn from the backend-independent stream so every backend
 * starts from the same weights.
 */
import type { Backend } from '../backend/backend';
import type { FloatArray } from '../backend/types';
import { rangeError } from '../errors';
import { checkArray, checkPositiveInt } from '../validate';
import { createParameter, initUniform, type Parameter } from './parameter';

export interface LinearOptions {
  inDim: number;
  outDim: number;
  bias?: boolean;
  seed: number;
  /** Scale of the initial weights relative to PyTorch's default (e.g. small for near-identity flows). */
  initScale?: number;
}

export class Linear {
  readonly inDim: number;
  readonly outDim: number;
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  private input: FloatArray | null = null;
  private batch = 0;
  private out: FloatArray | null = null;
  private gradIn: FloatArray | null = null;

  constructor(
    readonly backend: Backend,
    options: LinearOptions,
  ) {
    this.inDim = checkPositiveInt(options.inDim, 'inDim');
    this.outDim = checkPositiveInt(options.outDim, 'outDim');
    this.weight = createParameter(backend, 'weight', [this.outDim, this.inDim]);
    this.bias = options.bias === false ? null : createParameter(backend, 'bias', [this.outDim]);
    const bound = (options.initScale ?? 1) / Math.sqrt(this.inDim);
    initUniform(backend, this.weight.value, options.seed, 0, -bound, bound);
    if (this.bias) initUniform(backend, this.bias.value, options.seed, this.weight.value.length, -bound, bound);
  }

  /** The output of the last forward (owned by the layer). */
  get output(): FloatArray {
    if (!this.out) throw rangeError('Linear.output read before forward');
    return this.out;
  }

  parameters(): Parameter[] {
    return this.bias ? [this.weight, this.bias] : [this.weight];
  }

  /** `[batch, outDim]`; keeps a reference to x for backward (do not modify it before backward). */
  forward(x: FloatArray, batch: number): FloatArray {
    checkArray(x, 'x', batch * this.inDim);
    if (!this.out || this.out.length !== batch * this.outDim) this.out = this.backend.alloc(batch * this.outDim);
    this.backend.dense.forward(x, this.weight.value, this.bias?.value ?? null, this.out, batch, this.inDim, this.outDim);
    this.input = x;
    this.batch = batch;
    return this.out;
  }

  /** Accumulates weight/bias gradients; returns ∂L/∂x (or null when `needInputGrad` is false). */
  backward(gradOut: FloatArray, needInputGrad = true): FloatArray | null {
    if (!this.input) throw rangeError('Linear.backward called before forward');
    const batch = this.batch;
    let gradIn: FloatArray | null = null;
    if (needInputGrad) {
      if (!this.gradIn || this.gradIn.length !== batch * this.inDim) this.gradIn = this.backend.alloc(batch * this.inDim);
      gradIn = this.gradIn;
    }
    this.backend.dense.backward(
      this.input,
      this.weight.value,
      gradOut,
      gradIn,
      this.weight.grad,
      this.bias?.grad ?? null,
      batch,
      this.inDim,
      this.outDim,
      true,
    );
    return gradIn;
  }
}
