/**
 * Reference coupling kernels (float64), row by row: the definition the native
 * kernels are tested against (see kernels/coupling.ts for the mathematics,
 * layouts and conventions).
 */
import type { CouplingKernels } from '../kernels/coupling';
import type { FloatArray } from '../types';
import { expected, rangeError } from '../../errors';
import { checkArray, checkDisjoint, checkOptionalArray, checkSize, sizeProduct } from '../../validate';

/** Checks (batch, dim, offset, width) with offset + width ≤ dim; returns batch·dim. */
function checkColumns(batch: number, dim: number, offset: number, width: number): number {
  checkSize(batch, 'batch');
  checkSize(dim, 'dim');
  checkSize(offset, 'offset');
  checkSize(width, 'width');
  if (width > dim) throw rangeError(expected(`integer in [0, ${dim}]`, 'width', width));
  if (offset > dim - width) throw rangeError(expected(`integer in [0, ${dim - width}]`, 'offset', offset));
  return sizeProduct(batch, dim);
}

/** 1 − tanh²(a) without cancellation. */
function sech2(a: number): number {
  const c = Math.cosh(a);
  return 1 / (c * c);
}

function checkContext(context: FloatArray | null, name: string, batch: number, contextDim: number): FloatArray | null {
  if (contextDim === 0) {
    // An empty context may be passed as null or as a zero-length array.
    return checkOptionalArray(context, name, 0);
  }
  return checkArray(context, name, sizeProduct(batch, contextDim));
}

