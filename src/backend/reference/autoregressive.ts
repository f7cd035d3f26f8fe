/** Reference autoregressive kernels (float64), as defined in kernels/autoregressive.ts. */
import type { AutoregressiveKernels } from '../kernels/autoregressive';
import type { FloatArray } from '../types';
import { expected, rangeError, typeError } from '../../errors';
import { checkArray, checkBoolean, checkOptionalArray, checkSize, sizeProduct } from '../../validate';
import { checkNoOverlap, checkOutputsDisjoint } from './dense';
import { sigmoid, softplus } from './elementwise';

function checkDegrees(value: unknown, name: string, length: number): Uint32Array {
  if (!(value instanceof Uint32Array)) throw typeError(expected('Uint32Array', name, value));
  if (value.length !== length) throw rangeError(expected(`Uint32Array of length ${length}`, name, value), 'ERR_SHAPE');
  return value;
}

/** Checks the arrays of a step kernel: two `[batch, dim]`, ms `[batch, 2·dim]`, logDet `[batch]`. */
function checkStep(a: FloatArray, aName: string, ms: FloatArray, b: FloatArray, bName: string, logDet: FloatArray, batch: number, dim: number): void {
  checkSize(batch, 'batch');
  checkSize(dim, 'dim');
  const n = sizeProduct(batch, dim);
  checkArray(a, aName, n);
  checkArray(ms, 'ms', 2 * n);
  checkArray(b, bName, n);
  checkArray(logDet, 'logDet', batch);
}

function checkStepBackward(
  a: FloatArray,
  aName: string,
  ms: FloatArray,
  dOut: FloatArray,
  dOutName: string,
  dLogDet: FloatArray,
  dIn: FloatArray,
  dInName: string,
  dms: FloatArray,
  batch: number,
  dim: number,
): void {
  checkSize(batch, 'batch');
  checkSize(dim, 'dim');
  const n = sizeProduct(batch, dim);
  checkArray(a, aName, n);
  checkArray(ms, 'ms', 2 * n);
  checkArray(dOut, dOutName, n);
  checkArray(dLogDet, 'dLogDet', batch);
  checkArray(dIn, dInName, n);
  checkArray(dms, 'dms', 2 * n);
}

