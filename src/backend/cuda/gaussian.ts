import { GAUSSIAN_SIGNATURES, type GaussianKernels } from '../kernels/gaussian';
import type { CudaAddon } from '../native';
import { nativeKernels } from '../registry';

/**
 * Diagonal-Gaussian kernels on the GPU (native/cuda/gaussian.cu, native/napi/cuda/gaussian.cc): the bindings its signatures name, called directly. The binding
 * checks every argument (Float32Array only, exact lengths, overlaps as declared).
 */
export function cudaGaussian(cuda: CudaAddon): GaussianKernels {
  return nativeKernels(cuda, GAUSSIAN_SIGNATURES);
}
