import type { FloatArray } from '../types';

/**
 * Glow pieces (Kingma & Dhariwal 2018) that are not matrix products: the
 * per-column affine map behind ActNorm and the elementwise affine flow, and
 * fixed column permutations. (The invertible linear map in LU form is a dense
 * product on a weight the module assembles from its factors.)
 *
 *   affine:     y[r, j] = x[r, j] · e^{logScale[j]} + shift[j],   log|det| = Σ_j logScale[j]
 *   permute:    y[r, j] = x[r, perm[j]]                           log|det| = 0
 *   unpermute:  x[r, perm[j]] = y[r, j]                           (its inverse and its backward)
 *
 * Arrays are row-major `[batch, dim]`; `logScale`, `shift` and `perm` are
 * `[dim]`, `perm` a permutation of 0..dim−1. Outputs must not overlap inputs.
 */
export interface GlowKernels {
  /** `y` `[batch, dim]` and `logDet` `[batch]` (overwritten). */
  affineForward(x: FloatArray, logScale: FloatArray, shift: FloatArray, y: FloatArray, logDet: FloatArray, batch: number, dim: number): void;
  /** `x = (y − shift) ⊙ e^{−logScale}` and `logDet = −Σ logScale` = log|det ∂x/∂y| (overwritten). */
  affineInverse(y: FloatArray, logScale: FloatArray, shift: FloatArray, x: FloatArray, logDet: FloatArray, batch: number, dim: number): void;
  /**
   * Given `dy = ∂L/∂y` and `dLogDet = ∂L/∂logDet` of a forward from `x`:
   * `dx = dy ⊙ e^{logScale}` (overwritten); `dLogScale[j] += Σ_r (dy·x·e^{logScale[j]} + dLogDet[r])`
   * and `dShift[j] += Σ_r dy[r, j]` (accumulated). The sums over rows are the
   * same bits at any thread count.
   */
  affineBackward(
    x: FloatArray,
    logScale: FloatArray,
    dy: FloatArray,
    dLogDet: FloatArray,
    dx: FloatArray,
    dLogScale: FloatArray,
    dShift: FloatArray,
    batch: number,
    dim: number,
  ): void;
  /** `y[r, j] = x[r, perm[j]]`. */
  permuteColumns(x: FloatArray, perm: Uint32Array, y: FloatArray, batch: number, dim: number): void;
  /** `x[r, perm[j]] = y[r, j]` (the inverse of permuteColumns). */
  unpermuteColumns(y: FloatArray, perm: Uint32Array, x: FloatArray, batch: number, dim: number): void;
}
