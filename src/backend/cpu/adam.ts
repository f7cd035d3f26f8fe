import type { AdamKernels } from '../kernels/adam';
import type { NativeAddon } from '../native';

// Placeholder until the adam kernels land.
export function cpuAdam(_addon: NativeAddon): AdamKernels {
  return {} as AdamKernels;
}
