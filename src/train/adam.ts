/**
 * Adam / AdamW over a model's named parameters through the backend's fused
 * kernel, which updates every parameter tensor where it lives (the modules'
 * own arrays) in one call, with the global gradient norm over all of them
 * for clipping. The optimizer owns only the moments, one flat buffer each.
 */
import type { Backend } from '../backend/backend';
import { ADAM_LIMITS, checkAdamLearningRate } from '../backend/kernels/adam';
import type { FloatArray } from '../backend/types';
import { checkFinite, checkInRange, checkKnownKeys } from '../validate';
import type { Parameter } from '../nn/parameter';

export interface AdamOptions {
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** AdamW (decoupled weight decay) instead of Adam's L2 penalty. */
  decoupled?: boolean;
  /** Clip gradients to this global L2 norm; 0 (default) disables clipping. */
  maxGradNorm?: number;
}

const KNOWN = ['lr', 'beta1', 'beta2', 'eps', 'weightDecay', 'decoupled', 'maxGradNorm'] as const;

/** Largest learning rate accepted by Adam, fit, FlowDistribution.fit and the command line: above it a run only diverges. */
export const MAX_LEARNING_RATE = ADAM_LIMITS.lr.hi;

/** Checks a learning rate: a number in (0, MAX_LEARNING_RATE], the kernels' own check. */
export function checkLearningRate(value: unknown, name = 'lr'): number {
  return checkAdamLearningRate(value, name);
}

/** Optimizer state saved in checkpoints so a resumed run continues bit-identically. */
export interface AdamState {
  step: number;
  m: FloatArray;
  v: FloatArray;
}

export class Adam {
  readonly params: readonly Parameter[];
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly decoupled: boolean;
  readonly maxGradNorm: number;
  private readonly values: FloatArray[];
  private readonly grads: FloatArray[];
  private readonly m: FloatArray;
  private readonly v: FloatArray;
  private steps = 0;

  constructor(
    private readonly backend: Backend,
    params: readonly Parameter[],
    options: AdamOptions = {},
  ) {
    checkKnownKeys(options, 'options', KNOWN);
    this.lr = checkLearningRate(options.lr ?? 1e-3);
    this.beta1 = checkInRange(options.beta1 ?? 0.9, 'beta1', 0, 1, { hi: true });
    this.beta2 = checkInRange(options.beta2 ?? 0.999, 'beta2', 0, 1, { hi: true });
    this.eps = checkInRange(options.eps ?? 1e-8, 'eps', 0, 1, { lo: true });
    this.weightDecay = checkInRange(options.weightDecay ?? 0, 'weightDecay', 0, 1e6);
    this.decoupled = options.decoupled ?? false;
    this.maxGradNorm = checkFinite(options.maxGradNorm ?? 0, 'maxGradNorm');
    if (this.maxGradNorm < 0) checkInRange(this.maxGradNorm, 'maxGradNorm', 0, Infinity);
    this.params = params;
    const n = params.reduce((s, p) => s + p.value.length, 0);
    this.values = params.map((p) => p.value);
    this.grads = params.map((p) => p.grad);
    this.m = backend.alloc(n);
    this.v = backend.alloc(n);
  }

  get stepCount(): number {
    return this.steps;
  }

  /**
   * One update from the accumulated gradients, in place in the modules'
   * arrays (so values set since the last step — ActNorm's data-dependent
   * initialization, loaded weights — are what is updated); returns the
   * gradient norm before clipping.
   */
  step(): number {
    this.steps += 1;
    return this.backend.adam.stepTensors(this.values, this.grads, this.m, this.v, {
      lr: this.lr,
      beta1: this.beta1,
      beta2: this.beta2,
      eps: this.eps,
      weightDecay: this.weightDecay,
      decoupled: this.decoupled,
      step: this.steps,
      maxGradNorm: this.maxGradNorm,
    });
  }

  state(): AdamState {
    return { step: this.steps, m: this.m, v: this.v };
  }

  loadState(state: { step: number; m: ArrayLike<number>; v: ArrayLike<number> }): void {
    if (state.m.length !== this.m.length || state.v.length !== this.v.length) {
      throw new RangeError(`Optimizer state has ${state.m.length} moments but the model has ${this.m.length} parameters`);
    }
    this.steps = state.step;
    this.m.set(state.m);
    this.v.set(state.v);
  }
}
