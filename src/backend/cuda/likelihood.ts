import type { LikelihoodKernels } from '../kernels/likelihood';
import type { CudaAddon } from '../native';

type F = Float32Array;

/** Observation log-likelihoods on the GPU (native/cuda/likelihood.cu); the binding checks every size and length. */
export function cudaLikelihood(cuda: CudaAddon): LikelihoodKernels {
  return {
    bernoulli: (x, logits, out, batch, dim) => cuda.likelihoodBernoulli(x as F, logits as F, out as F, batch, dim),
    bernoulliBackward: (x, logits, dOut, dLogits, batch, dim) =>
      cuda.likelihoodBernoulliBackward(x as F, logits as F, dOut as F, dLogits as F, batch, dim),
    gaussian: (x, mean, logvar, out, batch, dim) => cuda.likelihoodGaussian(x as F, mean as F, logvar as F, out as F, batch, dim),
    gaussianBackward: (x, mean, logvar, dOut, dMean, dLogvar, batch, dim) =>
      cuda.likelihoodGaussianBackward(x as F, mean as F, logvar as F, dOut as F, dMean as F, dLogvar as F | null, batch, dim),
  };
}
