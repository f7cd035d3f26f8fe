/** Reference glow kernels (float64), as defined in kernels/glow.ts. */
import type { GlowKernels } from '../kernels/glow';
import type { FloatArray } from '../types';
import { expected, rangeError, typeError } from '../../errors';
import { checkArray, checkSize, sizeProduct } from '../../validate';

/** A Uint32Array holding each of 0..dim−1 exactly once (the binding's check and message). */
export function checkPermutation(value: unknown, name: string, dim: number): Uint32Array {
  if (!(value instanceof Uint32Array)) throw typeError(expected('Uint32Array', name, value));
  if (value.length !== dim) throw rangeError(expected(`Uint32Array of length ${dim}`, name, value), 'ERR_SHAPE');
  const seen = new Uint8Array(dim);
  for (let j = 0; j < dim; j++) {
    const k = value[j];
    if (k >= dim || seen[k]) throw rangeError(expected(`permutation of 0..${dim - 1} as a Uint32Array of length ${dim}`, name, value));
    seen[k] = 1;
  }
  return value;
}

/** Checks (batch, dim) and returns batch·dim. */
function rowShape(batch: number, dim: number): number {
  checkSize(batch, 'batch');
  checkSize(dim, 'dim');
  return sizeProduct(batch, dim);
}

function affineMap(
  input: FloatArray,
  inName: string,
  logScale: FloatArray,
  shift: FloatArray,
  out: FloatArray,
  outName: string,
  logDet: FloatArray,
  batch: number,
  dim: number,
  sign: 1 | -1,
): void {
  const n = rowShape(batch, dim);
  checkArray(input, inName, n);
  checkArray(logScale, 'logScale', dim);
  checkArray(shift, 'shift', dim);
  checkArray(out, outName, n);
  checkArray(logDet, 'logDet', batch);
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
    affineMap(x, 'x', logScale, shift, y, 'y', logDet, batch, dim, 1);
  },

  affineInverse(y, logScale, shift, x, logDet, batch, dim) {
    affineMap(y, 'y', logScale, shift, x, 'x', logDet, batch, dim, -1);
  },

  affineBackward(x, logScale, dy, dLogDet, dx, dLogScale, dShift, batch, dim) {
    const n = rowShape(batch, dim);
    checkArray(x, 'x', n);
    checkArray(logScale, 'logScale', dim);
    checkArray(dy, 'dy', n);
    checkArray(dLogDet, 'dLogDet', batch);
    checkArray(dx, 'dx', n);
    checkArray(dLogScale, 'dLogScale', dim);
    checkArray(dShift, 'dShift', dim);
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
    const n = rowShape(batch, dim);
    checkArray(x, 'x', n);
    checkPermutation(perm, 'perm', dim);
    checkArray(y, 'y', n);
    for (let r = 0; r < batch; r++) for (let j = 0; j < dim; j++) y[r * dim + j] = x[r * dim + perm[j]];
  },

  unpermuteColumns(y, perm, x, batch, dim) {
    const n = rowShape(batch, dim);
    checkArray(y, 'y', n);
    checkPermutation(perm, 'perm', dim);
    checkArray(x, 'x', n);
    for (let r = 0; r < batch; r++) for (let j = 0; j < dim; j++) x[r * dim + perm[j]] = y[r * dim + j];
  },
};
