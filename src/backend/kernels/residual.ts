import type { FloatArray } from '../types';

/**
 * Residual flows (Behrmann et al. 2019; Chen et al. 2019): f(x) = x + g(x),
 * g an MLP whose linear maps are scaled to spectral norm ≤ c < 1 and whose
 * activations have Lipschitz constant ≤ 1, so Lip(g) ≤ c and f is invertible.
 *
 * ## The network
 *
 * `sizes [L + 1]` (Uint32Array) = `[D, H_1, …, H_{L−1}, D]`: L linear layers,
 * layer l maps `sizes[l]` → `sizes[l + 1]`. `net` holds the (already
 * normalized) layers one after another: `W_0 [H_1, D] | b_0 [H_1] | W_1 | b_1 | …`,
 * weights `[out, in]` as PyTorch's nn.Linear. Per row,
 *
 *     a_0 = W_0 x + b_0,   a_l = W_l φ(a_{l−1}) + b_l,   g(x) = a_{L−1},   y = x + g(x)
 *
 * φ is applied after every layer but the last:
 *   - `lipswish` (0): φ(a) = a·sigmoid(a) / 1.1   (Lipschitz 0.99985 < 1)
 *   - `elu` (1):      φ(a) = a > 0 ? a : eᵃ − 1     (Lipschitz 1)
 * Backward needs φ'' (the log-det depends on φ'(a)); ELU's φ'' jumps at 0.
 *
 * ## log|det(I + J_g)| (positive: Lip(g) < 1 makes every eigenvalue of I + J_g lie in the right half plane)
 *
 * - exact (`noise` null): J_g by forward-mode (D tangents), an LU
 *   factorization with partial pivoting, log|det|. Cost per row
 *   D·Σ H_l H_{l+1} + D³/3; the stash keeps (I + J_g)⁻¹ (D² values) for backward.
 * - estimator (`noise [batch, D]`, `terms [batch]`): Chen et al. (2019),
 *   with v = noise row (Hutchinson vector) and n = terms row,
 *
 *     logDet ≈ Σ_{k=1}^{n} (−1)^{k+1} / k · vᵀ J^k v / P(N ≥ k),
 *
 *   (a terms value is floored and clamped to [0, 10⁶], NaN counting as 0),
 *   P(N ≥ k) = 1 for k ≤ exactTerms and (1 − p)^{k − exactTerms} beyond
 *   (N = exactTerms + a geometric count of success probability p). Unbiased
 *   when v has identity covariance and n is drawn so. The gradient is the
 *   Neumann-series estimate of ∂ log det = tr((I + J)⁻¹ ∂J):
 *
 *     wᵀ = Σ_{k=0}^{n} (−1)^k vᵀ J^k / P(N ≥ k),      ∂logDet ≈ wᵀ (∂J) v,
 *
 *   computed in forward with n vector-Jacobian products (the stash keeps v and
 *   w, 2D values), so memory does not grow with n. The logDet value and its
 *   gradient are unbiased estimates of their targets; the gradient is not the
 *   derivative of the returned value.
 *
 * `stash [batch, residualStashSize(sizes, exact)]` = the hidden
 * pre-activations a_0 … a_{L−2}, then (I + J)⁻¹ row-major (exact) or v | w
 * (estimator). Outputs must not share memory with any other argument.
 */
export const RESIDUAL_ACTIVATIONS = ['lipswish', 'elu'] as const;
export type ResidualActivation = (typeof RESIDUAL_ACTIVATIONS)[number];

/** Largest D the exact log-det accepts (its stash holds D² values per row, its cost grows with D³). */
export const RESIDUAL_EXACT_MAX_DIM = 64;

/** Values per row of the stash: the hidden pre-activations plus D² (exact) or 2D (estimator). */
export function residualStashSize(sizes: ArrayLike<number>, exact: boolean): number {
  const d = sizes[0];
  let n = 0;
  for (let l = 1; l + 1 < sizes.length; l++) n += sizes[l];
  return n + (exact ? d * d : 2 * d);
}

