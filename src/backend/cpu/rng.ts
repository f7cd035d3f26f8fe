import type { RngKernels } from '../kernels/rng';
import type { NativeAddon } from '../native';

/** Native Philox streams; the binding checks seed, offset and the output array. */
export function cpuRng(addon: NativeAddon): RngKernels {
  return {
    normal: (seed, offset, out) => addon.rngNormal(seed, offset, out as Float32Array),
    uniform: (seed, offset, out) => addon.rngUniform(seed, offset, out as Float32Array),
  };
}
