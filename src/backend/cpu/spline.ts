/**
 * cpu spline kernels: a thin layer over the native addon (native/napi/spline.cc),
 * which checks every argument (Float32Array only, exact lengths, no
 * overlapping outputs).
 */
import type { SplineKernels } from '../kernels/spline';
import type { NativeAddon } from '../native';

type F = Float32Array;

export function cpuSpline(addon: NativeAddon): SplineKernels {
  // The casts only satisfy the type checker: the binding rejects anything
  // but a Float32Array with a TypeError naming the argument.
  return {
    forward(x, params, y, logDet, batch, dim, width, start, bins, bound) {
      addon.splineForward(x as F, params as F, y as F, logDet as F, batch, dim, width, start, bins, bound);
    },
    backward(x, params, dy, dLogDet, dx, dParams, batch, dim, width, start, bins, bound) {
      addon.splineBackward(x as F, params as F, dy as F, dLogDet as F, dx as F, dParams as F, batch, dim, width, start, bins, bound);
    },
    inverse(y, params, x, logDet, batch, dim, width, start, bins, bound) {
      addon.splineInverse(y as F, params as F, x as F, logDet as F, batch, dim, width, start, bins, bound);
    },
  };
}
