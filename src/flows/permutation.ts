/**
 * A fixed permutation of the dimensions (Glow's "reverse" and "shuffle"):
 *
 *   y[j] = x[perm[j]],   log|det J| = 0
 *
 * `order: 'reverse'` gives perm[j] = dim − 1 − j; `'random'` (the default) a
 * permutation drawn from the seeded stream, the same on every backend. It has
 * no trained parameters; the permutation is a buffer (`buffers()`, name
 * `permutation`, stored as numbers) so a checkpoint records it, and is
 * checked to be a permutation on every call.
 */
import type { Backend } from '../backend/backend';
import type { FloatArray } from '../backend/types';
import type { NamedBuffer, Parameter } from '../nn/parameter';
import { checkOneOf } from '../validate';
import { Workspace, type Flow, type FlowCallOptions, type FlowForwardResult, type FlowGradients, type FlowInverseResult } from './flow';
import { checkBackwardCall, checkUnconditionalCall, readPermutation, resolvePieceOptions, seededPermutation, type GlowPieceOptions } from './glow-common';

export const PERMUTATION_ORDERS = ['reverse', 'random'] as const;
export type PermutationOrder = (typeof PERMUTATION_ORDERS)[number];

export interface PermutationOptions extends GlowPieceOptions {
  /** 'reverse' or 'random' (default 'random'). */
  order?: PermutationOrder;
  /** Seed of the random permutation (default 0). */
  seed?: number;
}

export class Permutation implements Flow {
  readonly kind = 'permutation';
  readonly dim: number;
  readonly backend: Backend;
  readonly amortizedSize = 0;
  readonly contextDim = 0;
  readonly order: PermutationOrder;
  private readonly stored: NamedBuffer;
  private readonly indices: Uint32Array;
  private readonly ws: Workspace;
  private batch = 0;

  constructor(options: PermutationOptions) {
    const { dim, backend, seed } = resolvePieceOptions(options, ['dim', 'order', 'seed', 'backend'], 'glow');
    this.order = checkOneOf(options.order ?? 'random', 'order', PERMUTATION_ORDERS);
    this.dim = dim;
    this.backend = backend;
    const perm = this.order === 'reverse' ? new Uint32Array(dim).map((_, j) => dim - 1 - j) : seededPermutation(backend, dim, seed);
    this.stored = { name: 'permutation', shape: [dim], value: backend.from(perm) };
    this.indices = new Uint32Array(dim);
    this.ws = new Workspace(backend);
  }

  /** The permutation as indices (a copy): y[j] = x[perm[j]]. */
  get permutation(): Uint32Array {
    return readPermutation(this.stored.value, new Uint32Array(this.dim), 'permutation');
  }

  parameters(): Parameter[] {
    return [];
  }

  buffers(): NamedBuffer[] {
    return [this.stored];
  }

  forward(x: FloatArray, batch: number, options?: FlowCallOptions): FlowForwardResult {
    checkUnconditionalCall(this.kind, this.backend, x, 'x', batch, this.dim, options);
    const perm = readPermutation(this.stored.value, this.indices, 'permutation');
    const y = this.ws.get('y', batch * this.dim);
    const logDet = this.ws.get('logDet', batch);
    this.backend.glow.permuteColumns(x, perm, y, batch, this.dim);
    logDet.fill(0);
    this.batch = batch;
    return { y, logDet };
  }

  inverse(y: FloatArray, batch: number, options?: FlowCallOptions): FlowInverseResult {
    checkUnconditionalCall(this.kind, this.backend, y, 'y', batch, this.dim, options);
    const perm = readPermutation(this.stored.value, this.indices, 'permutation');
    const x = this.ws.get('inverseX', batch * this.dim);
    const logDet = this.ws.get('inverseLogDet', batch);
    this.backend.glow.unpermuteColumns(y, perm, x, batch, this.dim);
    logDet.fill(0);
    return { x, logDet };
  }

  backward(gradOutput: FloatArray, gradLogDet: FloatArray): FlowGradients {
    const batch = this.batch;
    checkBackwardCall('Permutation', this.backend, batch, this.dim, gradOutput, gradLogDet);
    const perm = readPermutation(this.stored.value, this.indices, 'permutation');
    const dx = this.ws.get('gradInput', batch * this.dim);
    // ∂L/∂x[perm[j]] = ∂L/∂y[j]: the inverse permutation applied to the gradient.
    this.backend.glow.unpermuteColumns(gradOutput, perm, dx, batch, this.dim);
    return { gradInput: dx, gradParams: null, gradContext: null };
  }
}
