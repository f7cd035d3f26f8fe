import { input, kernel, optionalOutput, output, perColumn, perRow, perValue, rowScalars, rowSizes, type KernelFunction } from './signature';

/**
 * The likelihood calls, declared once (argument order, lengths; the bindings
 * read (batch, dim), then each array in order). No output may share memory
 * with another argument: the bindings and the reference refuse it.
 */
export const LIKELIHOOD_SIGNATURES = {
  bernoulli: kernel('likelihoodBernoulli', [input('x', perValue), input('logits', perValue), output('out', perRow), ...rowScalars], 'void', rowSizes),
  bernoulliBackward: kernel(
    'likelihoodBernoulliBackward',
    [input('x', perValue), input('logits', perValue), input('dOut', perRow), output('dLogits', perValue), ...rowScalars],
    'void',
    rowSizes,
  ),
  gaussian: kernel(
    'likelihoodGaussian',
    [input('x', perValue), input('mean', perValue), input('logvar', perColumn), output('out', perRow), ...rowScalars],
    'void',
    rowSizes,
  ),
  gaussianBackward: kernel(
    'likelihoodGaussianBackward',
    [
      input('x', perValue),
      input('mean', perValue),
      input('logvar', perColumn),
      input('dOut', perRow),
      output('dMean', perValue),
      optionalOutput('dLogvar', perColumn),
      ...rowScalars,
    ],
    'void',
    rowSizes,
  ),
};

type S = typeof LIKELIHOOD_SIGNATURES;

/**
 * Observation log-likelihoods log p(x | decoder output), summed over each row
 * of a `[batch, dim]` batch into `[batch]`. Backward kernels overwrite their
 * outputs except `dLogvar`, which accumulates (it is a shared parameter).
 */
export interface LikelihoodKernels {
  /** `bernoulli(x, logits, out, batch, dim)`: Bernoulli with logits, `out[r] = Σ_j x·l − softplus(l)` (stable for any l; x may be fractional). */
  bernoulli: KernelFunction<S['bernoulli']>;
  /** `bernoulliBackward(x, logits, dOut, dLogits, batch, dim)`: `dLogits = dOut[r] · (x − sigmoid(l))`. */
  bernoulliBackward: KernelFunction<S['bernoulliBackward']>;
  /**
   * `gaussian(x, mean, logvar, out, batch, dim)`: Gaussian with per-feature log-variance
   * `logvar[dim]` (fixed or learned), `out[r] = Σ_j −½ (log 2π + logvar_j + (x − mean)² e^(−logvar_j))`.
   */
  gaussian: KernelFunction<S['gaussian']>;
  /**
   * `gaussianBackward(x, mean, logvar, dOut, dMean, dLogvar | null, batch, dim)`:
   * `dMean = dOut[r] · (x − mean) e^(−logvar)`; when dLogvar is not null it
   * accumulates `Σ_r dOut[r] · ½ ((x − mean)² e^(−logvar) − 1)`.
   */
  gaussianBackward: KernelFunction<S['gaussianBackward']>;
}
