import { expected, rangeError, typeError } from '../../errors';
import { checkKnownKeys, checkOneOf, checkPositiveInt, checkSize, sizeProduct } from '../../validate';
import type { FloatArray } from '../types';

/**
 * Sylvester flows (van den Berg, Hasenclever, Tomczak & Welling 2018). One
 * layer maps a row z (D values) to
 *
 *     f(z) = z + Q R h(R̃ Qᵀ z + b),    h = tanh,
 *     log|det ∂f/∂z| = Σ_i log|1 + h'(a_i) R_ii R̃_ii|,   a = R̃ Qᵀ z + b,
 *
 * with R, R̃ upper triangular M×M and Q a D×M matrix with orthonormal columns.
 * A call runs a stack of K layers (layer 0 first) on every row.
 *
 * Variants (how Q is made):
 * - `orthogonal`: M ≤ D; Q comes from an unconstrained D×M matrix A: first
 *   A / ‖A‖_F, then Björck steps Q ← Q (I + ½ (I − QᵀQ)) until
 *   max|QᵀQ − I| ≤ tolerance or maxSteps steps were taken (the paper's code
 *   does the same, with a Frobenius test and 100 steps).
 * - `householder`: M = D; Q = H_{n−1} ⋯ H_1 H_0 with H_j = I − 2 v̂_j v̂_jᵀ,
 *   v̂_j = v_j / ‖v_j‖, from n = `householders` raw vectors v_j.
 * - `triangular`: M = D; Q is the identity on even layers and the reversal
 *   permutation ((Qᵀz)_i = z_{D−1−i}) on odd layers.
 *
 * Parameters. R's diagonal is R_ii = tanh(clamp(ρ_i, −8, 8)) and R̃'s is
 * R̃_ii = tanh(clamp(ρ̃_i, −8, 8)): |tanh(8)| = 1 − 2.3e−7 is below 1 even in
 * float32, so R_ii R̃_ii > −1 holds for any raw value and every log-det term
 * is finite (≥ log(4.5e−7) ≈ −14.6). The clamp has zero gradient outside
 * (−8, 8), where tanh' < 4.5e−7 anyway. The strictly upper triangles of R and
 * R̃ share one M×M matrix S, as in the paper's code (`full_d`):
 * R_ij = S_ij and R̃_ij = S_ji for i < j; S's diagonal is unused (gradient 0).
 *
 * Layout of one parameter set (`sylvesterLayout(shape).size` values), each
 * kind stored for all K layers before the next kind (kind-major), so that an
 * encoder's output head is the concatenation of the paper's heads:
 *
 *     offDiagonal    [K, M, M]   S
 *     diagonal       [K, M]      ρ   (R_ii = tanh ρ_i)
 *     diagonalTilde  [K, M]      ρ̃   (R̃_ii = tanh ρ̃_i)
 *     bias           [K, M]      b
 *     q              [K, D, M]   A   (orthogonal)
 *                    [K, n, D]   v_j (householder; n = householders)
 *                    (none)          (triangular)
 *
 * Shared parameters: one set for the whole batch. Amortized parameters: one
 * set per row, `params` is `[batch, size]`.
 *
 * Orthogonalized Q (`orthogonalize` output, `[sets, K, D, M]` row-major; for
 * householder M = D) is a separate step that runs once per call for shared
 * parameters and once per row for amortized ones; forward, backward and
 * inverse read it. Its gradient is mapped back to the raw parameters by
 * `orthogonalizeBackward`, which backpropagates through the same Björck steps
 * (recomputed) or the Householder product.
 *
 * Every kernel writes into caller-provided arrays (overwriting them).
 */
export const SYLVESTER_VARIANTS = ['orthogonal', 'householder', 'triangular'] as const;
export type SylvesterVariant = (typeof SYLVESTER_VARIANTS)[number];

