import { checkInRange, checkOptions } from '../../validate';
import type { FloatArray } from '../types';

export interface AdamStepOptions {
  /** Learning rate, in (0, ADAM_LIMITS.lr.hi]. */
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** L2 penalty (Adam) or decoupled decay (AdamW); 0 disables. */
  weightDecay: number;
  /** true: AdamW (decay applied to the parameter, `p ← p·(1 − lr·wd)`); false: Adam (`g ← g + wd·p`). */
  decoupled: boolean;
  /** 1-based step number, used for bias correction. */
  step: number;
  /** Clip gradients to this global L2 norm first (scale `min(1, max / (norm + 1e-6))`); 0 disables. */
  maxGradNorm: number;
}

/** Fused Adam/AdamW with PyTorch's semantics, over one flat buffer or over a model's tensors in place. */
export interface AdamKernels {
  /**
   * Updates `params`, `m` and `v` in place from `grads` (length n each, grads
   * left untouched) and returns the global gradient L2 norm before clipping.
   */
  step(params: FloatArray, grads: FloatArray, m: FloatArray, v: FloatArray, n: number, options: AdamStepOptions): number;
  /**
   * The same step over parameter tensors where they live: tensor k is
   * `params[k]` with gradient `grads[k]` (same length), and `m`, `v` hold the
   * moments of all tensors in order (length Σ params[k].length). Clipping
   * uses the global norm over every tensor. No buffer that is written may
   * share memory with another buffer.
   */
  stepTensors(params: readonly FloatArray[], grads: readonly FloatArray[], m: FloatArray, v: FloatArray, options: AdamStepOptions): number;
}

/** The keys of AdamStepOptions, all required; backends refuse any other. */
export const ADAM_STEP_OPTION_KEYS = [
  'lr',
  'beta1',
  'beta2',
  'eps',
  'weightDecay',
  'decoupled',
  'step',
  'maxGradNorm',
] as const satisfies readonly (keyof AdamStepOptions)[];

/**
 * Limits of the step options that every backend's kernel and the training
 * API (src/train/adam.ts, fit, the command line) check alike: one limit,
 * declared here. Above `lr.hi` a run only diverges.
 */
export const ADAM_LIMITS = { lr: { lo: 0, hi: 10 } } as const;

/**
 * A learning rate in (0, ADAM_LIMITS.lr.hi]. The kernels check it right
 * after the options object, before any array (the native bindings bound it
 * only below, so the TypeScript side of every backend checks it first).
 */
export function checkAdamLearningRate(value: unknown, name = 'lr'): number {
  return checkInRange(value, name, ADAM_LIMITS.lr.lo, ADAM_LIMITS.lr.hi, { lo: true });
}

/**
 * The options as the native bindings take them (lr, beta1, beta2, eps,
 * weightDecay, decoupled, step, maxGradNorm), after the object checks of the
 * reference; the bindings check each value.
 */
export function adamOptionsInBindingOrder(options: AdamStepOptions): [number, number, number, number, number, boolean, number, number] {
  const o = checkOptions(options, 'options', ADAM_STEP_OPTION_KEYS);
  checkAdamLearningRate(o.lr);
  return [
    o.lr as number,
    o.beta1 as number,
    o.beta2 as number,
    o.eps as number,
    o.weightDecay as number,
    o.decoupled as boolean,
    o.step as number,
    o.maxGradNorm as number,
  ];
}
