/**
 * cpu autoregressive kernels: a thin layer over the native addon
 * (native/napi/autoregressive.cc), which checks every argument
 * (Float32Array/Uint32Array only, exact lengths, no overlapping outputs).
 */
import type { AutoregressiveKernels } from '../kernels/autoregressive';
import type { NativeAddon } from '../native';

type F = Float32Array;

export function cpuAutoregressive(addon: NativeAddon): AutoregressiveKernels {
  // The casts only satisfy the type checker: the binding rejects anything
  // but a Float32Array with a TypeError naming the argument.
  return {
    maskWeights(weight, outDegrees, inDegrees, strict, out, outDim, inDim) {
      addon.autoregressiveMaskWeights(weight as F, outDegrees, inDegrees, strict, out as F, outDim, inDim);
    },
    maskedDenseForward(x, weight, bias, outDegrees, inDegrees, strict, maskedWeight, y, batch, inDim, outDim) {
      addon.autoregressiveMaskedDenseForward(
        x as F,
        weight as F,
        bias as F | null,
        outDegrees,
        inDegrees,
        strict,
        maskedWeight as F,
        y as F,
        batch,
        inDim,
        outDim,
      );
    },
    maskedDenseBackward(x, maskedWeight, dy, outDegrees, inDegrees, strict, dx, dWeight, dBias, batch, inDim, outDim, accumulateDx) {
      addon.autoregressiveMaskedDenseBackward(
        x as F,
        maskedWeight as F,
        dy as F,
        outDegrees,
        inDegrees,
        strict,
        dx as F | null,
        dWeight as F | null,
        dBias as F | null,
        batch,
        inDim,
        outDim,
        accumulateDx,
      );
    },
    iafForward(z, ms, y, logDet, batch, dim) {
      addon.autoregressiveIafForward(z as F, ms as F, y as F, logDet as F, batch, dim);
    },
    iafBackward(z, ms, dy, dLogDet, dz, dms, batch, dim) {
      addon.autoregressiveIafBackward(z as F, ms as F, dy as F, dLogDet as F, dz as F, dms as F, batch, dim);
    },
    iafInverse(y, ms, z, logDet, batch, dim) {
      addon.autoregressiveIafInverse(y as F, ms as F, z as F, logDet as F, batch, dim);
    },
    mafForward(x, ms, u, logDet, batch, dim) {
      addon.autoregressiveMafForward(x as F, ms as F, u as F, logDet as F, batch, dim);
    },
    mafBackward(x, ms, du, dLogDet, dx, dms, batch, dim) {
      addon.autoregressiveMafBackward(x as F, ms as F, du as F, dLogDet as F, dx as F, dms as F, batch, dim);
    },
    mafInverse(u, ms, x, logDet, batch, dim) {
      addon.autoregressiveMafInverse(u as F, ms as F, x as F, logDet as F, batch, dim);
    },
  };
}
