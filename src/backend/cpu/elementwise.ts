import type { ElementwiseKernels } from '../kernels/elementwise';
import type { NativeAddon } from '../native';

// Placeholder until the elementwise kernels land.
export function cpuElementwise(_addon: NativeAddon): ElementwiseKernels {
  return {} as ElementwiseKernels;
}
