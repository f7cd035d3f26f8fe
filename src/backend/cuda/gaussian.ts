import type { GaussianKernels } from '../kernels/gaussian';
import type { CudaAddon } from '../native';

type F = Float32Array;

/** Diagonal-Gaussian kernels on the GPU (native/cuda/gaussian.cu); the binding checks every size and length. */
export function cudaGaussian(cuda: CudaAddon): GaussianKernels {
  return {
    sampleDiag: (mu, logvar, eps, z, logq, batch, dim) =>
      cuda.gaussianSampleDiag(mu as F, logvar as F, eps as F, z as F, logq as F, batch, dim),
    sampleDiagBackward: (logvar, eps, dz, dLogq, dMu, dLogvar, batch, dim) =>
      cuda.gaussianSampleDiagBackward(logvar as F, eps as F, dz as F, dLogq as F, dMu as F, dLogvar as F, batch, dim),
    logStandard: (x, out, batch, dim) => cuda.gaussianLogStandard(x as F, out as F, batch, dim),
    logStandardBackward: (x, dOut, dx, batch, dim) => cuda.gaussianLogStandardBackward(x as F, dOut as F, dx as F, batch, dim),
    klStandard: (mu, logvar, out, batch, dim) => cuda.gaussianKlStandard(mu as F, logvar as F, out as F, batch, dim),
    klStandardBackward: (mu, logvar, dOut, dMu, dLogvar, batch, dim) =>
      cuda.gaussianKlStandardBackward(mu as F, logvar as F, dOut as F, dMu as F, dLogvar as F, batch, dim),
  };
}
