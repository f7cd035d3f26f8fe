/**
 * cpu coupling kernels: a thin layer over the native addon
 * (native/napi/coupling.cc), which checks every argument (Float32Array only,
 * exact lengths, column ranges inside the rows, no overlapping outputs).
 */
import type { CouplingKernels } from '../kernels/coupling';
import type { NativeAddon } from '../native';

type F = Float32Array;

export function cpuCoupling(addon: NativeAddon): CouplingKernels {
  // The casts only satisfy the type checker: the binding rejects anything
  // but a Float32Array with a TypeError naming the argument.
  return {
    gather(x, context, out, batch, dim, offset, width, contextDim) {
      addon.couplingGather(x as F, context as F | null, out as F, batch, dim, offset, width, contextDim);
    },
    scatterAdd(dIn, dx, dContext, batch, dim, offset, width, contextDim) {
      addon.couplingScatterAdd(dIn as F, dx as F, dContext as F | null, batch, dim, offset, width, contextDim);
    },
    affineForward(x, h, scale, y, logDet, batch, dim, offset, width) {
      addon.couplingAffineForward(x as F, h as F, scale as F, y as F, logDet as F, batch, dim, offset, width);
    },
    affineInverse(y, h, scale, x, logDet, batch, dim, offset, width) {
      addon.couplingAffineInverse(y as F, h as F, scale as F, x as F, logDet as F, batch, dim, offset, width);
    },
    affineBackward(x, h, scale, dy, dLogDet, dx, dh, dScale, batch, dim, offset, width) {
      addon.couplingAffineBackward(x as F, h as F, scale as F, dy as F, dLogDet as F, dx as F, dh as F, dScale as F, batch, dim, offset, width);
    },
    additiveForward(x, h, y, batch, dim, offset, width) {
      addon.couplingAdditiveForward(x as F, h as F, y as F, batch, dim, offset, width);
    },
    additiveInverse(y, h, x, batch, dim, offset, width) {
      addon.couplingAdditiveInverse(y as F, h as F, x as F, batch, dim, offset, width);
    },
    additiveBackward(dy, dx, dh, batch, dim, offset, width) {
      addon.couplingAdditiveBackward(dy as F, dx as F, dh as F, batch, dim, offset, width);
    },
    scaleForward(x, logScale, y, logDet, batch, dim) {
      addon.couplingScaleForward(x as F, logScale as F, y as F, logDet as F, batch, dim);
    },
    scaleInverse(y, logScale, x, logDet, batch, dim) {
      addon.couplingScaleInverse(y as F, logScale as F, x as F, logDet as F, batch, dim);
    },
    scaleBackward(x, logScale, dy, dLogDet, dx, dLogScale, batch, dim) {
      addon.couplingScaleBackward(x as F, logScale as F, dy as F, dLogDet as F, dx as F, dLogScale as F, batch, dim);
    },
  };
}
