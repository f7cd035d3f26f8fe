/**
 * Reference coupling kernels (float64), row by row: the definition the native
 * kernels are tested against (see kernels/coupling.ts for the mathematics,
 * layouts and conventions).
 */
import { COUPLING_SIGNATURES as SIGNATURES, type CouplingKernels } from '../kernels/coupling';
import { checkKernelArgs } from '../kernels/signature';

/** 1 − tanh²(a) without cancellation. */
function sech2(a: number): number {
  const c = Math.cosh(a);
  return 1 / (c * c);
}

export const referenceCoupling: CouplingKernels = {
  gather(x, context, out, batch, dim, offset, width, contextDim) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.gather, arguments);
    const cw = width + contextDim;
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < width; j++) out[r * cw + j] = x[r * dim + offset + j];
      for (let c = 0; c < contextDim; c++) out[r * cw + width + c] = context![r * contextDim + c];
    }
  },

  scatterAdd(dIn, dx, dContext, batch, dim, offset, width, contextDim) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.scatterAdd, arguments);
    const cw = width + contextDim;
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < width; j++) dx[r * dim + offset + j] += dIn[r * cw + j];
      for (let c = 0; c < contextDim; c++) dContext![r * contextDim + c] += dIn[r * cw + width + c];
    }
  },

  affineForward(x, h, scale, y, logDet, batch, dim, offset, width) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.affineForward, arguments);
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
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.affineInverse, arguments);
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
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.affineBackward, arguments);
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
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.additiveForward, arguments);
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < width; j++) y[r * dim + offset + j] = x[r * dim + offset + j] + h[r * width + j];
    }
  },

  additiveInverse(y, h, x, batch, dim, offset, width) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.additiveInverse, arguments);
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < width; j++) x[r * dim + offset + j] = y[r * dim + offset + j] - h[r * width + j];
    }
  },

  additiveBackward(dy, dx, dh, batch, dim, offset, width) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.additiveBackward, arguments);
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < width; j++) {
        const g = dy[r * dim + offset + j];
        dx[r * dim + offset + j] = g;
        dh[r * width + j] = g;
      }
    }
  },

  scaleForward(x, logScale, y, logDet, batch, dim) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.scaleForward, arguments);
    let ld = 0;
    for (let j = 0; j < dim; j++) ld += logScale[j];
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < dim; j++) y[r * dim + j] = x[r * dim + j] * Math.exp(logScale[j]);
      logDet[r] = ld;
    }
  },

  scaleInverse(y, logScale, x, logDet, batch, dim) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.scaleInverse, arguments);
    let ld = 0;
    for (let j = 0; j < dim; j++) ld -= logScale[j];
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < dim; j++) x[r * dim + j] = y[r * dim + j] * Math.exp(-logScale[j]);
      logDet[r] = ld;
    }
  },

  scaleBackward(x, logScale, dy, dLogDet, dx, dLogScale, batch, dim) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.scaleBackward, arguments);
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < dim; j++) {
        const g = dy[r * dim + j] * Math.exp(logScale[j]);
        dx[r * dim + j] = g;
        dLogScale[j] += g * x[r * dim + j] + dLogDet[r];
      }
    }
  },
};
