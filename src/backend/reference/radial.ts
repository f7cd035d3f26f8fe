/**
 * Reference radial-flow stacks (float64), row by row and layer by layer: the
 * definition the native kernels are tested against (see kernels/radial.ts for
 * the mathematics and layouts). Backward recomputes every layer from x (it
 * checks the stash's length but does not need its values).
 */
import { radialParamSize, type RadialKernels } from '../kernels/radial';
import type { FloatArray } from '../types';
import {
  checkArray,
  checkBoolean,
  checkDisjoint,
  checkOptionalArray,
  checkPositiveInt,
  checkSize,
  sizeProduct,
} from '../../validate';

import { sigmoid, softplus } from '../../math';

/** log|det J| of one layer from r, α and sp = softplus(β̃), in the cancellation-free form. */
export function radialLayerLogDet(r: number, alpha: number, sp: number, dim: number): number {
  const q = alpha + r;
  return (dim - 1) * Math.log((r + sp) / q) + Math.log((r * (2 * alpha + r) + alpha * sp) / (q * q));
}

interface Sizes {
  values: number;
  params: number;
  perLayer: number;
  rowParams: number;
}

function checkSizes(batch: number, dim: number, layers: number, amortized: boolean): Sizes {
  checkSize(batch, 'batch');
  checkPositiveInt(dim, 'dim');
  checkPositiveInt(layers, 'layers');
  checkBoolean(amortized, 'amortized');
  const rowParams = sizeProduct(layers, radialParamSize(dim));
  return {
    values: sizeProduct(batch, dim),
    params: amortized ? sizeProduct(batch, rowParams) : rowParams,
    perLayer: sizeProduct(batch, layers),
    rowParams,
  };
}

function rowFinite(a: FloatArray, start: number, n: number): boolean {
  for (let i = start; i < start + n; i++) if (!Number.isFinite(a[i])) return false;
  return true;
}

/** Offsets of z0_k, α̃_k, β̃_k in a parameter row starting at `base`. */
function offsets(base: number, k: number, dim: number, layers: number): { z0: number; a: number; b: number } {
  return { z0: base + k * dim, a: base + layers * dim + k, b: base + layers * dim + layers + k };
}

