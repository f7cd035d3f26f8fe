import { GAUSSIAN_SIGNATURES, type GaussianKernels } from '../kernels/gaussian';
import type { NativeAddon } from '../native';
import { nativeKernels } from '../registry';

/**
 * Native diagonal-Gaussian kernels (native/napi/gaussian.cc): the bindings its signatures name, called directly. The binding
 * checks every argument (Float32Array only, exact lengths, overlaps as declared).
 */
export function cpuGaussian(addon: NativeAddon): GaussianKernels {
  return nativeKernels(addon, GAUSSIAN_SIGNATURES);
}
