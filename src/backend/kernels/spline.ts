import { expected, rangeError } from '../../errors';
import { input, kernel, lateIntegerBetween, lateRange, output, size, sizeProduct, type KernelFunction, type Sizes } from './signature';

/**
 * Monotone rational-quadratic splines (neural spline flows, Durkan et al.
 * 2019), elementwise over columns `[start, start + width)` of `[batch, dim]`
 * arrays: K bins on [−B, B), identity outside (log-det 0 there).
 *
 * Parameters per row are blocked like MADE's outputs: `params`
 * `[batch, 3K − 1, width]`, entry (r, j, i) at `(r·(3K−1) + j)·width + i`:
 *
 *   j ∈ [0, K):       θw, unnormalized bin widths
 *   j ∈ [K, 2K):      θh, unnormalized bin heights
 *   j ∈ [2K, 3K − 1): θd, unnormalized slopes at the K − 1 interior knots
 *
 * With min = 1e-3 (`SPLINE_MIN_BIN`, `SPLINE_MIN_DERIVATIVE`, as in the
 * paper's code):
 *
 *   w = min + (1 − K·min)·softmax(θw),  knots x_k = −B + 2B·Σ_{j<k} w_j  (x_0 = −B, x_K = B)
 *   heights and knots y_k the same way from θh
 *   d_k = min + softplus(θd_{k−1} + c),  c = log(e^{1−min} − 1),  k = 1 … K − 1;  d_0 = d_K = 1
 *
 * so all-zero parameters give equal bins and unit slopes, the identity (the
 * offset c makes softplus(c) + min = 1). In bin k (x_k ≤ x < x_{k+1}), with
 * W, H the bin's width and height, s = H/W, ξ = (x − x_k)/W, t = ξ(1 − ξ):
 *
 *   y = y_k + H (s ξ² + d_k t) / (s + (d_k + d_{k+1} − 2s) t)
 *   dy/dx = s² (d_{k+1} ξ² + 2 s t + d_k (1 − ξ)²) / (s + (d_k + d_{k+1} − 2s) t)²
 *
 * Every knot x_k maps exactly onto y_k; x ≥ B and x < −B are tails.
 * Outputs are written on the window columns only; other columns are left as
 * they are. Outputs must not share memory with inputs.
 */
export interface SplineKernels {
  /**
   * `forward(x, params, y, logDet, batch, dim, width, start, bins, bound)`: `y = spline(x)` on the
   * window; `logDet` `[batch]` (overwritten) = Σ log dy/dx over the row's window.
   */
  forward: KernelFunction<S['forward']>;
  /**
   * `backward(x, params, dy, dLogDet, dx, dParams, batch, dim, width, start, bins, bound)`: given
   * `dy` `[batch, dim]` (read on the window) and `dLogDet` `[batch]`: `dx` on the window columns
   * and `dParams` `[batch, 3K − 1, width]` (overwritten).
   */
  backward: KernelFunction<S['backward']>;
  /**
   * `inverse(y, params, x, logDet, batch, dim, width, start, bins, bound)`: `x = spline⁻¹(y)` on the
   * window, analytically (the root of a quadratic in ξ, in the form without cancellation);
   * `logDet` = −Σ log dy/dx = log|det ∂x/∂y| for the given params.
   */
  inverse: KernelFunction<S['inverse']>;
}

/** Smallest normalized bin width and height. */
export const SPLINE_MIN_BIN = 1e-3;
/** Smallest slope at a knot. */
export const SPLINE_MIN_DERIVATIVE = 1e-3;
/** Most bins (K·SPLINE_MIN_BIN must stay below 1). */
export const SPLINE_MAX_BINS = 999;

/** Unnormalized parameters per transformed element: K widths, K heights, K − 1 interior slopes. */
export function splineParamsPerElement(bins: number): number {
  return 3 * bins - 1;
}

/** The sizes in the binding's order: batch, dim, width (≤ dim), then start, bins and bound, then the array sizes. */
function splineSizes(s: Sizes, readLate: (name: string) => number): Sizes {
  if (s.width > s.dim) throw rangeError(expected(`integer between 0 and ${s.dim}`, 'width', s.width));
  readLate('start');
  const bins = readLate('bins');
  readLate('bound');
  return {
    values: sizeProduct(s.batch, s.dim, 'batch * dim'),
    params: sizeProduct(sizeProduct(s.batch, splineParamsPerElement(bins), 'params'), s.width, 'params'),
  };
}

const splineScalars = [
  size('batch'),
  size('dim'),
  size('width'),
  lateIntegerBetween('start', 0, (s) => s.dim - s.width),
  lateIntegerBetween('bins', 1, SPLINE_MAX_BINS),
  lateRange('bound', 1e-30, 1e30),
] as const;
const values = (s: Sizes) => s.values;
const params = (s: Sizes) => s.params;
const batch = (s: Sizes) => s.batch;

/** The spline calls, declared once; no output may overlap an earlier argument. */
export const SPLINE_SIGNATURES = {
  forward: kernel(
    'splineForward',
    [input('x', values), input('params', params), output('y', values), output('logDet', batch), ...splineScalars],
    'void',
    splineSizes,
  ),
  backward: kernel(
    'splineBackward',
    [
      input('x', values),
      input('params', params),
      input('dy', values),
      input('dLogDet', batch),
      output('dx', values),
      output('dParams', params),
      ...splineScalars,
    ],
    'void',
    splineSizes,
  ),
  inverse: kernel(
    'splineInverse',
    [input('y', values), input('params', params), output('x', values), output('logDet', batch), ...splineScalars],
    'void',
    splineSizes,
  ),
};

type S = typeof SPLINE_SIGNATURES;
