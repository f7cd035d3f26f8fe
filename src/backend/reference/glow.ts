/** Reference glow kernels (float64), as defined in kernels/glow.ts. */
import { GLOW_SIGNATURES as SIGNATURES, type GlowKernels } from '../kernels/glow';
import { checkKernelArgs } from '../kernels/signature';
import type { FloatArray } from '../types';

function affineMap(
  input: FloatArray,
  logScale: FloatArray,
  shift: FloatArray,
  out: FloatArray,
  logDet: FloatArray,
  batch: number,
  dim: number,
  sign: 1 | -1,
): void {
  let sum = 0;
  for (let j = 0; j < dim; j++) sum += logScale[j];
  for (let r = 0; r < batch; r++) {
    for (let j = 0; j < dim; j++) {
      const i = r * dim + j;
      out[i] = sign > 0 ? input[i] * Math.exp(logScale[j]) + shift[j] : (input[i] - shift[j]) * Math.exp(-logScale[j]);
    }
    logDet[r] = sign * sum;
  }
}

export const referenceGlow: GlowKernels = {
  affineForward(x, logScale, shift, y, logDet, batch, dim) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.affineForward, arguments);
    affineMap(x, logScale, shift, y, logDet, batch, dim, 1);
  },

  affineInverse(y, logScale, shift, x, logDet, batch, dim) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.affineInverse, arguments);
    affineMap(y, logScale, shift, x, logDet, batch, dim, -1);
  },

  affineBackward(x, logScale, dy, dLogDet, dx, dLogScale, dShift, batch, dim) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.affineBackward, arguments);
    let ld = 0;
    for (let r = 0; r < batch; r++) ld += dLogDet[r];
    for (let j = 0; j < dim; j++) {
      const scale = Math.exp(logScale[j]);
      let sx = 0;
      let sy = 0;
      for (let r = 0; r < batch; r++) {
        const g = dy[r * dim + j];
        dx[r * dim + j] = g * scale;
        sx += g * x[r * dim + j];
        sy += g;
      }
      dLogScale[j] += sx * scale + ld;
      dShift[j] += sy;
    }
  },

  permuteColumns(x, perm, y, batch, dim) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.permuteColumns, arguments);
    for (let r = 0; r < batch; r++) for (let j = 0; j < dim; j++) y[r * dim + j] = x[r * dim + perm[j]];
  },

  unpermuteColumns(y, perm, x, batch, dim) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.unpermuteColumns, arguments);
    for (let r = 0; r < batch; r++) for (let j = 0; j < dim; j++) x[r * dim + perm[j]] = y[r * dim + j];
  },
};
