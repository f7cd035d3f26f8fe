import type { RngKernels } from '../kernels/rng';
import type { NativeAddon } from '../native';

// Placeholder until the rng kernels land.
export function cpuRng(_addon: NativeAddon): RngKernels {
  return {} as RngKernels;
}
