import type { ElementwiseKernels } from '../kernels/elementwise';

// Placeholder until the elementwise kernels land.
export const referenceElementwise = {} as ElementwiseKernels;
