/**
 * Checks shared by the flow-stack families (planar, radial): both have the
 * same kernel calls (forward / backward / inverse of a K-layer stack, shared
 * or amortized parameters), so the cross-backend comparison, the
 * finite-difference gradient check, the Jacobian check and the round trip are
 * written once here and run per family from test/flow-stack.test.ts.
 */
import { expect } from 'vitest';
import type { Backend } from '../src/backend/backend';
import type { FloatArray } from '../src/backend/types';
import { asFloat32Values, expectClose, randomArray } from './helpers';
import type { StackKernels } from '../src/flows/stack';

/** float32 machine epsilon (2^-23). */
export const EPS32 = 2 ** -23;

/** The kernel calls a stack family's tests drive (the flows' own contract). */
export type StackKernelsUnderTest = StackKernels;

export interface FamilyUnderTest {
  name: 'planar' | 'radial';
  paramSize(dim: number): number;
  kernels(backend: Backend): StackKernelsUnderTest;
  /** Backward takes the forward's input (radial) or output (planar). */
  saved: 'x' | 'y';
}

export interface Shape {
  batch: number;
  dim: number;
  layers: number;
  amortized: boolean;
}

export function shapeName(s: Shape): string {
  return `B=${s.batch} D=${s.dim} K=${s.layers} ${s.amortized ? 'amortized' : 'shared'}`;
}

export interface StackData {
  x: Float64Array;
  params: Float64Array;
  dy: Float64Array;
  dLogDet: Float64Array;
  /** Initial content of the shared parameter gradient (backward adds to it). */
  dParams0: Float64Array;
}

/** Float32-representable test data (both backends see identical inputs). */
export function stackData(fam: FamilyUnderTest, s: Shape, seed: number, paramRange = 0.8): StackData {
  const rowParams = s.layers * fam.paramSize(s.dim);
  const nParams = (s.amortized ? s.batch : 1) * rowParams;
  return {
    x: asFloat32Values(randomArray(s.batch * s.dim, seed, -1.5, 1.5)),
    params: asFloat32Values(randomArray(nParams, seed + 1, -paramRange, paramRange)),
    dy: asFloat32Values(randomArray(s.batch * s.dim, seed + 2)),
    dLogDet: asFloat32Values(randomArray(s.batch, seed + 3)),
    dParams0: s.amortized ? new Float64Array(nParams) : asFloat32Values(randomArray(nParams, seed + 4)),
  };
}

export interface StackOutputs {
  y: Float64Array;
  logDet: Float64Array;
  layerLogDet: Float64Array;
  /** logDet of a second forward without per-layer log-dets (kernels may sum the layers differently then). */
  logDetSummed: Float64Array;
  stash: Float64Array;
  dx: Float64Array;
  dParams: Float64Array;
  /** Inverse of the `yIn` handed to runStack (the same input on every backend). */
  invX: Float64Array;
  invLogDet: Float64Array;
  bad: [number, number, number];
}

