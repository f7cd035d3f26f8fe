/** Reference activations and their derivatives (float64), as defined in kernels/elementwise.ts. */
import { ACTIVATIONS, type Activation, type ElementwiseKernels } from '../kernels/elementwise';
import type { FloatArray } from '../types';
import { checkArray, checkFinite, checkOneOf, checkSize } from '../../validate';

/** 1/(1 + e⁻ˣ), from e^−|x| so that it never overflows. */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** log(1 + eˣ) = max(x, 0) + log1p(e^−|x|): no overflow, no cancellation. */
export function softplus(x: number): number {
  return Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
}

// The piecewise kinds branch on `x <= 0`, so a NaN input passes through (and
// passes the incoming gradient), as in the native kernels.
const FORWARD: Record<Activation, (x: number, alpha: number) => number> = {
  identity: (x) => x,
  relu: (x) => (x <= 0 ? 0 : x),
  leaky_relu: (x, alpha) => (x <= 0 ? alpha * x : x),
  elu: (x, alpha) => (x <= 0 ? alpha * Math.expm1(x) : x),
  tanh: Math.tanh,
  sigmoid,
  softplus,
};

/** f'(x) given x and the forward output y. */
const DERIVATIVE: Record<Activation, (x: number, y: number, alpha: number) => number> = {
  identity: () => 1,
  relu: (x) => (x <= 0 ? 0 : 1),
  leaky_relu: (x, _y, alpha) => (x <= 0 ? alpha : 1),
  elu: (x, _y, alpha) => (x <= 0 ? alpha * Math.exp(x) : 1),
  tanh: (_x, y) => 1 - y * y,
  sigmoid: (_x, y) => y * (1 - y),
  softplus: (x) => sigmoid(x),
};

export const referenceElementwise: ElementwiseKernels = {
  forward(kind: Activation, x: FloatArray, y: FloatArray, n: number, alpha: number): void {
    checkOneOf(kind, 'kind', ACTIVATIONS);
    checkSize(n, 'n');
    checkArray(x, 'x', n);
    checkArray(y, 'y', n);
    checkFinite(alpha, 'alpha');
    const f = FORWARD[kind];
    for (let i = 0; i < n; i++) y[i] = f(x[i], alpha);
  },

  backward(kind: Activation, x: FloatArray, y: FloatArray, dy: FloatArray, dx: FloatArray, n: number, alpha: number): void {
    checkOneOf(kind, 'kind', ACTIVATIONS);
    checkSize(n, 'n');
    checkArray(x, 'x', n);
    checkArray(y, 'y', n);
    checkArray(dy, 'dy', n);
    checkArray(dx, 'dx', n);
    checkFinite(alpha, 'alpha');
    const df = DERIVATIVE[kind];
    for (let i = 0; i < n; i++) dx[i] = dy[i] * df(x[i], y[i], alpha);
  },
};
