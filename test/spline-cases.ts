/**
 * Spline kernel cases shared by test/spline.test.ts and its SIMD-capped
 * child process (test/spline.simd.ts): awkward shapes, inputs that include
 * the interval's ends, tails and (approximate) knots, the kernels run on one
 * backend, and the cpu-vs-reference tolerances with their reasons. No vitest
 * here: the child process runs under plain node.
 */
import type { Backend } from '../src/backend/backend';
import type { FloatArray } from '../src/backend/types';

/** One kernel call: columns [start, start + width) of [batch, dim] rows, K bins on [−B, B). */
export interface SplineCase {
  batch: number;
  dim: number;
  width: number;
  start: number;
  bins: number;
  bound: number;
}

/**
 * Awkward sizes: batch 1, width 1, K = 1, 2, 8, widths off every SIMD width
 * (16 + 1, 16 + 16 + 1, 8 + 4 + 3 …) and windows not at column 0, plus a
 * batch large enough to run on several threads.
 */
export const SPLINE_CASES: SplineCase[] = [
  { batch: 1, dim: 1, width: 1, start: 0, bins: 8, bound: 3 },
  { batch: 1, dim: 1, width: 1, start: 0, bins: 1, bound: 3 },
  { batch: 3, dim: 2, width: 1, start: 1, bins: 2, bound: 1.5 },
  { batch: 5, dim: 17, width: 17, start: 0, bins: 8, bound: 3 },
  { batch: 4, dim: 40, width: 20, start: 20, bins: 8, bound: 3 },
  { batch: 2, dim: 37, width: 33, start: 3, bins: 5, bound: 2 },
  { batch: 7, dim: 20, width: 15, start: 1, bins: 3, bound: 5 },
  { batch: 3, dim: 64, width: 64, start: 0, bins: 2, bound: 3 },
  { batch: 150, dim: 40, width: 20, start: 0, bins: 8, bound: 3 },
];

/** mulberry32 (the tests' generator, repeated here so this file needs no vitest). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Float32-representable uniforms on [lo, hi), so both backends see the same numbers. */
export function float32Uniform(n: number, seed: number, lo: number, hi: number): Float64Array {
  const r = seededRandom(seed);
  return Float64Array.from(Float32Array.from({ length: n }, () => lo + (hi - lo) * r()));
}

export interface CaseData {
  x: Float64Array;
  /** Input of the inverse (values in y-space; round trips are tested separately). */
  u: Float64Array;
  params: Float64Array;
  dy: Float64Array;
  dLogDet: Float64Array;
}

/**
 * Inputs of a case: θ uniform on [−1.5, 1.5] (bin sizes within a factor e³
 * of each other, slopes in [~0.05, ~20]), x and u uniform on [−1.2B, 1.2B]
 * (about 1 in 6 in the tails), and at fixed positions the values −B, B, just
 * below B, −B + 2B/K and −2B.
 */
export function caseData(c: SplineCase, seed: number): CaseData {
  const P = 3 * c.bins - 1;
  const withSpecials = (a: Float64Array) => {
    const special = [-c.bound, c.bound, Math.fround(c.bound * (1 - 2 ** -20)), Math.fround(-c.bound + (2 * c.bound) / c.bins), -2 * c.bound];
    for (let k = 0; k < special.length && k < c.batch * c.width; k++) {
      const r = k % c.batch;
      const i = Math.floor(k / c.batch) % c.width;
      a[r * c.dim + c.start + i] = special[k];
    }
    return a;
  };
  return {
    x: withSpecials(float32Uniform(c.batch * c.dim, seed, -1.2 * c.bound, 1.2 * c.bound)),
    u: withSpecials(float32Uniform(c.batch * c.dim, seed + 4, -1.2 * c.bound, 1.2 * c.bound)),
    params: float32Uniform(c.batch * P * c.width, seed + 1, -1.5, 1.5),
    dy: float32Uniform(c.batch * c.dim, seed + 2, -1, 1),
    dLogDet: float32Uniform(c.batch, seed + 3, -1, 1),
  };
}

