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

/** Fused Adam/AdamW over one flat parameter buffer, with PyTorch's semantics. */
export interface AdamKernels {
  /**
   * Updates `params`, `m` and `v` in place from `grads` (length n each, grads
   * left untouched) and returns the global gradient L2 norm before clipping.
   */
  step(params: FloatArray, grads: FloatArray, m: FloatArray, v: FloatArray, n: number, options: AdamStepOptions): number;
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
