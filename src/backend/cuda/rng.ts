import type { RngKernels } from '../kernels/rng';
import type { CudaAddon } from '../native';

/** Philox streams on the GPU (native/cuda/rng.cu), bit-identical to cpu and reference. */
export function cudaRng(cuda: CudaAddon): RngKernels {
  return {
    normal: (seed, offset, out) => cuda.rngNormal(seed, offset, out as Float32Array),
    uniform: (seed, offset, out) => cuda.rngUniform(seed, offset, out as Float32Array),
  };
}
