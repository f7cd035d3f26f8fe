import type { FloatArray } from '../types';

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
  /** `y = spline(x)` on the window; `logDet` `[batch]` (overwritten) = Σ log dy/dx over the row's window. */
  forward(
    x: FloatArray,
    params: FloatArray,
    y: FloatArray,
    logDet: FloatArray,
    batch: number,
    dim: number,
    width: number,
    start: number,
    bins: number,
    bound: number,
  ): void;
  /**
   * Given `dy` `[batch, dim]` (read on the window) and `dLogDet` `[batch]`:
   * `dx` on the window columns and `dParams` `[batch, 3K − 1, width]` (overwritten).
   */
  backward(
    x: FloatArray,
    params: FloatArray,
    dy: FloatArray,
    dLogDet: FloatArray,
    dx: FloatArray,
    dParams: FloatArray,
    batch: number,
    dim: number,
    width: number,
    start: number,
    bins: number,
    bound: number,
  ): void;
  /**
   * `x = spline⁻¹(y)` on the window, analytically (the root of a quadratic
   * in ξ, in the form without cancellation); `logDet` = −Σ log dy/dx =
   * log|det ∂x/∂y| for the given params.
   */
  inverse(
    y: FloatArray,
    params: FloatArray,
    x: FloatArray,
    logDet: FloatArray,
    batch: number,
    dim: number,
    width: number,
    start: number,
    bins: number,
    bound: number,
  ): void;
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
