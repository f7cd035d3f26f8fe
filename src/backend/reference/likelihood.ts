/** Reference observation log-likelihoods (float64). */
import type { LikelihoodKernels } from '../kernels/likelihood';
import { checkArray, checkSize } from '../../validate';
import { sigmoid, softplus } from './elementwise';

const LOG_2PI = Math.log(2 * Math.PI);

function sizes(batch: number, dim: number): number {
  checkSize(batch, 'batch');
  checkSize(dim, 'dim');
  return batch * dim;
}

export const referenceLikelihood: LikelihoodKernels = {
  bernoulli(x, logits, out, batch, dim) {
    const n = sizes(batch, dim);
    checkArray(x, 'x', n);
    checkArray(logits, 'logits', n);
    checkArray(out, 'out', batch);
    for (let r = 0; r < batch; r++) {
      let s = 0;
      for (let j = r * dim; j < (r + 1) * dim; j++) s += x[j] * logits[j] - softplus(logits[j]);
      out[r] = s;
    }
  },
  bernoulliBackward(x, logits, dOut, dLogits, batch, dim) {
    const n = sizes(batch, dim);
    checkArray(x, 'x', n);
    checkArray(logits, 'logits', n);
    checkArray(dOut, 'dOut', batch);
    checkArray(dLogits, 'dLogits', n);
    for (let r = 0; r < batch; r++) {
      for (let j = r * dim; j < (r + 1) * dim; j++) dLogits[j] = dOut[r] * (x[j] - sigmoid(logits[j]));
    }
  },
  gaussian(x, mean, logvar, out, batch, dim) {
    const n = sizes(batch, dim);
    checkArray(x, 'x', n);
    checkArray(mean, 'mean', n);
    checkArray(logvar, 'logvar', dim);
    checkArray(out, 'out', batch);
    for (let r = 0; r < batch; r++) {
      let s = 0;
      for (let j = 0; j < dim; j++) {
        const d = x[r * dim + j] - mean[r * dim + j];
        s += LOG_2PI + logvar[j] + d * d * Math.exp(-logvar[j]);
      }
      out[r] = -0.5 * s;
    }
  },
  gaussianBackward(x, mean, logvar, dOut, dMean, dLogvar, batch, dim) {
    const n = sizes(batch, dim);
    checkArray(x, 'x', n);
    checkArray(mean, 'mean', n);
    checkArray(logvar, 'logvar', dim);
    checkArray(dOut, 'dOut', batch);
    checkArray(dMean, 'dMean', n);
    if (dLogvar !== null) checkArray(dLogvar, 'dLogvar', dim);
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < dim; j++) {
        const d = x[r * dim + j] - mean[r * dim + j];
        const precision = Math.exp(-logvar[j]);
        dMean[r * dim + j] = dOut[r] * d * precision;
        if (dLogvar) dLogvar[j] += dOut[r] * 0.5 * (d * d * precision - 1);
      }
    }
  },
};
