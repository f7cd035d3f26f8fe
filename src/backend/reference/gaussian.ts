/** Reference diagonal-Gaussian kernels (float64). */
import type { GaussianKernels } from '../kernels/gaussian';
import { checkArray, checkSize } from '../../validate';

const LOG_2PI = Math.log(2 * Math.PI);

function sizes(batch: number, dim: number): number {
  checkSize(batch, 'batch');
  checkSize(dim, 'dim');
  return batch * dim;
}

export const referenceGaussian: GaussianKernels = {
  sampleDiag(mu, logvar, eps, z, logq, batch, dim) {
    const n = sizes(batch, dim);
    checkArray(mu, 'mu', n);
    checkArray(logvar, 'logvar', n);
    checkArray(eps, 'eps', n);
    checkArray(z, 'z', n);
    checkArray(logq, 'logq', batch);
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
    const n = sizes(batch, dim);
    checkArray(logvar, 'logvar', n);
    checkArray(eps, 'eps', n);
    checkArray(dz, 'dz', n);
    checkArray(dLogq, 'dLogq', batch);
    checkArray(dMu, 'dMu', n);
    checkArray(dLogvar, 'dLogvar', n);
    for (let r = 0; r < batch; r++) {
      for (let j = r * dim; j < (r + 1) * dim; j++) {
        dMu[j] = dz[j];
        dLogvar[j] = 0.5 * dz[j] * eps[j] * Math.exp(0.5 * logvar[j]) - 0.5 * dLogq[r];
      }
    }
  },
  logStandard(x, out, batch, dim) {
    const n = sizes(batch, dim);
    checkArray(x, 'x', n);
    checkArray(out, 'out', batch);
    for (let r = 0; r < batch; r++) {
      let s = 0;
      for (let j = r * dim; j < (r + 1) * dim; j++) s += LOG_2PI + x[j] * x[j];
      out[r] = -0.5 * s;
    }
  },
  logStandardBackward(x, dOut, dx, batch, dim) {
    const n = sizes(batch, dim);
    checkArray(x, 'x', n);
    checkArray(dOut, 'dOut', batch);
    checkArray(dx, 'dx', n);
    for (let r = 0; r < batch; r++) for (let j = r * dim; j < (r + 1) * dim; j++) dx[j] = -x[j] * dOut[r];
  },
  klStandard(mu, logvar, out, batch, dim) {
    const n = sizes(batch, dim);
    checkArray(mu, 'mu', n);
    checkArray(logvar, 'logvar', n);
    checkArray(out, 'out', batch);
    for (let r = 0; r < batch; r++) {
      let s = 0;
      for (let j = r * dim; j < (r + 1) * dim; j++) s += mu[j] * mu[j] + Math.exp(logvar[j]) - 1 - logvar[j];
      out[r] = 0.5 * s;
    }
  },
  klStandardBackward(mu, logvar, dOut, dMu, dLogvar, batch, dim) {
    const n = sizes(batch, dim);
    checkArray(mu, 'mu', n);
    checkArray(logvar, 'logvar', n);
    checkArray(dOut, 'dOut', batch);
    checkArray(dMu, 'dMu', n);
    checkArray(dLogvar, 'dLogvar', n);
    for (let r = 0; r < batch; r++) {
      for (let j = r * dim; j < (r + 1) * dim; j++) {
        dMu[j] = dOut[r] * mu[j];
        dLogvar[j] = 0.5 * dOut[r] * (Math.exp(logvar[j]) - 1);
      }
    }
  },
};