export const referenceAutoregressive: AutoregressiveKernels = {
  maskWeights(weight, outDegrees, inDegrees, strict, out, outDim, inDim) {
    checkSize(outDim, 'outDim');
    checkSize(inDim, 'inDim');
    const n = sizeProduct(outDim, inDim);
    checkArray(weight, 'weight', n);
    checkDegrees(outDegrees, 'outDegrees', outDim);
    checkDegrees(inDegrees, 'inDegrees', inDim);
    checkBoolean(strict, 'strict');
    checkArray(out, 'out', n);
    for (let o = 0; o < outDim; o++) {
      const d = outDegrees[o];
      for (let i = 0; i < inDim; i++) {
        const keep = strict ? d > inDegrees[i] : d >= inDegrees[i];
        out[o * inDim + i] = keep ? weight[o * inDim + i] : 0;
      }
    }
  },

  maskedDenseForward(x, weight, bias, outDegrees, inDegrees, strict, maskedWeight, y, batch, inDim, outDim) {
    checkSize(batch, 'batch');
    checkSize(inDim, 'inDim');
    checkSize(outDim, 'outDim');
    const wLen = sizeProduct(outDim, inDim);
    checkArray(x, 'x', sizeProduct(batch, inDim));
    checkArray(weight, 'weight', wLen);
    const b = checkOptionalArray(bias, 'bias', outDim);
    checkDegrees(outDegrees, 'outDegrees', outDim);
    checkDegrees(inDegrees, 'inDegrees', inDim);
    checkBoolean(strict, 'strict');
    checkArray(maskedWeight, 'maskedWeight', wLen);
    checkArray(y, 'y', sizeProduct(batch, outDim));
    for (const [input, name] of [
      [x, 'x'],
      [weight, 'weight'],
      [b, 'bias'],
    ] as const)
      checkNoOverlap(maskedWeight, 'maskedWeight', input, name);
    for (const [input, name] of [
      [x, 'x'],
      [weight, 'weight'],
      [b, 'bias'],
      [maskedWeight, 'maskedWeight'],
    ] as const)
      checkNoOverlap(y, 'y', input, name);
    referenceAutoregressive.maskWeights(weight, outDegrees, inDegrees, strict, maskedWeight, outDim, inDim);
    for (let r = 0; r < batch; r++) {
      for (let o = 0; o < outDim; o++) {
        let sum = b ? b[o] : 0;
        for (let i = 0; i < inDim; i++) sum += x[r * inDim + i] * maskedWeight[o * inDim + i];
        y[r * outDim + o] = sum;
      }
    }
  },

  maskedDenseBackward(x, maskedWeight, dy, outDegrees, inDegrees, strict, dx, dWeight, dBias, batch, inDim, outDim, accumulateDx) {
    checkSize(batch, 'batch');
    checkSize(inDim, 'inDim');
    checkSize(outDim, 'outDim');
    const wLen = sizeProduct(outDim, inDim);
    checkArray(x, 'x', sizeProduct(batch, inDim));
    checkArray(maskedWeight, 'maskedWeight', wLen);
    checkArray(dy, 'dy', sizeProduct(batch, outDim));
    checkDegrees(outDegrees, 'outDegrees', outDim);
    checkDegrees(inDegrees, 'inDegrees', inDim);
    checkBoolean(strict, 'strict');
    const gx = checkOptionalArray(dx, 'dx', sizeProduct(batch, inDim));
    const gw = checkOptionalArray(dWeight, 'dWeight', wLen);
    const gb = checkOptionalArray(dBias, 'dBias', outDim);
    checkBoolean(accumulateDx, 'accumulateDx');
    checkOutputsDisjoint(
      [
        [gx, 'dx'],
        [gw, 'dWeight'],
        [gb, 'dBias'],
      ],
      [
        [x, 'x'],
        [maskedWeight, 'maskedWeight'],
        [dy, 'dy'],
      ],
    );
    if (gw) {
      for (let o = 0; o < outDim; o++) {
        for (let i = 0; i < inDim; i++) {
          const keep = strict ? outDegrees[o] > inDegrees[i] : outDegrees[o] >= inDegrees[i];
          let sum = 0;
          if (keep) for (let r = 0; r < batch; r++) sum += dy[r * outDim + o] * x[r * inDim + i];
          gw[o * inDim + i] = keep ? gw[o * inDim + i] + sum : 0;
        }
      }
    }
    if (gb) for (let r = 0; r < batch; r++) for (let o = 0; o < outDim; o++) gb[o] += dy[r * outDim + o];
    if (gx) {
      for (let r = 0; r < batch; r++) {
        for (let i = 0; i < inDim; i++) {
          let sum = accumulateDx ? gx[r * inDim + i] : 0;
          for (let o = 0; o < outDim; o++) sum += dy[r * outDim + o] * maskedWeight[o * inDim + i];
          gx[r * inDim + i] = sum;
        }
      }
    }
  },

  iafForward(z, ms, y, logDet, batch, dim) {
    checkStep(z, 'z', ms, y, 'y', logDet, batch, dim);
    for (let r = 0; r < batch; r++) {
      let ld = 0;
      for (let i = 0; i < dim; i++) {
        const m = ms[2 * r * dim + i];
        const s = ms[(2 * r + 1) * dim + i];
        const g = sigmoid(s);
        y[r * dim + i] = g * z[r * dim + i] + (1 - g) * m;
        ld -= softplus(-s);
      }
      logDet[r] = ld;
    }
  },

  iafBackward(z, ms, dy, dLogDet, dz, dms, batch, dim) {
    checkStepBackward(z, 'z', ms, dy, 'dy', dLogDet, dz, 'dz', dms, batch, dim);
    for (let r = 0; r < batch; r++) {
      for (let i = 0; i < dim; i++) {
        const m = ms[2 * r * dim + i];
        const s = ms[(2 * r + 1) * dim + i];
        const g = sigmoid(s);
        const d = dy[r * dim + i];
        dz[r * dim + i] = d * g;
        dms[2 * r * dim + i] = d * (1 - g);
        // ∂y/∂s = (z − m) σ(1 − σ); ∂ log σ / ∂s = 1 − σ.
        dms[(2 * r + 1) * dim + i] = (d * (z[r * dim + i] - m) * g + dLogDet[r]) * (1 - g);
      }
    }
  },

  iafInverse(y, ms, z, logDet, batch, dim) {
    checkStep(y, 'y', ms, z, 'z', logDet, batch, dim);
    for (let r = 0; r < batch; r++) {
      let ld = 0;
      for (let i = 0; i < dim; i++) {
        const m = ms[2 * r * dim + i];
        const s = ms[(2 * r + 1) * dim + i];
        const g = sigmoid(s);
        z[r * dim + i] = (y[r * dim + i] - (1 - g) * m) / g;
        ld += softplus(-s);
      }
      logDet[r] = ld;
    }
  },

  mafForward(x, ms, u, logDet, batch, dim) {
    checkStep(x, 'x', ms, u, 'u', logDet, batch, dim);
    for (let r = 0; r < batch; r++) {
      let ld = 0;
      for (let i = 0; i < dim; i++) {
        const m = ms[2 * r * dim + i];
        const a = ms[(2 * r + 1) * dim + i];
        u[r * dim + i] = (x[r * dim + i] - m) * Math.exp(-a);
        ld -= a;
      }
      logDet[r] = ld;
    }
  },

  mafBackward(x, ms, du, dLogDet, dx, dms, batch, dim) {
    checkStepBackward(x, 'x', ms, du, 'du', dLogDet, dx, 'dx', dms, batch, dim);
    for (let r = 0; r < batch; r++) {
      for (let i = 0; i < dim; i++) {
        const m = ms[2 * r * dim + i];
        const a = ms[(2 * r + 1) * dim + i];
        const e = Math.exp(-a);
        const g = du[r * dim + i] * e;
        dx[r * dim + i] = g;
        dms[2 * r * dim + i] = -g;
        // ∂u/∂α = −u; ∂logDet/∂α = −1.
        dms[(2 * r + 1) * dim + i] = -g * (x[r * dim + i] - m) - dLogDet[r];
      }
    }
  },

  mafInverse(u, ms, x, logDet, batch, dim) {
    checkStep(u, 'u', ms, x, 'x', logDet, batch, dim);
    for (let r = 0; r < batch; r++) {
      let ld = 0;
      for (let i = 0; i < dim; i++) {
        const m = ms[2 * r * dim + i];
        const a = ms[(2 * r + 1) * dim + i];
        x[r * dim + i] = u[r * dim + i] * Math.exp(a) + m;
        ld += a;
      }
      logDet[r] = ld;
    }
  },
};
