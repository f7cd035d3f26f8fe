import { GLOW_SIGNATURES, type GlowKernels } from '../kernels/glow';
import type { NativeAddon } from '../native';
import { nativeKernels } from '../registry';

/**
 * Native glow kernels (native/napi/glow.cc): the bindings its signatures name, called directly. The binding
 * checks every argument (Float32Array only, exact lengths, overlaps as declared).
 */
export function cpuGlow(addon: NativeAddon): GlowKernels {
  return nativeKernels(addon, GLOW_SIGNATURES);
}
