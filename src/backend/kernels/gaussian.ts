import type { FloatArray } from '../types';

/**
 * Diagonal Gaussian densities, sampling by reparametrization, and the KL to a
 * standard normal; all per row of a `[batch, dim]` batch. `logvar` is log σ².
 * Per-row outputs are `[batch]`. Backward kernels overwrite their outputs.
 */
export interface GaussianKernels {
  /**
   * `z = mu + exp(logvar / 2) ⊙ eps` and `logq[r] = log N(z_r; mu_r, diag σ_r²)
   * = Σ_j −½ (log 2π + logvar + eps²)`.
   */
  sampleDiag(mu: FloatArray, logvar: FloatArray, eps: FloatArray, z: FloatArray, logq: FloatArray, batch: number, dim: number): void;
  /** Given ∂L/∂z and ∂L/∂logq (eps held fixed): `dMu = dz`, `dLogvar = dz ⊙ eps ⊙ σ / 2 − dLogq[r] / 2`. */
  sampleDiagBackward(
    logvar: FloatArray,
    eps: FloatArray,
    dz: FloatArray,
    dLogq: FloatArray,
    dMu: FloatArray,
    dLogvar: FloatArray,
    batch: number,
    dim: number,
  ): void;
  /** `out[r] = log N(x_r; 0, I) = Σ_j −½ (log 2π + x²)`. */
  logStandard(x: FloatArray, out: FloatArray, batch: number, dim: number): void;
  /** `dx = −x · dOut[r]`. */
  logStandardBackward(x: FloatArray, dOut: FloatArray, dx: FloatArray, batch: number, dim: number): void;
  /** `out[r] = KL(N(mu_r, σ_r²) ‖ N(0, I)) = ½ Σ_j (mu² + σ² − 1 − logvar)`. */
  klStandard(mu: FloatArray, logvar: FloatArray, out: FloatArray, batch: number, dim: number): void;
  /** `dMu = dOut[r] · mu`, `dLogvar = dOut[r] · (σ² − 1) / 2`. */
  klStandardBackward(
    mu: FloatArray,
    logvar: FloatArray,
    dOut: FloatArray,
    dMu: FloatArray,
    dLogvar: FloatArray,
    batch: number,
    dim: number,
  ): void;
}
