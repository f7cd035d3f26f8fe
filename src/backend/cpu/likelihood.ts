import { LIKELIHOOD_SIGNATURES, type LikelihoodKernels } from '../kernels/likelihood';
import type { NativeAddon } from '../native';
import { nativeKernels } from '../registry';

/**
 * Native observation log-likelihoods (native/napi/likelihood.cc): the bindings its signatures name, called directly. The binding
 * checks every argument (Float32Array only, exact lengths, overlaps as declared).
 */
export function cpuLikelihood(addon: NativeAddon): LikelihoodKernels {
  return nativeKernels(addon, LIKELIHOOD_SIGNATURES);
}
