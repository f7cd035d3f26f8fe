import { LIKELIHOOD_SIGNATURES, type LikelihoodKernels } from '../kernels/likelihood';
import type { CudaAddon } from '../native';
import { nativeKernels } from '../registry';

/**
 * Observation log-likelihoods on the GPU (native/cuda/likelihood.cu, native/napi/cuda/likelihood.cc): the bindings its signatures name, called directly. The binding
 * checks every argument (Float32Array only, exact lengths, overlaps as declared).
 */
export function cudaLikelihood(cuda: CudaAddon): LikelihoodKernels {
  return nativeKernels(cuda, LIKELIHOOD_SIGNATURES);
}
