/**
 * Reference rational-quadratic spline kernels (float64), as defined in
 * kernels/spline.ts: every element builds its knots from the softmaxes, finds
 * its bin by a linear scan and evaluates the formula; the backward applies the
 * chain rule through the knots, the cumulative sums and the softmax by its
 * definition (a full Jacobian-vector product per element, no shortcuts).
 */
import type { FloatArray } from '../types';
import { SPLINE_MIN_BIN, SPLINE_MIN_DERIVATIVE, SPLINE_SIGNATURES as SIGNATURES, splineParamsPerElement, type SplineKernels } from '../kernels/spline';
import { checkKernelArgs } from '../kernels/signature';
import { sigmoid, softplus } from './elementwise';

/** softplus(c) + SPLINE_MIN_DERIVATIVE = 1: zero parameters give unit slopes. */
const DERIVATIVE_OFFSET = Math.log(Math.expm1(1 - SPLINE_MIN_DERIVATIVE));

interface Sizes {
  values: number;
  params: number;
  P: number;
}

/** The sizes a checked call implies. */
function sizesOf(batch: number, dim: number, width: number, bins: number): Sizes {
  const P = splineParamsPerElement(bins);
  return { values: batch * dim, params: batch * P * width, P };
}

/** p = softmax(θ) over θ_j = params[at + j·stride], j < K. */
function softmax(params: FloatArray, at: number, stride: number, K: number, p: Float64Array): void {
  let mx = -Infinity;
  for (let j = 0; j < K; j++) mx = Math.max(mx, params[at + j * stride]);
  let sum = 0;
  for (let j = 0; j < K; j++) {
    p[j] = Math.exp(params[at + j * stride] - mx);
    sum += p[j];
  }
  for (let j = 0; j < K; j++) p[j] /= sum;
}

/** Knots −B + 2B·Σ_{j<k} (min + (1 − K·min) p_j) for k < K, and B at k = K. */
function knots(p: Float64Array, K: number, bound: number, out: Float64Array): void {
  let cum = 0;
  out[0] = -bound;
  for (let j = 1; j < K; j++) {
    cum += SPLINE_MIN_BIN + (1 - K * SPLINE_MIN_BIN) * p[j - 1];
    out[j] = -bound + 2 * bound * cum;
  }
  out[K] = bound;
}

/**
 * ∂L/∂v for one of the variables v ∈ {ξ, s, d_k, d_{k+1}}, where y = y_k + H·N/D and
 * log dy/dx = 2 log s + log M − 2 log D: given ∂N/∂v, ∂D/∂v, ∂M/∂v (and ∂(2 log s)/∂v),
 * L = gy·y + gl·log dy/dx.
 */
function chain(gyH: number, gl: number, R: number, D: number, M: number, dN: number, dD: number, dM: number, dLogS2: number): number {
  return (gyH * (dN - R * dD)) / D + gl * (dM / M - (2 * dD) / D + dLogS2);
}

/**
 * Writes ∂L/∂θ_j (j < K, at dParams[at + j·stride]) given ∂L/∂knot_k for k = 0 … K:
 * only interior knots depend on θ (knot_0 = −B, knot_K = B):
 * ∂knot_k/∂p_j = 2B(1 − K·min)·[j < k],  ∂L/∂θ_j = p_j (g_j − Σ_i p_i g_i).
 */
function throughSoftmax(
  gKnot: Float64Array,
  p: Float64Array,
  K: number,
  bound: number,
  gp: Float64Array,
  dParams: FloatArray,
  at: number,
  stride: number,
): void {
  let mean = 0;
  for (let j = 0; j < K; j++) {
    let g = 0;
    for (let m = j + 1; m < K; m++) g += gKnot[m];
    gp[j] = 2 * bound * (1 - K * SPLINE_MIN_BIN) * g;
    mean += p[j] * gp[j];
  }
  for (let j = 0; j < K; j++) dParams[at + j * stride] = p[j] * (gp[j] - mean);
}

/**
 * The spline of one element: knots of both sides, slopes, and the bin
 * holding `v` on the searched side (x for forward, y for inverse). Buffers
 * are owned by the caller and reused across elements.
 */
