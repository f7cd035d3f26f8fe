import { SPLINE_SIGNATURES, type SplineKernels } from '../kernels/spline';
import type { NativeAddon } from '../native';
import { nativeKernels } from '../registry';

/**
 * Native spline kernels (native/napi/spline.cc): the bindings its signatures
 * name, called directly. The binding checks every argument (Float32Array
 * only, exact lengths, the window, bins and bound, no overlapping outputs).
 */
export function cpuSpline(addon: NativeAddon): SplineKernels {
  return nativeKernels(addon, SPLINE_SIGNATURES);
}
