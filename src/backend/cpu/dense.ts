import type { DenseKernels } from '../kernels/dense';
import type { NativeAddon } from '../native';

// Placeholder until the dense kernels land.
export function cpuDense(_addon: NativeAddon): DenseKernels {
  return {} as DenseKernels;
}
