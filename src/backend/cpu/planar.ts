import { PLANAR_SIGNATURES, type PlanarKernels } from '../kernels/planar';
import type { NativeAddon } from '../native';
import { nativeKernels } from '../registry';

/**
 * Native planar-flow stacks (native/napi/planar.cc): the bindings its signatures name, called directly. The binding
 * checks every argument (Float32Array only, exact lengths, overlaps as declared).
 */
export function cpuPlanar(addon: NativeAddon): PlanarKernels {
  return nativeKernels(addon, PLANAR_SIGNATURES);
}
