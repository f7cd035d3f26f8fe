import type { DenseKernels } from '../kernels/dense';

// Placeholder until the dense kernels land.
export const referenceDense = {} as DenseKernels;
