/** Reference activations and their derivatives (float64), as defined in kernels/elementwise.ts. */
import { ACTIVATIONS, type Activation, type ElementwiseKernels } from '../kernels/elementwise';
import type { FloatArray } from '../types';
import { checkArray, checkFinite, checkOneOf, checkSize } from '../../validate';

import { sigmoid, softplus } from '../../math';

export { sigmoid, softplus };

type Forward = (x: FloatArray, y: FloatArray, n: number, alpha: number) => void;
type Backward = (x: FloatArray, y: FloatArray, dy: FloatArray, dx: FloatArray, n: number, alpha: number) => void;

// One loop per kind, so that each loop sees one function (V8 inlines it; a
// shared loop calling through a table goes megamorphic and runs ~10x slower).
// The piecewise kinds branch on `x <= 0`, so a NaN input passes through (and
// passes the incoming gradient), as in the native kernels.
const FORWARD: Record<Activation, Forward> = {
  identity: (x, y, n) => {
    for (let i = 0; i < n; i++) y[i] = x[i];
  },
  relu: (x, y, n) => {
    for (let i = 0; i < n; i++) y[i] = x[i] <= 0 ? 0 : x[i];
  },
  leaky_relu: (x, y, n, alpha) => {
    for (let i = 0; i < n; i++) y[i] = x[i] <= 0 ? alpha * x[i] : x[i];
  },
  elu: (x, y, n, alpha) => {
    for (let i = 0; i < n; i++) y[i] = x[i] <= 0 ? alpha * Math.expm1(x[i]) : x[i];
  },
  tanh: (x, y, n) => {
    for (let i = 0; i < n; i++) y[i] = Math.tanh(x[i]);
  },
  sigmoid: (x, y, n) => {
    for (let i = 0; i < n; i++) y[i] = sigmoid(x[i]);
  },
  softplus: (x, y, n) => {
    for (let i = 0; i < n; i++) y[i] = softplus(x[i]);
  },
};

/** dx = dy · f'(x), with f' from x, or from the forward output y for tanh and sigmoid. */
const BACKWARD: Record<Activation, Backward> = {
  identity: (_x, _y, dy, dx, n) => {
    for (let i = 0; i < n; i++) dx[i] = dy[i];
  },
  relu: (x, _y, dy, dx, n) => {
    for (let i = 0; i < n; i++) dx[i] = x[i] <= 0 ? 0 : dy[i];
  },
  leaky_relu: (x, _y, dy, dx, n, alpha) => {
    for (let i = 0; i < n; i++) dx[i] = x[i] <= 0 ? alpha * dy[i] : dy[i];
  },
  elu: (x, _y, dy, dx, n, alpha) => {
    for (let i = 0; i < n; i++) dx[i] = x[i] <= 0 ? dy[i] * alpha * Math.exp(x[i]) : dy[i];
  },
  tanh: (_x, y, dy, dx, n) => {
    for (let i = 0; i < n; i++) dx[i] = dy[i] * (1 - y[i] * y[i]);
  },
  sigmoid: (_x, y, dy, dx, n) => {
    for (let i = 0; i < n; i++) dx[i] = dy[i] * y[i] * (1 - y[i]);
  },
  softplus: (x, _y, dy, dx, n) => {
    for (let i = 0; i < n; i++) dx[i] = dy[i] * sigmoid(x[i]);
  },
};

export const referenceElementwise: ElementwiseKernels = {
  forward(kind: Activation, x: FloatArray, y: FloatArray, n: number, alpha: number): void {
    checkOneOf(kind, 'kind', ACTIVATIONS);
    checkSize(n, 'n');
    checkArray(x, 'x', n);
    checkArray(y, 'y', n);
    checkFinite(alpha, 'alpha');
    FORWARD[kind](x, y, n, alpha);
  },

  backward(kind: Activation, x: FloatArray, y: FloatArray, dy: FloatArray, dx: FloatArray, n: number, alpha: number): void {
    checkOneOf(kind, 'kind', ACTIVATIONS);
    checkSize(n, 'n');
    checkArray(x, 'x', n);
    checkArray(y, 'y', n);
    checkArray(dy, 'dy', n);
    checkArray(dx, 'dx', n);
    checkFinite(alpha, 'alpha');
    BACKWARD[kind](x, y, dy, dx, n, alpha);
  },
};