/** Length of the packed network `Σ_l (sizes[l+1]·sizes[l] + sizes[l+1])`. */
export function residualNetSize(sizes: ArrayLike<number>): number {
  let n = 0;
  for (let l = 0; l + 1 < sizes.length; l++) n += sizes[l + 1] * (sizes[l] + 1);
  return n;
}

/** Coefficient 1/P(N ≥ k) of term k of the Russian-roulette series. */
export function residualSeriesWeight(k: number, p: number, exactTerms: number): number {
  return k <= exactTerms ? 1 : Math.pow(1 - p, -(k - exactTerms));
}

export interface ResidualKernels {
  /**
   * Spectral normalization of one linear layer `weight [rows, cols]`:
   * `iterations` power-iteration steps `v ← Wᵀu/‖Wᵀu‖, u ← Wv/‖Wv‖` update
   * `u [rows]` and `v [cols]` in place (0 steps: they are read only), then
   * `σ̂ = uᵀ W v` (written to `sigma[0]`) and `out = W · min(1, c/σ̂)`.
   * A zero vector in the iteration leaves u and v as they were.
   */
  normalize(
    weight: FloatArray,
    u: FloatArray,
    v: FloatArray,
    out: FloatArray,
    sigma: FloatArray,
    rows: number,
    cols: number,
    c: number,
    iterations: number,
  ): void;
  /**
   * The gradient through normalize with u, v held fixed (as PyTorch's
   * spectral_norm): given `dOut = ∂L/∂out`, accumulates into `dWeight`
   * `dOut` when σ̂ ≤ c, else `(c/σ̂)·dOut − (c/σ̂²)·⟨dOut, W⟩·u vᵀ`.
   */
  normalizeBackward(
    weight: FloatArray,
    u: FloatArray,
    v: FloatArray,
    sigma: number,
    dOut: FloatArray,
    dWeight: FloatArray,
    rows: number,
    cols: number,
    c: number,
  ): void;
  /**
   * `y = x + g(x)` `[batch, D]`, `logDet [batch]` (exact when `noise` is
   * null, else the estimator with `noise [batch, D]` and `terms [batch]`),
   * and `stash`. Returns the number of rows whose y or logDet is not finite.
   */
  forward(
    x: FloatArray,
    net: FloatArray,
    sizes: Uint32Array,
    activation: ResidualActivation,
    noise: FloatArray | null,
    terms: FloatArray | null,
    p: number,
    exactTerms: number,
    y: FloatArray,
    logDet: FloatArray,
    stash: FloatArray,
    batch: number,
  ): number;
  /**
   * Backpropagates through the forward that wrote `stash` (at input `x`):
   * `dx [batch, D]` (overwritten) and `dNet` (accumulated, summed over rows),
   * from `dy [batch, D]` and `dLogDet [batch]`. `exact` says how that forward
   * computed the log-det. Returns the number of rows whose dx is not finite.
   */
  backward(
    x: FloatArray,
    net: FloatArray,
    sizes: Uint32Array,
    activation: ResidualActivation,
    exact: boolean,
    stash: FloatArray,
    dy: FloatArray,
    dLogDet: FloatArray,
    dx: FloatArray,
    dNet: FloatArray,
    batch: number,
  ): number;
  /**
   * `x = f⁻¹(y)` by the fixed-point iteration `x ← y − g(x)` from x = y,
   * in float64, until `‖Δx‖∞ ≤ tol` (then ‖x − f⁻¹(y)‖∞ ≤ tol·c/(1 − c)), and
   * `logDet = −log|det(I + J_g(x))|` (exact or estimated as in forward).
   * A row still moving after `maxIterations` steps, or not finite, gets a
   * NaN logDet; returns the number of such rows.
   */
  inverse(
    y: FloatArray,
    net: FloatArray,
    sizes: Uint32Array,
    activation: ResidualActivation,
    noise: FloatArray | null,
    terms: FloatArray | null,
    p: number,
    exactTerms: number,
    tol: number,
    maxIterations: number,
    x: FloatArray,
    logDet: FloatArray,
    batch: number,
  ): number;
}