/** Bound applied to the raw diagonal values before tanh (see above). */
export const SYLVESTER_DIAGONAL_CLAMP = 8;

/** Most Björck steps or inverse iterations a call accepts (a budget, refused above this rather than run for hours). */
export const SYLVESTER_MAX_ITERATIONS = 10000;

export interface SylvesterShape {
  variant: SylvesterVariant;
  /** D: width of a row. */
  dim: number;
  /** M: columns of Q and size of R, R̃ (orthogonal: 1 ≤ M ≤ D; others: M = D). */
  m: number;
  /** K: layers in the stack. */
  layers: number;
  /** n: Householder reflections per layer (householder variant, ≥ 1; 0 for the others). */
  householders: number;
}

/** Validates a shape object (every backend's kernels call it first; messages are shared). */
export function checkSylvesterShape(shape: unknown): SylvesterShape {
  if (typeof shape !== 'object' || shape === null) throw typeError(expected('Sylvester shape object', 'shape', shape));
  checkKnownKeys(shape, 'shape', ['variant', 'dim', 'm', 'layers', 'householders']);
  const s = shape as Record<string, unknown>;
  const variant = checkOneOf(s.variant, 'shape.variant', SYLVESTER_VARIANTS);
  const dim = checkPositiveInt(s.dim, 'shape.dim');
  const m = checkPositiveInt(s.m, 'shape.m');
  const layers = checkPositiveInt(s.layers, 'shape.layers');
  const householders = checkSize(s.householders, 'shape.householders');
  if (variant === 'orthogonal') {
    if (m > dim) throw rangeError(expected(`integer between 1 and dim (${dim})`, 'shape.m', m));
  } else if (m !== dim) {
    throw rangeError(expected(`dim (${dim}) for the ${variant} variant`, 'shape.m', m));
  }
  if (variant === 'householder') {
    if (householders < 1) throw rangeError(expected('positive integer for the householder variant', 'shape.householders', householders));
  } else if (householders !== 0) {
    throw rangeError(expected(`0 for the ${variant} variant`, 'shape.householders', householders));
  }
  sizeProduct(layers, dim, Math.max(m, householders, 1));
  return { variant, dim, m, layers, householders };
}

export interface SylvesterLayout {
  /** Offsets of each kind inside one parameter set. */
  offDiagonal: number;
  diagonal: number;
  diagonalTilde: number;
  bias: number;
  q: number;
  /** Raw Q values per layer: D·M (orthogonal), n·D (householder), 0 (triangular). */
  qRawPerLayer: number;
  /** Values of one parameter set (all K layers). */
  size: number;
  /** Values of orthogonalized Q per layer and set: D·M (orthogonal, householder), 0 (triangular). */
  qPerLayer: number;
  /** Values `saved` holds per row: K·(D + M) (layer inputs and activations; contents are backend-private). */
  savedPerRow: number;
}

/** Where each parameter kind lives; see the layout table above. Does not validate `shape`. */
export function sylvesterLayout(shape: SylvesterShape): SylvesterLayout {
  const { variant, dim: d, m, layers: k, householders: n } = shape;
  const qRawPerLayer = variant === 'orthogonal' ? d * m : variant === 'householder' ? n * d : 0;
  const offDiagonal = 0;
  const diagonal = offDiagonal + k * m * m;
  const diagonalTilde = diagonal + k * m;
  const bias = diagonalTilde + k * m;
  const q = bias + k * m;
  return {
    offDiagonal,
    diagonal,
    diagonalTilde,
    bias,
    q,
    qRawPerLayer,
    size: q + k * qRawPerLayer,
    qPerLayer: variant === 'triangular' ? 0 : d * m,
    savedPerRow: k * (d + m),
  };
}

export interface SylvesterBjorckOptions {
  /** Most Björck steps per matrix (orthogonal variant), 0 … SYLVESTER_MAX_ITERATIONS. */
  maxSteps: number;
  /** Stop once max|QᵀQ − I| ≤ tolerance (> 0). */
  tolerance: number;
}