export const referenceCoupling: CouplingKernels = {
  gather(x, context, out, batch, dim, offset, width, contextDim) {
    const n = checkColumns(batch, dim, offset, width);
    checkSize(contextDim, 'contextDim');
    const cw = width + contextDim;
    checkArray(x, 'x', n);
    checkContext(context, 'context', batch, contextDim);
    checkArray(out, 'out', sizeProduct(batch, cw));
    checkDisjoint(out, 'out', { x, context });
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < width; j++) out[r * cw + j] = x[r * dim + offset + j];
      for (let c = 0; c < contextDim; c++) out[r * cw + width + c] = context![r * contextDim + c];
    }
  },

  scatterAdd(dIn, dx, dContext, batch, dim, offset, width, contextDim) {
    const n = checkColumns(batch, dim, offset, width);
    checkSize(contextDim, 'contextDim');
    const cw = width + contextDim;
    checkArray(dIn, 'dIn', sizeProduct(batch, cw));
    checkArray(dx, 'dx', n);
    checkContext(dContext, 'dContext', batch, contextDim);
    checkDisjoint(dx, 'dx', { dIn });
    checkDisjoint(dContext, 'dContext', { dIn, dx });
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < width; j++) dx[r * dim + offset + j] += dIn[r * cw + j];
      for (let c = 0; c < contextDim; c++) dContext![r * contextDim + c] += dIn[r * cw + width + c];
    }
  },

  affineForward(x, h, scale, y, logDet, batch, dim, offset, width) {
    const n = checkColumns(batch, dim, offset, width);
    checkArray(x, 'x', n);
    checkArray(h, 'h', sizeProduct(batch, 2 * width));
    checkArray(scale, 'scale', width);
    checkArray(y, 'y', n);
    checkArray(logDet, 'logDet', batch);
    checkDisjoint(y, 'y', { x, h, scale });
    checkDisjoint(logDet, 'logDet', { x, h, scale, y });
    for (let r = 0; r < batch; r++) {
      let ld = 0;
      for (let j = 0; j < width; j++) {
        const s = scale[j] * Math.tanh(h[r * 2 * width + j]);
        const t = h[r * 2 * width + width + j];
        const i = r * dim + offset + j;
        y[i] = x[i] * Math.exp(s) + t;
        ld += s;
      }
      logDet[r] = ld;
    }
  },

  affineInverse(y, h, scale, x, logDet, batch, dim, offset, width) {
    const n = checkColumns(batch, dim, offset, width);
    checkArray(y, 'y', n);
    checkArray(h, 'h', sizeProduct(batch, 2 * width));
    checkArray(scale, 'scale', width);
    checkArray(x, 'x', n);
    checkArray(logDet, 'logDet', batch);
    checkDisjoint(x, 'x', { y, h, scale });
    checkDisjoint(logDet, 'logDet', { y, h, scale, x });
    for (let r = 0; r < batch; r++) {
      let ld = 0;
      for (let j = 0; j < width; j++) {
        const s = scale[j] * Math.tanh(h[r * 2 * width + j]);
        const t = h[r * 2 * width + width + j];
        const i = r * dim + offset + j;
        x[i] = (y[i] - t) * Math.exp(-s);
        ld -= s;
      }
      logDet[r] = ld;
    }
  },

  affineBackward(x, h, scale, dy, dLogDet, dx, dh, dScale, batch, dim, offset, width) {
    const n = checkColumns(batch, dim, offset, width);
    const nh = sizeProduct(batch, 2 * width);
    checkArray(x, 'x', n);
    checkArray(h, 'h', nh);
    checkArray(scale, 'scale', width);
    checkArray(dy, 'dy', n);
    checkArray(dLogDet, 'dLogDet', batch);
    checkArray(dx, 'dx', n);
    checkArray(dh, 'dh', nh);
    checkArray(dScale, 'dScale', width);
    checkDisjoint(dx, 'dx', { x, h, scale, dy, dLogDet });
    checkDisjoint(dh, 'dh', { x, h, scale, dy, dLogDet, dx });
    checkDisjoint(dScale, 'dScale', { x, h, scale, dy, dLogDet, dx, dh });
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < width; j++) {
        const a = h[r * 2 * width + j];
        const th = Math.tanh(a);
        const e = Math.exp(scale[j] * th);
        const i = r * dim + offset + j;
        const g = dy[i];
        dx[i] = g * e;
        // ∂y/∂s = x·e^s, ∂logDet/∂s = 1; s = scale·tanh(ŝ).
        const ds = g * x[i] * e + dLogDet[r];
        dh[r * 2 * width + j] = ds * scale[j] * sech2(a);
        dh[r * 2 * width + width + j] = g;
        dScale[j] += ds * th;
      }
    }
  },

  additiveForward(x, h, y, batch, dim, offset, width) {
    const n = checkColumns(batch, dim, offset, width);
    checkArray(x, 'x', n);
    checkArray(h, 'h', sizeProduct(batch, width));
    checkArray(y, 'y', n);
    checkDisjoint(y, 'y', { x, h });
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < width; j++) y[r * dim + offset + j] = x[r * dim + offset + j] + h[r * width + j];
    }
  },

  additiveInverse(y, h, x, batch, dim, offset, width) {
    const n = checkColumns(batch, dim, offset, width);
    checkArray(y, 'y', n);
    checkArray(h, 'h', sizeProduct(batch, width));
    checkArray(x, 'x', n);
    checkDisjoint(x, 'x', { y, h });
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < width; j++) x[r * dim + offset + j] = y[r * dim + offset + j] - h[r * width + j];
    }
  },

  additiveBackward(dy, dx, dh, batch, dim, offset, width) {
    const n = checkColumns(batch, dim, offset, width);
    checkArray(dy, 'dy', n);
    checkArray(dx, 'dx', n);
    checkArray(dh, 'dh', sizeProduct(batch, width));
    checkDisjoint(dx, 'dx', { dy });
    checkDisjoint(dh, 'dh', { dy, dx });
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < width; j++) {
        const g = dy[r * dim + offset + j];
        dx[r * dim + offset + j] = g;
        dh[r * width + j] = g;
      }
    }
  },

  scaleForward(x, logScale, y, logDet, batch, dim) {
    checkSize(batch, 'batch');
    checkSize(dim, 'dim');
    const n = sizeProduct(batch, dim);
    checkArray(x, 'x', n);
    checkArray(logScale, 'logScale', dim);
    checkArray(y, 'y', n);
    checkArray(logDet, 'logDet', batch);
    checkDisjoint(y, 'y', { x, logScale });
    checkDisjoint(logDet, 'logDet', { x, logScale, y });
    let ld = 0;
    for (let j = 0; j < dim; j++) ld += logScale[j];
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < dim; j++) y[r * dim + j] = x[r * dim + j] * Math.exp(logScale[j]);
      logDet[r] = ld;
    }
  },

  scaleInverse(y, logScale, x, logDet, batch, dim) {
    checkSize(batch, 'batch');
    checkSize(dim, 'dim');
    const n = sizeProduct(batch, dim);
    checkArray(y, 'y', n);
    checkArray(logScale, 'logScale', dim);
    checkArray(x, 'x', n);
    checkArray(logDet, 'logDet', batch);
    checkDisjoint(x, 'x', { y, logScale });
    checkDisjoint(logDet, 'logDet', { y, logScale, x });
    let ld = 0;
    for (let j = 0; j < dim; j++) ld -= logScale[j];
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < dim; j++) x[r * dim + j] = y[r * dim + j] * Math.exp(-logScale[j]);
      logDet[r] = ld;
    }
  },

  scaleBackward(x, logScale, dy, dLogDet, dx, dLogScale, batch, dim) {
    checkSize(batch, 'batch');
    checkSize(dim, 'dim');
    const n = sizeProduct(batch, dim);
    checkArray(x, 'x', n);
    checkArray(logScale, 'logScale', dim);
    checkArray(dy, 'dy', n);
    checkArray(dLogDet, 'dLogDet', batch);
    checkArray(dx, 'dx', n);
    checkArray(dLogScale, 'dLogScale', dim);
    checkDisjoint(dx, 'dx', { x, logScale, dy, dLogDet });
    checkDisjoint(dLogScale, 'dLogScale', { x, logScale, dy, dLogDet, dx });
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < dim; j++) {
        const g = dy[r * dim + j] * Math.exp(logScale[j]);
        dx[r * dim + j] = g;
        dLogScale[j] += g * x[r * dim + j] + dLogDet[r];
      }
    }
  },
};
