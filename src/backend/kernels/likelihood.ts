import type { FloatArray } from '../types';

/**
 * Observation log-likelihoods log p(x | decoder output), summed over each row
 * of a `[batch, dim]` batch into `[batch]`. Backward kernels overwrite their
 * outputs except `dLogvar`, which accumulates (it is a shared parameter).
 */
export interface LikelihoodKernels {
  /** Bernoulli with logits: `out[r] = Σ_j x·l − softplus(l)` (stable for any l; x may be fractional). */
  bernoulli(x: FloatArray, logits: FloatArray, out: FloatArray, batch: number, dim: number): void;
  /** `dLogits = dOut[r] · (x − sigmoid(l))`. */
  bernoulliBackward(x: FloatArray, logits: FloatArray, dOut: FloatArray, dLogits: FloatArray, batch: number, dim: number): void;
  /**
   * Gaussian with per-feature log-variance `logvar[dim]` (fixed or learned):
   * `out[r] = Σ_j −½ (log 2π + logvar_j + (x − mean)² e^(−logvar_j))`.
   */
  gaussian(x: FloatArray, mean: FloatArray, logvar: FloatArray, out: FloatArray, batch: number, dim: number): void;
  /**
   * `dMean = dOut[r] · (x − mean) e^(−logvar)`; when dLogvar is not null it
   * accumulates `Σ_r dOut[r] · ½ ((x − mean)² e^(−logvar) − 1)`.
   */
  gaussianBackward(
    x: FloatArray,
    mean: FloatArray,
    logvar: FloatArray,
    dOut: FloatArray,
    dMean: FloatArray,
    dLogvar: FloatArray | null,
    batch: number,
    dim: number,
  ): void;
}
