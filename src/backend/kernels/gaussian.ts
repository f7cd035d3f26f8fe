import { input, kernel, output, perRow, perValue, rowScalars, rowSizes, type KernelFunction } from './signature';

/**
 * The gaussian calls, declared once (argument order, lengths; the bindings
 * read (batch, dim), then each array in order). No output may share memory
 * with another argument (a backward output over `eps` would read values it
 * had overwritten): the bindings and the reference refuse it.
 */
export const GAUSSIAN_SIGNATURES = {
  sampleDiag: kernel(
    'gaussianSampleDiag',
    [input('mu', perValue), input('logvar', perValue), input('eps', perValue), output('z', perValue), output('logq', perRow), ...rowScalars],
    'void',
    rowSizes,
  ),
  sampleDiagBackward: kernel(
    'gaussianSampleDiagBackward',
    [
      input('logvar', perValue),
      input('eps', perValue),
      input('dz', perValue),
      input('dLogq', perRow),
      output('dMu', perValue),
      output('dLogvar', perValue),
      ...rowScalars,
    ],
    'void',
    rowSizes,
  ),
  logStandard: kernel('gaussianLogStandard', [input('x', perValue), output('out', perRow), ...rowScalars], 'void', rowSizes),
  logStandardBackward: kernel(
    'gaussianLogStandardBackward',
    [input('x', perValue), input('dOut', perRow), output('dx', perValue), ...rowScalars],
    'void',
    rowSizes,
  ),
  klStandard: kernel('gaussianKlStandard', [input('mu', perValue), input('logvar', perValue), output('out', perRow), ...rowScalars], 'void', rowSizes),
  klStandardBackward: kernel(
    'gaussianKlStandardBackward',
    [input('mu', perValue), input('logvar', perValue), input('dOut', perRow), output('dMu', perValue), output('dLogvar', perValue), ...rowScalars],
    'void',
    rowSizes,
  ),
};

type S = typeof GAUSSIAN_SIGNATURES;

/**
 * Diagonal Gaussian densities, sampling by reparametrization, and the KL to a
 * standard normal; all per row of a `[batch, dim]` batch. `logvar` is log σ².
 * Per-row outputs are `[batch]`. Backward kernels overwrite their outputs.
 */
export interface GaussianKernels {
  /**
   * `sampleDiag(mu, logvar, eps, z, logq, batch, dim)`: `z = mu + exp(logvar / 2) ⊙ eps` and
   * `logq[r] = log N(z_r; mu_r, diag σ_r²) = Σ_j −½ (log 2π + logvar + eps²)`.
   */
  sampleDiag: KernelFunction<S['sampleDiag']>;
  /**
   * `sampleDiagBackward(logvar, eps, dz, dLogq, dMu, dLogvar, batch, dim)`: given ∂L/∂z and
   * ∂L/∂logq (eps held fixed), `dMu = dz`, `dLogvar = dz ⊙ eps ⊙ σ / 2 − dLogq[r] / 2`.
   */
  sampleDiagBackward: KernelFunction<S['sampleDiagBackward']>;
  /** `logStandard(x, out, batch, dim)`: `out[r] = log N(x_r; 0, I) = Σ_j −½ (log 2π + x²)`. */
  logStandard: KernelFunction<S['logStandard']>;
  /** `logStandardBackward(x, dOut, dx, batch, dim)`: `dx = −x · dOut[r]`. */
  logStandardBackward: KernelFunction<S['logStandardBackward']>;
  /** `klStandard(mu, logvar, out, batch, dim)`: `out[r] = KL(N(mu_r, σ_r²) ‖ N(0, I)) = ½ Σ_j (mu² + σ² − 1 − logvar)`. */
  klStandard: KernelFunction<S['klStandard']>;
  /** `klStandardBackward(mu, logvar, dOut, dMu, dLogvar, batch, dim)`: `dMu = dOut[r] · mu`, `dLogvar = dOut[r] · (σ² − 1) / 2`. */
  klStandardBackward: KernelFunction<S['klStandardBackward']>;
}
