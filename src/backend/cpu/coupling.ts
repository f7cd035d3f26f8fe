import { COUPLING_SIGNATURES, type CouplingKernels } from '../kernels/coupling';
import type { NativeAddon } from '../native';
import { nativeKernels } from '../registry';

/**
 * Native coupling kernels (native/napi/coupling.cc): the bindings its
 * signatures name, called directly. The binding checks every argument
 * (Float32Array only, exact lengths, the column window, no overlaps).
 */
export function cpuCoupling(addon: NativeAddon): CouplingKernels {
  return nativeKernels(addon, COUPLING_SIGNATURES);
}
