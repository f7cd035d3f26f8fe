import { RADIAL_SIGNATURES, type RadialKernels } from '../kernels/radial';
import type { NativeAddon } from '../native';
import { nativeKernels } from '../registry';

/**
 * Native radial-flow stacks (native/napi/radial.cc): the bindings its signatures name, called directly. The binding
 * checks every argument (Float32Array only, exact lengths, overlaps as declared).
 */
export function cpuRadial(addon: NativeAddon): RadialKernels {
  return nativeKernels(addon, RADIAL_SIGNATURES);
}