/** Forward (with per-layer log-dets), backward and inverse of `yIn` on one backend. */
export function runStack(backend: Backend, fam: FamilyUnderTest, s: Shape, d: StackData, yIn: Float64Array): StackOutputs {
  const k = fam.kernels(backend);
  const { batch, dim, layers, amortized } = s;
  const x = backend.from(d.x);
  const params = backend.from(d.params);
  const y = backend.alloc(batch * dim);
  const logDet = backend.alloc(batch);
  const layerLogDet = backend.alloc(batch * layers);
  const stash = backend.alloc(batch * layers);
  const bad0 = k.forward(x, params, y, logDet, layerLogDet, stash, batch, dim, layers, amortized);
  // Without per-layer log-dets: the same y and stash, bit for bit; the log-det may be summed differently.
  const y2 = backend.alloc(batch * dim);
  const logDetSummed = backend.alloc(batch);
  const stash2 = backend.alloc(batch * layers);
  const bad0Summed = k.forward(x, params, y2, logDetSummed, null, stash2, batch, dim, layers, amortized);
  expect(bad0Summed).toBe(bad0);
  expect(Array.from(y2)).toEqual(Array.from(y));
  expect(Array.from(stash2)).toEqual(Array.from(stash));
  const dx = backend.alloc(batch * dim);
  const dParams = backend.from(d.dParams0);
  const bad1 = k.backward(fam.saved === 'x' ? x : y, stash, params, backend.from(d.dy), backend.from(d.dLogDet), dx, dParams, batch, dim, layers, amortized);
  const invX = backend.alloc(batch * dim);
  const invLogDet = backend.alloc(batch);
  const bad2 = k.inverse(backend.from(yIn), params, invX, invLogDet, batch, dim, layers, amortized);
  const f64 = (a: FloatArray) => Float64Array.from(a);
  return {
    y: f64(y),
    logDet: f64(logDet),
    layerLogDet: f64(layerLogDet),
    logDetSummed: f64(logDetSummed),
    stash: f64(stash),
    dx: f64(dx),
    dParams: f64(dParams),
    invX: f64(invX),
    invLogDet: f64(invLogDet),
    bad: [bad0, bad1, bad2],
  };
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/**
 * cpu (float32) against reference (float64) on identical float32 inputs.
 *
 * Tolerances are absolute, relative to `scale` = max(largest magnitude of
 * the compared array, 1) (the inputs are O(1); a log-det is the log of a
 * float32 quantity known to relative eps, so its error is absolute even when
 * it is near 0), and grow with depth K and with √D (float32 rounding of
 * length-D dot products, propagated through K layers):
 * - forward values (y, stash): 2e-7·K·√D·scale, i.e. about two float32
 *   epsilons per layer; the worst case measured on these inputs is about a
 *   sixth of that.
 * - log-dets: 2e-7·K·D·scale: a radial layer multiplies log(1 + βh), known
 *   to about one epsilon, by D − 1 (measured: 4e-6 at D = 33, K = 2).
 * - gradients: 4e-6·K·√D·scale. Gradients are worse conditioned than values:
 *   e.g. a radial layer evaluated near r = ‖z − z0‖ → 0 differentiates 1/r
 *   and (α + r)^-2, and float32 knows r only to eps·|z|/r relative (seen:
 *   r = 7.6e-4 in a 32-layer D = 1 stack gives a 4e-5 relative error in dx).
 * - inverse of the same y: the cpu solves in float64 and rounds once, so
 *   1e-6·scale (a few float32 ulps).
 */
export function crossCheck(fam: FamilyUnderTest, reference: Backend, cpu: Backend, s: Shape, seed: number): void {
  const d = stackData(fam, s, seed);
  const r0 = runStack(reference, fam, s, d, new Float64Array(s.batch * s.dim));
  const yIn = asFloat32Values(r0.y);
  const ref = runStack(reference, fam, s, d, yIn);
  const got = runStack(cpu, fam, s, d, yIn);
  expect(ref.bad).toEqual([0, 0, 0]);
  expect(got.bad).toEqual([0, 0, 0]);
  const growth = s.layers * Math.sqrt(s.dim);
  const values = (a: Float64Array) => ({ atol: 2e-7 * growth * Math.max(maxAbs(a), 1), rtol: 0 });
  const grads = (a: Float64Array) => ({ atol: 4e-6 * growth * Math.max(maxAbs(a), 1), rtol: 0 });
  expectClose(got.y, ref.y, values(ref.y), 'y');
  const logDets = (a: Float64Array) => ({ atol: 2e-7 * s.layers * s.dim * Math.max(maxAbs(a), 1), rtol: 0 });
  expectClose(got.logDet, ref.logDet, logDets(ref.logDet), 'logDet');
  expectClose(got.layerLogDet, ref.layerLogDet, logDets(ref.layerLogDet), 'layerLogDet');
  expectClose(got.logDetSummed, ref.logDet, logDets(ref.logDet), 'logDet without per-layer log-dets');
  expectClose(got.stash, ref.stash, values(ref.stash), 'stash');
  expectClose(got.dx, ref.dx, grads(ref.dx), 'dx');
  expectClose(got.dParams, ref.dParams, grads(ref.dParams), 'dParams');
  expectClose(got.invX, ref.invX, { atol: 1e-6 * maxAbs(ref.invX), rtol: 0 }, 'inverse x');
  expectClose(got.invLogDet, ref.invLogDet, { atol: 1e-6 * Math.max(maxAbs(ref.invLogDet), 1), rtol: 0 }, 'inverse logDet');
}

/**
 * Reference backward against central finite differences of its forward, in
 * float64, for L = Σ y·wy + Σ logDet·wl. Step h = 1e-6: truncation error
 * ~h²·|L'''| ≈ 1e-12 and rounding ~eps64·|L|/h ≈ 1e-10, so 1e-7 absolute plus
 * 1e-6 relative leaves a wide margin while any wrong term (O(1)) fails.
 */
export function gradientCheck(fam: FamilyUnderTest, reference: Backend, s: Shape, seed: number): void {
  const k = fam.kernels(reference);
  const d = stackData(fam, s, seed);
  const { batch, dim, layers, amortized } = s;
  const x = Float64Array.from(d.x);
  const params = Float64Array.from(d.params);
  const y = new Float64Array(batch * dim);
  const logDet = new Float64Array(batch);
  const stash = new Float64Array(batch * layers);
  const loss = () => {
    k.forward(x, params, y, logDet, null, stash, batch, dim, layers, amortized);
    let l = 0;
    for (let i = 0; i < y.length; i++) l += y[i] * d.dy[i];
    for (let i = 0; i < batch; i++) l += logDet[i] * d.dLogDet[i];
    return l;
  };
  loss();
  const dx = new Float64Array(batch * dim);
  const dParams = new Float64Array(params.length);
  k.backward(
    fam.saved === 'x' ? Float64Array.from(x) : Float64Array.from(y),
    Float64Array.from(stash),
    params,
    d.dy,
    d.dLogDet,
    dx,
    dParams,
    batch,
    dim,
    layers,
    amortized,
  );
  const numeric = (target: Float64Array) => {
    const g = new Float64Array(target.length);
    for (let i = 0; i < target.length; i++) {
      const v = target[i];
      target[i] = v + 1e-6;
      const up = loss();
      target[i] = v - 1e-6;
      const down = loss();
      target[i] = v;
      g[i] = (up - down) / 2e-6;
    }
    return g;
  };
  const tol = { atol: 1e-7, rtol: 1e-6 };
  expectClose(dx, numeric(x), tol, 'dx');
  expectClose(dParams, numeric(params), tol, 'dParams');
}

/** log|det| of a small square matrix by Gaussian elimination with partial pivoting. */
export function logAbsDet(a: Float64Array, n: number): number {
  const m = Float64Array.from(a);
  let s = 0;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r * n + c]) > Math.abs(m[p * n + c])) p = r;
    if (m[p * n + c] === 0) return -Infinity;
    if (p !== c) for (let k = 0; k < n; k++) [m[c * n + k], m[p * n + k]] = [m[p * n + k], m[c * n + k]];
    s += Math.log(Math.abs(m[c * n + c]));
    for (let r = c + 1; r < n; r++) {
      const f = m[r * n + c] / m[c * n + c];
      for (let k = c; k < n; k++) m[r * n + k] -= f * m[c * n + k];
    }
  }
  return s;
}