export const referenceRadial: RadialKernels = {
  forward(x, params, y, logDet, layerLogDets, stash, batch, dim, layers, amortized) {
    const s = checkSizes(batch, dim, layers, amortized);
    checkArray(x, 'x', s.values);
    checkArray(params, 'params', s.params);
    checkArray(y, 'y', s.values);
    checkDisjoint(y, 'y', { x, params });
    checkArray(logDet, 'logDet', batch);
    checkDisjoint(logDet, 'logDet', { x, params, y });
    checkOptionalArray(layerLogDets, 'layerLogDet', s.perLayer);
    checkDisjoint(layerLogDets, 'layerLogDet', { x, params, y, logDet });
    checkArray(stash, 'stash', s.perLayer);
    checkDisjoint(stash, 'stash', { x, params, y, logDet, layerLogDet: layerLogDets });
    const z = new Float64Array(dim);
    let bad = 0;
    for (let row = 0; row < batch; row++) {
      for (let d = 0; d < dim; d++) z[d] = x[row * dim + d];
      const base = amortized ? row * s.rowParams : 0;
      let total = 0;
      for (let k = 0; k < layers; k++) {
        const o = offsets(base, k, dim, layers);
        const alpha = softplus(params[o.a]);
        const sp = softplus(params[o.b]);
        let r2 = 0;
        for (let d = 0; d < dim; d++) r2 += (z[d] - params[o.z0 + d]) ** 2;
        const r = Math.sqrt(r2);
        const bh = (sp - alpha) / (alpha + r);
        for (let d = 0; d < dim; d++) z[d] += bh * (z[d] - params[o.z0 + d]);
        const ld = radialLayerLogDet(r, alpha, sp, dim);
        total += ld;
        stash[row * layers + k] = r;
        if (layerLogDets) layerLogDets[row * layers + k] = ld;
      }
      for (let d = 0; d < dim; d++) y[row * dim + d] = z[d];
      logDet[row] = total;
      if (!rowFinite(y, row * dim, dim) || !Number.isFinite(total)) bad++;
    }
    return bad;
  },

  backward(x, stash, params, dy, dLogDet, dx, dParams, batch, dim, layers, amortized) {
    const s = checkSizes(batch, dim, layers, amortized);
    checkArray(x, 'x', s.values);
    checkArray(stash, 'stash', s.perLayer);
    checkArray(params, 'params', s.params);
    checkArray(dy, 'dy', s.values);
    checkArray(dLogDet, 'dLogDet', batch);
    checkArray(dx, 'dx', s.values);
    checkDisjoint(dx, 'dx', { x, stash, params, dy, dLogDet });
    checkArray(dParams, 'dParams', s.params);
    checkDisjoint(dParams, 'dParams', { x, stash, params, dy, dLogDet, dx });
    const zs = new Float64Array(layers * dim); // input of every layer
    const g = new Float64Array(dim);
    let bad = 0;
    for (let row = 0; row < batch; row++) {
      const base = amortized ? row * s.rowParams : 0;
      for (let d = 0; d < dim; d++) zs[d] = x[row * dim + d];
      for (let k = 0; k + 1 < layers; k++) {
        const o = offsets(base, k, dim, layers);
        const alpha = softplus(params[o.a]);
        const sp = softplus(params[o.b]);
        let r2 = 0;
        for (let d = 0; d < dim; d++) r2 += (zs[k * dim + d] - params[o.z0 + d]) ** 2;
        const bh = (sp - alpha) / (alpha + Math.sqrt(r2));
        for (let d = 0; d < dim; d++) {
          const z = zs[k * dim + d];
          zs[(k + 1) * dim + d] = z + bh * (z - params[o.z0 + d]);
        }
      }
      for (let d = 0; d < dim; d++) g[d] = dy[row * dim + d];
      const gl = dLogDet[row];
      // Amortized rows overwrite their own gradients; shared ones accumulate over rows and calls.
      const put = (i: number, v: number) => {
        dParams[i] = amortized ? v : dParams[i] + v;
      };
      for (let k = layers - 1; k >= 0; k--) {
        const o = offsets(base, k, dim, layers);
        const alpha = softplus(params[o.a]);
        const sp = softplus(params[o.b]);
        const beta = sp - alpha;
        let r2 = 0;
        let gd = 0; // gᵀ(z − z0)
        for (let d = 0; d < dim; d++) {
          const diff = zs[k * dim + d] - params[o.z0 + d];
          r2 += diff * diff;
          gd += g[d] * diff;
        }
        const r = Math.sqrt(r2);
        const q = alpha + r;
        const h = 1 / q;
        const n = r * (2 * alpha + r) + alpha * sp;
        // logdet = (D−1)[log(r + sp) − log q] + log n − 2 log q
        const dldR = (dim - 1) / (r + sp) + (2 * q) / n - (dim + 1) * h;
        const dldAlpha = (2 * r + sp) / n - (dim + 1) * h;
        const dldSp = (dim - 1) / (r + sp) + alpha / n;
        // βh = (sp − α)/q
        const gR = gl * dldR - gd * beta * h * h;
        const gAlpha = gl * dldAlpha - gd * (r + sp) * h * h;
        const gSp = gl * dldSp + gd * h;
        const rho = r > 0 ? gR / r : 0;
        const bh = beta * h;
        const out = amortized ? row * s.rowParams : 0;
        for (let d = 0; d < dim; d++) {
          const gdiff = bh * g[d] + rho * (zs[k * dim + d] - params[o.z0 + d]);
          put(out + k * dim + d, -gdiff);
          g[d] += gdiff;
        }
        put(out + layers * dim + k, gAlpha * sigmoid(params[o.a]));
        put(out + layers * dim + layers + k, gSp * sigmoid(params[o.b]));
      }
      for (let d = 0; d < dim; d++) dx[row * dim + d] = g[d];
      if (!rowFinite(dx, row * dim, dim) || (amortized && !rowFinite(dParams, row * s.rowParams, s.rowParams))) bad++;
    }
    return bad;
  },

  inverse(y, params, x, logDet, batch, dim, layers, amortized) {
    const s = checkSizes(batch, dim, layers, amortized);
    checkArray(y, 'y', s.values);
    checkArray(params, 'params', s.params);
    checkArray(x, 'x', s.values);
    checkDisjoint(x, 'x', { y, params });
    checkArray(logDet, 'logDet', batch);
    checkDisjoint(logDet, 'logDet', { y, params, x });
    const z = new Float64Array(dim);
    let bad = 0;
    for (let row = 0; row < batch; row++) {
      for (let d = 0; d < dim; d++) z[d] = y[row * dim + d];
      const base = amortized ? row * s.rowParams : 0;
      let total = 0;
      for (let k = layers - 1; k >= 0; k--) {
        const o = offsets(base, k, dim, layers);
        const alpha = softplus(params[o.a]);
        const sp = softplus(params[o.b]);
        let rho2 = 0;
        for (let d = 0; d < dim; d++) rho2 += (z[d] - params[o.z0 + d]) ** 2;
        const rho = Math.sqrt(rho2);
        // ρ = r(r + sp)/(α + r): r is the positive root of r² + (sp − ρ)r − ρα = 0 (stable form).
        const b = rho - sp;
        const root = Math.sqrt(b * b + 4 * rho * alpha);
        const r = b >= 0 ? 0.5 * (b + root) : (2 * rho * alpha) / (root - b);
        const scale = r + sp > 0 ? (alpha + r) / (r + sp) : 0;
        for (let d = 0; d < dim; d++) z[d] = params[o.z0 + d] + (z[d] - params[o.z0 + d]) * scale;
        total -= radialLayerLogDet(r, alpha, sp, dim);
      }
      for (let d = 0; d < dim; d++) x[row * dim + d] = z[d];
      const ok = Number.isFinite(total) && rowFinite(x, row * dim, dim);
      logDet[row] = ok ? total : NaN;
      if (!ok) bad++;
    }
    return bad;
  },
};
