import type { FloatArray } from '../types';

/**
 * Activation functions. `alpha` is the negative slope of `leaky_relu` and the
 * scale of `elu` (ignored by the others).
 *
 *   relu(x) = max(x, 0)                        relu'(0) = 0
 *   leaky_relu(x) = x > 0 ? x : alpha·x        derivative at 0 is alpha
 *   elu(x) = x > 0 ? x : alpha·(eˣ − 1)        derivative at 0 is alpha
 *   tanh, sigmoid(x) = 1 / (1 + e⁻ˣ)
 *   softplus(x) = log(1 + eˣ), computed as max(x, 0) + log1p(e^−|x|)
 */
export const ACTIVATIONS = ['identity', 'relu', 'leaky_relu', 'elu', 'tanh', 'sigmoid', 'softplus'] as const;
export type Activation = (typeof ACTIVATIONS)[number];

export interface ElementwiseKernels {
  /** `y[i] = f(x[i])` for i < n. x and y may be the same array. */
  forward(kind: Activation, x: FloatArray, y: FloatArray, n: number, alpha: number): void;
  /**
   * `dx[i] = dy[i] · f'(x[i])`. `y` is the forward output (kernels use it
   * where cheaper, e.g. tanh' = 1 − y²). dx may alias dy.
   */
  backward(kind: Activation, x: FloatArray, y: FloatArray, dy: FloatArray, dx: FloatArray, n: number, alpha: number): void;
}
