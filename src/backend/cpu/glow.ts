/**
 * cpu glow kernels: a thin layer over the native addon (native/napi/glow.cc),
 * which checks every argument (Float32Array/Uint32Array only, exact lengths,
 * a true permutation, no output overlapping another argument).
 */
import type { GlowKernels } from '../kernels/glow';
import type { NativeAddon } from '../native';

type F = Float32Array;

export function cpuGlow(addon: NativeAddon): GlowKernels {
  // The casts only satisfy the type checker: the binding rejects anything
  // but a Float32Array with a TypeError naming the argument.
  return {
    affineForward(x, logScale, shift, y, logDet, batch, dim) {
      addon.glowAffineForward(x as F, logScale as F, shift as F, y as F, logDet as F, batch, dim);
    },
    affineInverse(y, logScale, shift, x, logDet, batch, dim) {
      addon.glowAffineInverse(y as F, logScale as F, shift as F, x as F, logDet as F, batch, dim);
    },
    affineBackward(x, logScale, dy, dLogDet, dx, dLogScale, dShift, batch, dim) {
      addon.glowAffineBackward(x as F, logScale as F, dy as F, dLogDet as F, dx as F, dLogScale as F, dShift as F, batch, dim);
    },
    permuteColumns(x, perm, y, batch, dim) {
      addon.glowPermuteColumns(x as F, perm, y as F, batch, dim);
    },
    unpermuteColumns(y, perm, x, batch, dim) {
      addon.glowUnpermuteColumns(y as F, perm, x as F, batch, dim);
    },
  };
}