/**
 * Reference log-det against log|det| of the Jacobian by central differences
 * (h = 1e-6: entries to ~1e-10, so log|det| to ~1e-8 for these well-scaled
 * maps; bound 1e-6). Also checks that the per-layer log-dets sum to it.
 */
export function jacobianCheck(fam: FamilyUnderTest, reference: Backend, s: Shape, seed: number): void {
  const k = fam.kernels(reference);
  const d = stackData(fam, s, seed);
  const { batch, dim, layers, amortized } = s;
  const run = (x: Float64Array) => {
    const y = new Float64Array(batch * dim);
    const logDet = new Float64Array(batch);
    const perLayer = new Float64Array(batch * layers);
    k.forward(x, d.params, y, logDet, perLayer, new Float64Array(batch * layers), batch, dim, layers, amortized);
    return { y, logDet, perLayer };
  };
  const base = run(d.x);
  const h = 1e-6;
  for (let r = 0; r < batch; r++) {
    const jac = new Float64Array(dim * dim);
    for (let j = 0; j < dim; j++) {
      const up = Float64Array.from(d.x);
      const down = Float64Array.from(d.x);
      up[r * dim + j] += h;
      down[r * dim + j] -= h;
      const yu = run(up).y;
      const yd = run(down).y;
      for (let i = 0; i < dim; i++) jac[i * dim + j] = (yu[r * dim + i] - yd[r * dim + i]) / (2 * h);
    }
    expect(Math.abs(logAbsDet(jac, dim) - base.logDet[r]), `row ${r}`).toBeLessThan(1e-6);
    let sum = 0;
    for (let l = 0; l < layers; l++) sum += base.perLayer[r * layers + l];
    expect(Math.abs(sum - base.logDet[r])).toBeLessThan(1e-12 * layers * (1 + Math.abs(base.logDet[r])));
  }
}