class Element {
  readonly px: Float64Array; // softmax probabilities of θw
  readonly py: Float64Array;
  readonly xk: Float64Array; // knots x_0 … x_K
  readonly yk: Float64Array;
  readonly d: Float64Array; // slopes d_0 … d_K
  readonly sig: Float64Array; // sigmoid(θd + c) at interior knots (d_k' = sig)

  constructor(readonly bins: number) {
    this.px = new Float64Array(bins);
    this.py = new Float64Array(bins);
    this.xk = new Float64Array(bins + 1);
    this.yk = new Float64Array(bins + 1);
    this.d = new Float64Array(bins + 1);
    this.sig = new Float64Array(bins + 1);
  }

  /** Loads θ of element i of a row whose parameters start at `base` (blocked: θ_j at base + j·width + i). */
  load(params: FloatArray, base: number, width: number, i: number, bound: number): void {
    const K = this.bins;
    softmax(params, base + i, width, K, this.px);
    softmax(params, base + K * width + i, width, K, this.py);
    knots(this.px, K, bound, this.xk);
    knots(this.py, K, bound, this.yk);
    this.d[0] = 1;
    this.d[K] = 1;
    for (let k = 1; k < K; k++) {
      const t = params[base + (2 * K + k - 1) * width + i] + DERIVATIVE_OFFSET;
      this.d[k] = SPLINE_MIN_DERIVATIVE + softplus(t);
      this.sig[k] = sigmoid(t);
    }
  }

  /** Bin k with knots[k] ≤ v < knots[k + 1], for v in [−B, B). */
  static bin(knots: Float64Array, v: number): number {
    let k = 0;
    while (k + 1 < knots.length - 1 && knots[k + 1] <= v) k++;
    return k;
  }
}

/** log dy/dx in a bin at position ξ. */
function logSlope(s: number, dLo: number, dHi: number, xi: number): number {
  const t = xi * (1 - xi);
  const den = s + (dLo + dHi - 2 * s) * t;
  return Math.log((s * s * (dHi * xi * xi + 2 * s * t + dLo * (1 - xi) * (1 - xi))) / (den * den));
}

