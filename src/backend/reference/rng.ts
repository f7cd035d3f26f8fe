import type { RngKernels } from '../kernels/rng';

// Placeholder until the rng kernels land.
export const referenceRng = {} as RngKernels;