/**
 * inverse(forward(x)) ≈ x and inverse log-det = −forward log-det on one
 * backend. Reference: float64 throughout, 1e-9. cpu: the forward rounds to
 * float32 at every layer (about K·√D float32 epsilons, as in crossCheck) and
 * the inverse maps those roundings back to x multiplied by its condition.
 * In 1-D that factor is exactly 1/f'(x) = e^(−log-det); for these random,
 * near-isotropic layers e^|log-det| of the row bounds it well, so row r gets
 * 1e-6·K·√D·(1 + |x|)·e^|logDet_r| (measured errors stay under 5% of it).
 */
export function roundTripCheck(fam: FamilyUnderTest, backend: Backend, s: Shape, seed: number): void {
  const k = fam.kernels(backend);
  const d = stackData(fam, s, seed);
  const { batch, dim, layers, amortized } = s;
  const x = backend.from(d.x);
  const params = backend.from(d.params);
  const y = backend.alloc(batch * dim);
  const logDet = backend.alloc(batch);
  expect(k.forward(x, params, y, logDet, null, backend.alloc(batch * layers), batch, dim, layers, amortized)).toBe(0);
  const back = backend.alloc(batch * dim);
  const invLogDet = backend.alloc(batch);
  expect(k.inverse(y, params, back, invLogDet, batch, dim, layers, amortized)).toBe(0);
  for (let r = 0; r < batch; r++) {
    const tol = backend.dtype === 'float64' ? 1e-9 : 1e-6 * layers * Math.sqrt(dim) * Math.exp(Math.abs(logDet[r]));
    const rows = (a: ArrayLike<number>) => Array.from(a).slice(r * dim, (r + 1) * dim);
    expectClose(rows(back), rows(d.x), { atol: tol, rtol: tol }, `x row ${r}`);
    expect(Math.abs(invLogDet[r] + logDet[r]), `logDet row ${r}`).toBeLessThanOrEqual(tol * (1 + Math.abs(logDet[r])));
  }
}

/**
 * Runs `fn` (forward, backward or inverse on extreme values): it must either
 * return only finite values or throw a FlowVaeError with one of `codes`.
 */
export function expectFiniteOrCodedError(fn: () => FloatArray[], codes: string[]): 'finite' | string {
  let outputs: FloatArray[];
  try {
    outputs = fn();
  } catch (e) {
    expect((e as { name?: string }).name).toBe('FlowVaeError');
    expect(codes).toContain((e as { code?: string }).code);
    return (e as { code: string }).code;
  }
  for (const a of outputs) expect(Array.from(a).every(Number.isFinite), 'all outputs finite').toBe(true);
  return 'finite';
}

/** Thrown value of `fn`, for pinning kind, code and message. */
export function thrown(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected a throw');
}
