/**
 * Reference radial-flow stacks (float64), row by row and layer by layer: the
 * definition the native kernels are tested against (see kernels/radial.ts for
 * the mathematics and layouts). Backward recomputes every layer from x (it
 * checks the stash's length but does not need its values).
 */
import { RADIAL_SIGNATURES, type RadialKernels } from '../kernels/radial';
import { sigmoid, softplus } from '../../math';
import { referenceFlowStack } from './flow-stack';

/** log|det J| of one layer from r, α and sp = softplus(β̃), in the cancellation-free form. */
export function radialLayerLogDet(r: number, alpha: number, sp: number, dim: number): number {
  const q = alpha + r;
  return (dim - 1) * Math.log((r + sp) / q) + Math.log((r * (2 * alpha + r) + alpha * sp) / (q * q));
}

/** Offsets of z0_k, α̃_k, β̃_k in a parameter row starting at `base`. */
function offsets(base: number, k: number, dim: number, layers: number): { z0: number; a: number; b: number } {
  return { z0: base + k * dim, a: base + layers * dim + k, b: base + layers * dim + layers + k };
}

export const referenceRadial: RadialKernels = referenceFlowStack(RADIAL_SIGNATURES, {
  forwardRow(z, params, base, dim, layers, stash, at, layerLogDets) {
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
      stash[at + k] = r;
      if (layerLogDets) layerLogDets[at + k] = ld;
    }
    return total;
  },

  // z starts as the row of x; every layer's input is recomputed into zs.
  backwardRow(z, g, gl, params, base, dim, layers, _stash, _at, put, zs) {
    for (let d = 0; d < dim; d++) zs[d] = z[d];
    for (let k = 0; k + 1 < layers; k++) {
      const o = offsets(base, k, dim, layers);
      const alpha = softplus(params[o.a]);
      const sp = softplus(params[o.b]);
      let r2 = 0;
      for (let d = 0; d < dim; d++) r2 += (zs[k * dim + d] - params[o.z0 + d]) ** 2;
      const bh = (sp - alpha) / (alpha + Math.sqrt(r2));
      for (let d = 0; d < dim; d++) {
        const zd = zs[k * dim + d];
        zs[(k + 1) * dim + d] = zd + bh * (zd - params[o.z0 + d]);
      }
    }
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
      for (let d = 0; d < dim; d++) {
        const gdiff = bh * g[d] + rho * (zs[k * dim + d] - params[o.z0 + d]);
        put(k * dim + d, -gdiff);
        g[d] += gdiff;
      }
      put(layers * dim + k, gAlpha * sigmoid(params[o.a]));
      put(layers * dim + layers + k, gSp * sigmoid(params[o.b]));
    }
  },

  inverseRow(z, params, base, dim, layers) {
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
    return total;
  },
});
