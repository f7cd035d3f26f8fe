import type { GaussianKernels } from '../kernels/gaussian';
import type { NativeAddon } from '../native';

type F = Float32Array;

/** Native diagonal-Gaussian kernels; the binding checks every size and length. */
export function cpuGaussian(addon: NativeAddon): GaussianKernels {
  return {
    sampleDiag: (mu, logvar, eps, z, logq, batch, dim) =>
      addon.gaussianSampleDiag(mu as F, logvar as F, eps as F, z as F, logq as F, batch, dim),
    sampleDiagBackward: (logvar, eps, dz, dLogq, dMu, dLogvar, batch, dim) =>
      addon.gaussianSampleDiagBackward(logvar as F, eps as F, dz as F, dLogq as F, dMu as F, dLogvar as F, batch, dim),
    logStandard: (x, out, batch, dim) => addon.gaussianLogStandard(x as F, out as F, batch, dim),
    logStandardBackward: (x, dOut, dx, batch, dim) => addon.gaussianLogStandardBackward(x as F, dOut as F, dx as F, batch, dim),
    klStandard: (mu, logvar, out, batch, dim) => addon.gaussianKlStandard(mu as F, logvar as F, out as F, batch, dim),
    klStandardBackward: (mu, logvar, dOut, dMu, dLogvar, batch, dim) =>
      addon.gaussianKlStandardBackward(mu as F, logvar as F, dOut as F, dMu as F, dLogvar as F, batch, dim),
  };
}
