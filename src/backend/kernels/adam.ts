import { checkOptions } from '../../validate';
import type { FloatArray } from '../types';

export interface AdamStepOptions {
  /** Learning rate (> 0). */
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
 * The options as the native bindings take them (lr, beta1, beta2, eps,
 * weightDecay, decoupled, step, maxGradNorm), after the object checks of the
 * reference; the bindings check each value.
 */
export function adamOptionsInBindingOrder(options: AdamStepOptions): [number, number, number, number, number, boolean, number, number] {
  const o = checkOptions(options, 'options', ADAM_STEP_OPTION_KEYS);
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
