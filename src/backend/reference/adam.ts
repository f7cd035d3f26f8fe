import type { AdamKernels } from '../kernels/adam';

// Placeholder until the adam kernels land.
export const referenceAdam = {} as AdamKernels;