export interface SylvesterInverseOptions {
  /** Most iterations of each scalar Newton solve and of the outer refinement, 1 … SYLVESTER_MAX_ITERATIONS. */
  maxIterations: number;
  /** Converged when max|f(x) − y| ≤ tolerance · (1 + max|y|) for the row (> 0). */
  tolerance: number;
}

export interface SylvesterKernels {
  /**
   * Builds Q `[sets, K, qPerLayer]` from the raw values in `params`
   * `[sets, size]`. Returns the worst max|QᵀQ − I| over all matrices for the
   * orthogonal variant (0 for the others), or NaN when some raw matrix or
   * vector is zero or not finite (Q undefined). A value above
   * `options.tolerance` means the Björck iteration did not converge.
   * The triangular variant has no Q (q has length 0) and returns 0.
   */
  orthogonalize(shape: SylvesterShape, sets: number, params: FloatArray, q: FloatArray, options: SylvesterBjorckOptions): number;

  /**
   * Given `gradQ` = ∂L/∂Q `[sets, K, qPerLayer]`, writes ∂L/∂(raw Q values)
   * into the `q` section of `gradParams` `[sets, size]` (other sections are
   * left as they are). `options` must be those given to `orthogonalize`.
   */
  orthogonalizeBackward(
    shape: SylvesterShape,
    sets: number,
    params: FloatArray,
    gradQ: FloatArray,
    gradParams: FloatArray,
    options: SylvesterBjorckOptions,
  ): void;

  /**
   * y `[batch, D]` = the K-layer stack applied to x `[batch, D]`; logDet
   * `[batch]` = Σ over layers of log|det J|. `params` is `[size]` (shared) or
   * `[batch, size]` (amortized); `q` the matching orthogonalize output.
   * `saved` `[batch, savedPerRow]` receives what backward needs (null: not kept).
   */
  forward(
    shape: SylvesterShape,
    batch: number,
    amortized: boolean,
    x: FloatArray,
    params: FloatArray,
    q: FloatArray,
    y: FloatArray,
    logDet: FloatArray,
    saved: FloatArray | null,
  ): void;

  /**
   * Backpropagates through the forward call that filled `saved`. gradY is
   * ∂L/∂y `[batch, D]`, gradLogDet ∂L/∂logDet `[batch]`. Writes gradX
   * `[batch, D]`; gradParams (`[size]` summed over rows when shared,
   * `[batch, size]` when amortized) for every section except `q`, which is
   * left as it is (orthogonalizeBackward fills it); and gradQ ∂L/∂Q (same
   * shape as q, summed over rows when shared; length 0 for triangular).
   */
  backward(
    shape: SylvesterShape,
    batch: number,
    amortized: boolean,
    params: FloatArray,
    q: FloatArray,
    saved: FloatArray,
    gradY: FloatArray,
    gradLogDet: FloatArray,
    gradX: FloatArray,
    gradParams: FloatArray,
    gradQ: FloatArray,
  ): void;

  /**
   * x = f⁻¹(y) row by row, layers in reverse order, and logDet `[batch]` =
   * log|det ∂x/∂y| (the negative of the forward log-det at x). Each layer is
   * solved in the M-dimensional coordinates w = Qᵀx, where the system is
   * triangular: one monotone scalar equation per coordinate, solved by
   * Newton's method safeguarded by bisection; a few outer refinement steps
   * absorb QᵀQ ≠ I. Returns the number of rows that did not converge
   * (their x is set to NaN); 0 on success.
   */
  inverse(
    shape: SylvesterShape,
    batch: number,
    amortized: boolean,
    y: FloatArray,
    params: FloatArray,
    q: FloatArray,
    x: FloatArray,
    logDet: FloatArray,
    options: SylvesterInverseOptions,
  ): number;
}