export interface CaseResult {
  y: FloatArray;
  logDet: FloatArray;
  dx: FloatArray;
  dParams: FloatArray;
  /** Inverse of `u`. */
  xInverse: FloatArray;
  logDetInverse: FloatArray;
}

/**
 * Runs forward, backward and inverse on `backend`. Outputs start filled with
 * 7.5 so that columns outside the window can be checked to stay untouched.
 */
export function runCase(backend: Backend, c: SplineCase, d: CaseData): CaseResult {
  const k = backend.spline;
  const P = 3 * c.bins - 1;
  const n = c.batch * c.dim;
  const y = backend.alloc(n).fill(7.5);
  const logDet = backend.alloc(c.batch);
  const dx = backend.alloc(n).fill(7.5);
  const dParams = backend.alloc(c.batch * P * c.width);
  const xInverse = backend.alloc(n).fill(7.5);
  const logDetInverse = backend.alloc(c.batch);
  const params = backend.from(d.params);
  k.forward(backend.from(d.x), params, y, logDet, c.batch, c.dim, c.width, c.start, c.bins, c.bound);
  k.backward(backend.from(d.x), params, backend.from(d.dy), backend.from(d.dLogDet), dx, dParams, c.batch, c.dim, c.width, c.start, c.bins, c.bound);
  k.inverse(backend.from(d.u), params, xInverse, logDetInverse, c.batch, c.dim, c.width, c.start, c.bins, c.bound);
  return { y, logDet, dx, dParams, xInverse, logDetInverse };
}

export interface Tolerance {
  atol: number;
  rtol: number;
}

/**
 * cpu (float32) vs reference (float64) on these inputs. The float32 error is
 * dominated by the knots: each is a cumulative sum of K softmax terms scaled
 * by 2B, so it carries an absolute error δ of ~√K·ε₃₂·2B ≈ 1e-6·B/3 (at most
 * K·ε₃₂·2B ≈ 3e-6·B/3) at K = 8 (ε₃₂ = 6e-8); the rest is a few ulp.
 *  - y: δ moves y by ≲ (1 + slope)·δ, slopes ≤ ~20 here: 3e-5·B/3.
 *  - inverse x: δ moves x by ≲ (1 + 1/slope)·δ, slopes ≥ ~0.05: 2e-4·B/3.
 *  - log-det: a term log(dy/dx) changes by ~δ/W, bins W ≥ 2B·e⁻³/K, so
 *    ≲ 1e-5 per element; a row sums `width` terms: 2e-5·width.
 *  - gradients (dy, dLogDet in [−1, 1], gradients O(1)): one more derivative
 *    of the same δ/W, relative 2e-4, with an absolute floor of
 *    2e-5·max(1, largest gradient) for gradients that cancel to ~0 (an
 *    element just below B has ∂y/∂θ ~ 1e-6, computed from differences of ~1).
 */
export function caseTolerances(c: SplineCase, ref: CaseResult): Record<keyof CaseResult, Tolerance> {
  const scale = c.bound / 3;
  const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 1);
  return {
    y: { atol: 3e-5 * scale, rtol: 0 },
    xInverse: { atol: 2e-4 * scale, rtol: 0 },
    logDet: { atol: 2e-5 * Math.max(1, c.width), rtol: 0 },
    logDetInverse: { atol: 2e-5 * Math.max(1, c.width), rtol: 0 },
    dx: { atol: 2e-5 * maxAbs(ref.dx), rtol: 2e-4 },
    dParams: { atol: 2e-5 * maxAbs(ref.dParams), rtol: 2e-4 },
  };
}

/** Largest |a − e| / (atol + rtol·|e|) over the arrays (≤ 1 is within tolerance; NaN counts as ∞). */
export function worstRatio(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance): number {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    if (err === 0) continue;
    const ratio = err / (tol.atol + tol.rtol * Math.abs(expected[i]));
    worst = Math.max(worst, Number.isNaN(ratio) ? Infinity : ratio);
  }
  return worst;
}
