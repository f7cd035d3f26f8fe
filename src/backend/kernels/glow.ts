import { input, kernel, output, perColumn, perRow, perValue, permutation, rowScalars, rowSizes, type KernelFunction } from './signature';

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
 * `[dim]`, `perm` a permutation of 0..dim−1. Outputs must not overlap inputs
 * (the declarations below say so: no output may alias).
 */
export const GLOW_SIGNATURES = {
  affineForward: kernel(
    'glowAffineForward',
    [input('x', perValue), input('logScale', perColumn), input('shift', perColumn), output('y', perValue), output('logDet', perRow), ...rowScalars],
    'void',
    rowSizes,
  ),
  affineInverse: kernel(
    'glowAffineInverse',
    [input('y', perValue), input('logScale', perColumn), input('shift', perColumn), output('x', perValue), output('logDet', perRow), ...rowScalars],
    'void',
    rowSizes,
  ),
  affineBackward: kernel(
    'glowAffineBackward',
    [
      input('x', perValue),
      input('logScale', perColumn),
      input('dy', perValue),
      input('dLogDet', perRow),
      output('dx', perValue),
      output('dLogScale', perColumn),
      output('dShift', perColumn),
      ...rowScalars,
    ],
    'void',
    rowSizes,
  ),
  permuteColumns: kernel('glowPermuteColumns', [input('x', perValue), permutation('perm', perColumn), output('y', perValue), ...rowScalars], 'void', rowSizes),
  unpermuteColumns: kernel(
    'glowUnpermuteColumns',
    [input('y', perValue), permutation('perm', perColumn), output('x', perValue), ...rowScalars],
    'void',
    rowSizes,
  ),
};

type S = typeof GLOW_SIGNATURES;

export interface GlowKernels {
  /** `affineForward(x, logScale, shift, y, logDet, batch, dim)`: `y` `[batch, dim]` and `logDet` `[batch]` (overwritten). */
  affineForward: KernelFunction<S['affineForward']>;
  /** `affineInverse(y, logScale, shift, x, logDet, batch, dim)`: `x = (y − shift) ⊙ e^{−logScale}` and `logDet = −Σ logScale` = log|det ∂x/∂y| (overwritten). */
  affineInverse: KernelFunction<S['affineInverse']>;
  /**
   * `affineBackward(x, logScale, dy, dLogDet, dx, dLogScale, dShift, batch, dim)`:
   * given `dy = ∂L/∂y` and `dLogDet = ∂L/∂logDet` of a forward from `x`:
   * `dx = dy ⊙ e^{logScale}` (overwritten); `dLogScale[j] += Σ_r (dy·x·e^{logScale[j]} + dLogDet[r])`
   * and `dShift[j] += Σ_r dy[r, j]` (accumulated). The sums over rows are the
   * same bits at any thread count.
   */
  affineBackward: KernelFunction<S['affineBackward']>;
  /** `permuteColumns(x, perm, y, batch, dim)`: `y[r, j] = x[r, perm[j]]`. */
  permuteColumns: KernelFunction<S['permuteColumns']>;
  /** `unpermuteColumns(y, perm, x, batch, dim)`: `x[r, perm[j]] = y[r, j]` (the inverse of permuteColumns). */
  unpermuteColumns: KernelFunction<S['unpermuteColumns']>;
}
