/** Reference diagonal-Gaussian kernels (float64). */
import { GAUSSIAN_SIGNATURES as SIGNATURES, type GaussianKernels } from '../kernels/gaussian';
import { checkKernelArgs } from '../kernels/signature';

const LOG_2PI = Math.log(2 * Math.PI);

export const referenceGaussian: GaussianKernels = {
  sampleDiag(mu, logvar, eps, z, logq, batch, dim) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.sampleDiag, arguments);
    for (let r = 0; r < batch; r++) {
      let s = 0;
      for (let j = r * dim; j < (r + 1) * dim; j++) {
        z[j] = mu[j] + Math.exp(0.5 * logvar[j]) * eps[j];
        s += LOG_2PI + logvar[j] + eps[j] * eps[j];
      }
      logq[r] = -0.5 * s;
    }
  },
  sampleDiagBackward(logvar, eps, dz, dLogq, dMu, dLogvar, batch, dim) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.sampleDiagBackward, arguments);
    for (let r = 0; r < batch; r++) {
      for (let j = r * dim; j < (r + 1) * dim; j++) {
        dMu[j] = dz[j];
        dLogvar[j] = 0.5 * dz[j] * eps[j] * Math.exp(0.5 * logvar[j]) - 0.5 * dLogq[r];
      }
    }
  },
  logStandard(x, out, batch, dim) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.logStandard, arguments);
    for (let r = 0; r < batch; r++) {
      let s = 0;
      for (let j = r * dim; j < (r + 1) * dim; j++) s += LOG_2PI + x[j] * x[j];
      out[r] = -0.5 * s;
    }
  },
  logStandardBackward(x, dOut, dx, batch, dim) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.logStandardBackward, arguments);
    for (let r = 0; r < batch; r++) for (let j = r * dim; j < (r + 1) * dim; j++) dx[j] = -x[j] * dOut[r];
  },
  klStandard(mu, logvar, out, batch, dim) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.klStandard, arguments);
    for (let r = 0; r < batch; r++) {
      let s = 0;
      for (let j = r * dim; j < (r + 1) * dim; j++) s += mu[j] * mu[j] + Math.exp(logvar[j]) - 1 - logvar[j];
      out[r] = 0.5 * s;
    }
  },
  klStandardBackward(mu, logvar, dOut, dMu, dLogvar, batch, dim) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.klStandardBackward, arguments);
    for (let r = 0; r < batch; r++) {
      for (let j = r * dim; j < (r + 1) * dim; j++) {
        dMu[j] = dOut[r] * mu[j];
        dLogvar[j] = 0.5 * dOut[r] * (Math.exp(logvar[j]) - 1);
      }
    }
  },
};
