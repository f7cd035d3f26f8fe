/**
 * Reference planar-flow stacks (float64), row by row and layer by layer: the
 * definition the native kernels are tested against (see kernels/planar.ts
 * for the mathematics, layouts and conventions).
 */
import { PLANAR_SIGNATURES, type PlanarKernels } from '../kernels/planar';
import type { FloatArray } from '../types';
import { sigmoid, softplus } from '../../math';
import { referenceFlowStack } from './flow-stack';

export { sigmoid, softplus };

/** 1 − tanh²(a) without cancellation. */
export function sech2(a: number): number {
  const c = Math.cosh(a);
  return 1 / (c * c);
}

/** Constants of one layer derived from (u, w): the reparametrization and what backward needs. */
interface PlanarLayer {
  /** Offsets of u_k, w_k and b_k in the parameter array. */
  u: number;
  w: number;
  b: number;
  wn2: number;
  /** û = u + c·w. */
  c: number;
  /** 1 + wᵀû = softplus(wᵀu), or 1 when ‖w‖ = 0. */
  sp: number;
  /** sigmoid(wᵀu), sigmoid(−wᵀu). */
  sig: number;
  sigNeg: number;
}

function layerAt(params: FloatArray, base: number, k: number, dim: number, layers: number): PlanarLayer {
  const u = base + k * dim;
  const w = base + layers * dim + k * dim;
  let wu = 0;
  let wn2 = 0;
  for (let d = 0; d < dim; d++) {
    wu += params[w + d] * params[u + d];
    wn2 += params[w + d] * params[w + d];
  }
  const hasW = wn2 > 0;
  return {
    u,
    w,
    b: base + 2 * layers * dim + k,
    wn2,
    // m(wᵀu) − wᵀu = softplus(−wᵀu) − 1
    c: hasW ? (softplus(-wu) - 1) / wn2 : 0,
    sp: hasW ? softplus(wu) : 1,
    sig: sigmoid(wu),
    sigNeg: sigmoid(-wu),
  };
}

/** log(1 + sech²(a)·m) written as log(tanh²(a) + sech²(a)·(1 + m)): no cancellation as m → −1. */
function layerLogDet(a: number, sp: number): number {
  const t = Math.tanh(a);
  return Math.log(t * t + sech2(a) * sp);
}

/**
 * Solves α + m·tanh(α + b) = target (monotone in α since m > −1): Newton
 * steps inside a shrinking bracket, bisection when a step leaves it. Returns
 * NaN when it does not reach a residual of 1e-6·(1 + |target| + |m|).
 */
export function solvePlanarScalar(target: number, m: number, b: number): number {
  if (!Number.isFinite(target) || !Number.isFinite(m) || !Number.isFinite(b)) return NaN;
  let lo = target - Math.abs(m);
  let hi = target + Math.abs(m);
  let alpha = Math.min(Math.max(target - m * Math.tanh(target + b), lo), hi);
  const scale = 1 + Math.abs(target) + Math.abs(m);
  let f = 0;
  let previous = Infinity;
  for (let it = 0; it < 200; it++) {
    const th = Math.tanh(alpha + b);
    f = alpha + m * th - target;
    if (Math.abs(f) <= 1e-13 * scale) break;
    if (f > 0) hi = alpha;
    else lo = alpha;
    let next = alpha - f / (1 + m * (1 - th * th));
    // Bisect when Newton leaves the bracket or stalls (|f| not halved by the
    // last step): across the knee of tanh, Newton can bounce between the two
    // sides of the root while the bracket shrinks only slowly.
    if (!(next > lo && next < hi) || Math.abs(f) > 0.5 * previous) next = 0.5 * (lo + hi);
    previous = Math.abs(f);
    if (next === alpha) break;
    alpha = next;
  }
  return Math.abs(f) <= 1e-6 * scale ? alpha : NaN;
}

export const referencePlanar: PlanarKernels = referenceFlowStack(PLANAR_SIGNATURES, {
  forwardRow(z, params, base, dim, layers, stash, at, layerLogDets) {
    let total = 0;
    for (let k = 0; k < layers; k++) {
      const L = layerAt(params, base, k, dim, layers);
      let a = params[L.b];
      for (let d = 0; d < dim; d++) a += params[L.w + d] * z[d];
      const t = Math.tanh(a);
      for (let d = 0; d < dim; d++) z[d] += t * (params[L.u + d] + L.c * params[L.w + d]);
      const ld = layerLogDet(a, L.sp);
      total += ld;
      stash[at + k] = a;
      if (layerLogDets) layerLogDets[at + k] = ld;
    }
    return total;
  },

  // z starts as the row of y; each layer's input is rebuilt from its output.
  backwardRow(z, g, gl, params, base, dim, layers, stash, at, put) {
    for (let k = layers - 1; k >= 0; k--) {
      const L = layerAt(params, base, k, dim, layers);
      const a = stash[at + k];
      const t = Math.tanh(a);
      const sh = sech2(a);
      let gyu = 0;
      let gw = 0;
      for (let d = 0; d < dim; d++) {
        const uh = params[L.u + d] + L.c * params[L.w + d];
        z[d] -= t * uh; // this layer's input
        gyu += g[d] * uh;
        gw += g[d] * params[L.w + d];
      }
      const det = t * t + sh * L.sp;
      const ga = (gyu - (2 * gl * t * (L.sp - 1)) / det) * sh; // ∂L/∂a
      const gsp = (gl * sh) / det; // ∂L/∂sp
      const gc = t * gw; // ∂L/∂c
      const gwu = L.wn2 > 0 ? gsp * L.sig - (gc * L.sigNeg) / L.wn2 : 0;
      const gwn2 = L.wn2 > 0 ? (-gc * L.c) / L.wn2 : 0;
      for (let d = 0; d < dim; d++) {
        const u = params[L.u + d];
        const w = params[L.w + d];
        put(k * dim + d, t * g[d] + gwu * w);
        put((layers + k) * dim + d, ga * z[d] + L.c * t * g[d] + gwu * u + 2 * gwn2 * w);
        g[d] += ga * w;
      }
      put(2 * layers * dim + k, ga);
    }
  },

  inverseRow(z, params, base, dim, layers) {
    let total = 0;
    for (let k = layers - 1; k >= 0 && !Number.isNaN(total); k--) {
      const L = layerAt(params, base, k, dim, layers);
      let wy = 0;
      for (let d = 0; d < dim; d++) wy += params[L.w + d] * z[d];
      const b = params[L.b];
      const alpha = solvePlanarScalar(wy, L.sp - 1, b);
      const t = Math.tanh(alpha + b);
      for (let d = 0; d < dim; d++) z[d] -= t * (params[L.u + d] + L.c * params[L.w + d]);
      total -= layerLogDet(alpha + b, L.sp);
    }
    return total;
  },
});