export const referenceSpline: SplineKernels = {
  forward(x, params, y, logDet, batch, dim, width, start, bins, bound) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.forward, arguments);
    const s = sizesOf(batch, dim, width, bins);
    const e = new Element(bins);
    for (let r = 0; r < batch; r++) {
      let ld = 0;
      for (let i = 0; i < width; i++) {
        const v = x[r * dim + start + i];
        if (!(v >= -bound && v < bound)) {
          y[r * dim + start + i] = v;
          continue;
        }
        e.load(params, r * s.P * width, width, i, bound);
        const k = Element.bin(e.xk, v);
        const w = e.xk[k + 1] - e.xk[k];
        const h = e.yk[k + 1] - e.yk[k];
        const sl = h / w;
        const xi = (v - e.xk[k]) / w;
        const t = xi * (1 - xi);
        const den = sl + (e.d[k] + e.d[k + 1] - 2 * sl) * t;
        y[r * dim + start + i] = e.yk[k] + (h * (sl * xi * xi + e.d[k] * t)) / den;
        ld += logSlope(sl, e.d[k], e.d[k + 1], xi);
      }
      logDet[r] = ld;
    }
  },

  backward(x, params, dy, dLogDet, dx, dParams, batch, dim, width, start, bins, bound) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.backward, arguments);
    const s = sizesOf(batch, dim, width, bins);
    const K = bins;
    const e = new Element(K);
    const gKnotX = new Float64Array(K + 1);
    const gKnotY = new Float64Array(K + 1);
    const gp = new Float64Array(K);
    for (let r = 0; r < batch; r++) {
      const base = r * s.P * width;
      for (let i = 0; i < width; i++) {
        const at = r * dim + start + i;
        const v = x[at];
        const gy = dy[at];
        for (let j = 0; j < s.P; j++) dParams[base + j * width + i] = 0;
        if (!(v >= -bound && v < bound)) {
          dx[at] = gy;
          continue;
        }
        const gl = dLogDet[r];
        e.load(params, base, width, i, bound);
        const k = Element.bin(e.xk, v);
        const xLo = e.xk[k];
        const w = e.xk[k + 1] - xLo;
        const h = e.yk[k + 1] - e.yk[k];
        const dLo = e.d[k];
        const dHi = e.d[k + 1];
        const sl = h / w;
        const xi = (v - xLo) / w;
        // y = y_k + H·N/D, log dy/dx = 2 log s + log M − 2 log D, as functions of (ξ, s, d_k, d_{k+1}).
        const t = xi * (1 - xi);
        const dt = 1 - 2 * xi;
        const sumD = dLo + dHi - 2 * sl;
        const N = sl * xi * xi + dLo * t;
        const D = sl + sumD * t;
        const M = dHi * xi * xi + 2 * sl * t + dLo * (1 - xi) * (1 - xi);
        const R = N / D;
        const gyH = gy * h;
        const gXi = chain(gyH, gl, R, D, M, 2 * sl * xi + dLo * dt, sumD * dt, 2 * dHi * xi + 2 * sl * dt - 2 * dLo * (1 - xi), 0);
        const gS = chain(gyH, gl, R, D, M, xi * xi, 1 - 2 * t, 2 * t, 2 / sl);
        const gDLo = chain(gyH, gl, R, D, M, t, t, (1 - xi) * (1 - xi), 0);
        const gDHi = chain(gyH, gl, R, D, M, 0, t, xi * xi, 0);
        // ξ = (x − x_k)/W, s = H/W, W = x_{k+1} − x_k, H = y_{k+1} − y_k.
        const gW = -(gXi * xi) / w - (gS * sl) / w;
        const gH = gy * R + gS / w;
        dx[at] = gXi / w;
        gKnotX.fill(0);
        gKnotY.fill(0);
        gKnotX[k] = -gXi / w - gW;
        gKnotX[k + 1] = gW;
        gKnotY[k] = gy - gH;
        gKnotY[k + 1] = gH;
        throughSoftmax(gKnotX, e.px, K, bound, gp, dParams, base + i, width);
        throughSoftmax(gKnotY, e.py, K, bound, gp, dParams, base + K * width + i, width);
        // d_m = min + softplus(θd_{m−1} + c) for interior m.
        if (k >= 1) dParams[base + (2 * K + k - 1) * width + i] += gDLo * e.sig[k];
        if (k + 1 <= K - 1) dParams[base + (2 * K + k) * width + i] += gDHi * e.sig[k + 1];
      }
    }
  },

  inverse(y, params, x, logDet, batch, dim, width, start, bins, bound) {
    // eslint-disable-next-line prefer-rest-params
    checkKernelArgs(SIGNATURES.inverse, arguments);
    const s = sizesOf(batch, dim, width, bins);
    const e = new Element(bins);
    for (let r = 0; r < batch; r++) {
      let ld = 0;
      for (let i = 0; i < width; i++) {
        const v = y[r * dim + start + i];
        if (!(v >= -bound && v < bound)) {
          x[r * dim + start + i] = v;
          continue;
        }
        e.load(params, r * s.P * width, width, i, bound);
        const k = Element.bin(e.yk, v);
        const w = e.xk[k + 1] - e.xk[k];
        const h = e.yk[k + 1] - e.yk[k];
        const sl = h / w;
        const dLo = e.d[k];
        const sumD = dLo + e.d[k + 1] - 2 * sl;
        // (v − y_k)(s + sumD·t) = H (s ξ² + d_k t): a ξ² + b ξ + c = 0 with c ≤ 0; the
        // root in [0, 1] is 2c / (−b − √(b² − 4ac)), which does not cancel.
        const delta = v - e.yk[k];
        const a = h * (sl - dLo) + delta * sumD;
        const b = h * dLo - delta * sumD;
        const c = -sl * delta;
        const xi = (2 * c) / (-b - Math.sqrt(Math.max(b * b - 4 * a * c, 0)));
        x[r * dim + start + i] = e.xk[k] + xi * w;
        ld -= logSlope(sl, dLo, e.d[k + 1], xi);
      }
      logDet[r] = ld;
    }
  },
};
