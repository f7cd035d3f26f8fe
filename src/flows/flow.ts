/**
 * The flow contract. A flow maps x ↦ y row by row for a batch `[batch, dim]`
 * and reports log|det ∂y/∂x| per row. Modules keep what backward needs from
 * the last forward; backward accumulates parameter gradients and returns the
 * gradients of the inputs (and of amortized parameters and context).
 *
 * Shared vs amortized parameters: a shared flow owns its parameters (named,
 * in `parameters()`); an amortized flow receives them per example in
 * `options.params`, `[batch, amortizedSize]`, typically from an encoder, and
 * returns their gradients from backward.
 *
 * Returned arrays belong to the module and are overwritten by its next call;
 * copy them to keep them.
 */
import type { Backend } from '../backend/backend';
import type { FloatArray } from '../backend/types';
import { FlowVaeError } from '../errors';
import type { NamedBuffer, Parameter } from '../nn/parameter';

export interface FlowCallOptions {
  /** Per-example parameters `[batch, amortizedSize]` (amortized flows only). */
  params?: FloatArray;
  /** Per-example context `[batch, contextDim]` (conditional flows only). */
  context?: FloatArray;
  /**
   * True when the call is a training step (set by the training loops). Flows
   * with data-dependent initialization (ActNorm) initialize on their first
   * training forward; evaluation and sampling never change parameters.
   */
  training?: boolean;
}

export interface FlowForwardResult {
  /** `[batch, dim]` */
  y: FloatArray;
  /** `[batch]`: log|det ∂y/∂x| of each row. */
  logDet: FloatArray;
}

export interface FlowInverseResult {
  /** `[batch, dim]` */
  x: FloatArray;
  /** `[batch]`: log|det ∂x/∂y| of each row (the negative of the forward log-det). */
  logDet: FloatArray;
}

export interface FlowGradients {
  /** `[batch, dim]`: ∂L/∂x. */
  gradInput: FloatArray;
  /** `[batch, amortizedSize]` for amortized flows, else null. */
  gradParams: FloatArray | null;
  /** `[batch, contextDim]` for conditional flows, else null. */
  gradContext: FloatArray | null;
}

export interface Flow {
  /** Short name of the family, e.g. `planar`. */
  readonly kind: string;
  readonly dim: number;
  readonly backend: Backend;
  /** Per-example parameter count when amortized, 0 otherwise. */
  readonly amortizedSize: number;
  /** Width of the context input, 0 when the flow takes none. */
  readonly contextDim: number;
  /** Named shared parameters (empty for a purely amortized flow). */
  parameters(): Parameter[];
  /**
   * Named state that is saved with the model but not trained (e.g. ActNorm's
   * `initialized` flag, a fixed permutation). Optional: most flows have none.
   */
  buffers?(): NamedBuffer[];
  forward(x: FloatArray, batch: number, options?: FlowCallOptions): FlowForwardResult;
  /** Throws FlowVaeError ERR_NO_INVERSE when the flow has none, ERR_NOT_CONVERGED when an iterative inverse fails. */
  inverse(y: FloatArray, batch: number, options?: FlowCallOptions): FlowInverseResult;
  /**
   * Backpropagates through the last forward: `gradOutput` is ∂L/∂y `[batch, dim]`,
   * `gradLogDet` is ∂L/∂logDet `[batch]`. Parameter gradients are accumulated.
   */
  backward(gradOutput: FloatArray, gradLogDet: FloatArray): FlowGradients;
}

export function noInverse(kind: string): never {
  throw new FlowVaeError('ERR_NO_INVERSE', `The ${kind} flow has no inverse`);
}

/**
 * Reusable arrays keyed by name, reallocated only when the requested length
 * changes, so steady-state training allocates nothing per step.
 */
export class Workspace {
  private readonly arrays = new Map<string, FloatArray>();
  constructor(private readonly backend: Backend) {}

  get(name: string, length: number): FloatArray {
    let a = this.arrays.get(name);
    if (!a || a.length !== length) {
      a = this.backend.alloc(length);
      this.arrays.set(name, a);
    }
    return a;
  }
}
