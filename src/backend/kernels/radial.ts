import type { FloatArray } from '../types';

/**
 * Radial flows (Rezende & Mohamed 2015): a stack of K layers run as one
 * kernel call over a batch `[batch, dim]`,
 *
 *     f_k(z) = z + β h(α, r)(z − z0),   r = ‖z − z0‖,   h = 1/(α + r)
 *     α = softplus(α̃),   β = −α + softplus(β̃)          (so 1 + βh > 0: invertible)
 *     log|det J_k| = (D − 1) log(1 + βh) + log(1 + βh + βh'r),   h' = −1/(α + r)²
 *
 * evaluated as (D − 1) log((r + softplus(β̃))/(α + r)) + log((r(2α + r) + α·softplus(β̃))/(α + r)²),
 * which has no cancellation as β → −α.
 *
 * Parameter layout, P = dim + 2 per layer (α̃, β̃ are the raw, unconstrained values):
 * - shared: `params [K·P]` = `z0 [K, dim] | α̃ [K] | β̃ [K]`;
 * - amortized: `params [batch, K·P]`, each row laid out like the shared array.
 *
 * `stash [batch, K]` carries the radius r_k of every layer from forward to
 * backward, which rebuilds the layer inputs from `x`. Outputs must not share
 * memory with any other argument.
 */
export interface RadialKernels {
  /**
   * Writes `y [batch, dim]`, `logDet [batch]` (summed over layers),
   * `layerLogDet [batch, K]` when non-null, and `stash`. Returns the number
   * of rows whose y or log-det is not finite.
   */
  forward(
    x: FloatArray,
    params: FloatArray,
    y: FloatArray,
    logDet: FloatArray,
    layerLogDet: FloatArray | null,
    stash: FloatArray,
    batch: number,
    dim: number,
    layers: number,
    amortized: boolean,
  ): number;

  /**
   * Backpropagates through the forward of `x` that produced `stash`, given
   * `dy = ∂L/∂y` and `dLogDet = ∂L/∂logDet`: writes `dx [batch, dim]`.
   * Shared: `dParams [K·P]` is accumulated into (+=). Amortized: `dParams
   * [batch, K·P]` is overwritten. Returns the number of rows whose dx (or
   * amortized dParams row) is not finite.
   */
  backward(
    x: FloatArray,
    stash: FloatArray,
    params: FloatArray,
    dy: FloatArray,
    dLogDet: FloatArray,
    dx: FloatArray,
    dParams: FloatArray,
    batch: number,
    dim: number,
    layers: number,
    amortized: boolean,
  ): number;

  /**
   * Inverts the stack in closed form (float64): with ρ = ‖y − z0‖ the radius
   * is the positive root of r² + (softplus(β̃) − ρ) r − ρα = 0, then
   * z − z0 = (y − z0)(α + r)/(r + softplus(β̃)). Writes `x` and `logDet` =
   * log|det ∂x/∂y|; rows with a non-finite result get a NaN log-det and are
   * counted in the return value.
   */
  inverse(
    y: FloatArray,
    params: FloatArray,
    x: FloatArray,
    logDet: FloatArray,
    batch: number,
    dim: number,
    layers: number,
    amortized: boolean,
  ): number;
}

/** Parameters per radial layer: z0 (dim), α̃ (1), β̃ (1). */
export function radialParamSize(dim: number): number {
  return dim + 2;
}
