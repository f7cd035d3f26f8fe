import type { LikelihoodKernels } from '../kernels/likelihood';
import type { NativeAddon } from '../native';

type F = Float32Array;

/** Native observation log-likelihoods; the binding checks every size and length. */
export function cpuLikelihood(addon: NativeAddon): LikelihoodKernels {
  return {
    bernoulli: (x, logits, out, batch, dim) => addon.likelihoodBernoulli(x as F, logits as F, out as F, batch, dim),
    bernoulliBackward: (x, logits, dOut, dLogits, batch, dim) =>
      addon.likelihoodBernoulliBackward(x as F, logits as F, dOut as F, dLogits as F, batch, dim),
    gaussian: (x, mean, logvar, out, batch, dim) => addon.likelihoodGaussian(x as F, mean as F, logvar as F, out as F, batch, dim),
    gaussianBackward: (x, mean, logvar, dOut, dMean, dLogvar, batch, dim) =>
      addon.likelihoodGaussianBackward(x as F, mean as F, logvar as F, dOut as F, dMean as F, dLogvar as F | null, batch, dim),
  };
}
