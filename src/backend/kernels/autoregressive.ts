import type { FloatArray } from '../types';

/**
 * Autoregressive flows (MADE, IAF, MAF): Germain et al. 2015, Kingma et al.
 * 2016, Papamakarios et al. 2017.
 *
 * The masked network (MADE) produces per row `ms` `[batch, 2·dim]`: the first
 * `dim` columns are m (shift), the last `dim` columns are s (IAF gate
 * pre-activation) or α (MAF log-scale), each depending only on the inputs
 * that come before it in the ordering.
 *
 *   IAF gate:   σ = sigmoid(s),  y = σ ⊙ z + (1 − σ) ⊙ m,
 *               log|det| = Σ log σ = −Σ softplus(−s)
 *   MAF affine: u = (x − m) ⊙ exp(−α),  log|det| = −Σ α     (x → u, density direction)
 *
 * Masks come from unit degrees (Germain et al.): for a weight `[outDim, inDim]`
 * the connection (o, i) is kept when `outDegrees[o] ≥ inDegrees[i]`, or `>`
 * when `strict` (the output layer).
 */
export interface AutoregressiveKernels {
  /**
   * `out = weight ⊙ mask(outDegrees, inDegrees, strict)`, `[outDim, inDim]`.
   * `out` may be `weight` itself (used to mask gradients in place).
   */
  maskWeights(weight: FloatArray, outDegrees: Uint32Array, inDegrees: Uint32Array, strict: boolean, out: FloatArray, outDim: number, inDim: number): void;

  /**
   * A MADE layer forward: `maskedWeight = weight ⊙ mask` (as `maskWeights`,
   * kept by the caller for backward) and `y = x · maskedWeightᵀ + bias`
   * `[batch, outDim]` (`bias` may be null). Kernels may skip the terms of
   * entries the mask cuts (they are zero).
   */
  maskedDenseForward(
    x: FloatArray,
    weight: FloatArray,
    bias: FloatArray | null,
    outDegrees: Uint32Array,
    inDegrees: Uint32Array,
    strict: boolean,
    maskedWeight: FloatArray,
    y: FloatArray,
    batch: number,
    inDim: number,
    outDim: number,
  ): void;
  /**
   * Its backward given `dy` `[batch, outDim]` and the forward's `maskedWeight`:
   * `dWeight += (dyᵀ x) ⊙ mask` (entries the mask cuts set to exactly 0),
   * `dBias += Σ_rows dy`, and `dx = dy · maskedWeight` (added to when
   * `accumulateDx`). Each output may be null to skip it.
   */
  maskedDenseBackward(
    x: FloatArray,
    maskedWeight: FloatArray,
    dy: FloatArray,
    outDegrees: Uint32Array,
    inDegrees: Uint32Array,
    strict: boolean,
    dx: FloatArray | null,
    dWeight: FloatArray | null,
    dBias: FloatArray | null,
    batch: number,
    inDim: number,
    outDim: number,
    accumulateDx: boolean,
  ): void;

  /** IAF step: `y` `[batch, dim]` and `logDet` `[batch]` (overwritten) from z and ms. */
  iafForward(z: FloatArray, ms: FloatArray, y: FloatArray, logDet: FloatArray, batch: number, dim: number): void;
  /**
   * Given `dy = ∂L/∂y` and `dLogDet = ∂L/∂logDet`: `dz` `[batch, dim]` and
   * `dms` `[batch, 2·dim]` (both overwritten).
   */
  iafBackward(z: FloatArray, ms: FloatArray, dy: FloatArray, dLogDet: FloatArray, dz: FloatArray, dms: FloatArray, batch: number, dim: number): void;
  /**
   * Inverse IAF step for given ms: `z = (y − (1 − σ) ⊙ m) / σ`, `logDet = Σ softplus(−s)`
   * (log|det ∂z/∂y|). One of the sequential passes of the inverse.
   */
  iafInverse(y: FloatArray, ms: FloatArray, z: FloatArray, logDet: FloatArray, batch: number, dim: number): void;

  /** MAF step in the density direction: `u` `[batch, dim]` and `logDet = −Σ α` `[batch]`. */
  mafForward(x: FloatArray, ms: FloatArray, u: FloatArray, logDet: FloatArray, batch: number, dim: number): void;
  /** Given `du` and `dLogDet`: `dx` `[batch, dim]` and `dms` `[batch, 2·dim]` (overwritten). */
  mafBackward(x: FloatArray, ms: FloatArray, du: FloatArray, dLogDet: FloatArray, dx: FloatArray, dms: FloatArray, batch: number, dim: number): void;
  /**
   * Inverse MAF step for given ms: `x = u ⊙ exp(α) + m`, `logDet = Σ α`
   * (log|det ∂x/∂u|). One of the sequential passes of the inverse.
   */
  mafInverse(u: FloatArray, ms: FloatArray, x: FloatArray, logDet: FloatArray, batch: number, dim: number): void;
}
