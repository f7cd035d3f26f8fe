/** Reference observation log-likelihoods (float64). */
import { LIKELIHOOD_SIGNATURES as SIGNATURES, type LikelihoodKernels } from '../kernels/likelihood';
import { checkKernelArgs } from '../kernels/signature';
import { sigmoid, softplus } from './elementwise';

const LOG_2PI = Math.log(2 * Math.PI);

export const referenceLikelihood: LikelihoodKernels = {
  bernoulli(x, logits, out, batch, dim) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.bernoulli, arguments);
    for (let r = 0; r < batch; r++) {
      let s = 0;
      for (let j = r * dim; j < (r + 1) * dim; j++) s += x[j] * logits[j] - softplus(logits[j]);
      out[r] = s;
    }
  },
  bernoulliBackward(x, logits, dOut, dLogits, batch, dim) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.bernoulliBackward, arguments);
    for (let r = 0; r < batch; r++) {
      for (let j = r * dim; j < (r + 1) * dim; j++) dLogits[j] = dOut[r] * (x[j] - sigmoid(logits[j]));
    }
  },
  gaussian(x, mean, logvar, out, batch, dim) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.gaussian, arguments);
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
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.gaussianBackward, arguments);
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
