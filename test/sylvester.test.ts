import { describe, expect, it } from 'vitest';
import { backendByName } from '../src/backend';
import type { Backend } from '../src/backend/backend';
import { SYLVESTER_VARIANTS, sylvesterLayout, type SylvesterBjorckOptions, type SylvesterShape, type SylvesterVariant } from '../src/backend/kernels/sylvester';
import { referenceSylvester } from '../src/backend/reference/sylvester';
import type { FloatArray } from '../src/backend/types';
import { FlowVaeError } from '../src/errors';
import { FlowSequence } from '../src/flows/sequence';
import { SylvesterFlow } from '../src/flows/sylvester';
import { asFloat32Values, describeBackends, dot, expectClose, hasCpu, numericalGradient, randomArray, randomNormal, runCappedSimd } from './helpers';

const reference = backendByName('reference');

function shapeOf(variant: SylvesterVariant, dim: number, m: number, layers: number, householders = 3): SylvesterShape {
  return { variant, dim, m: variant === 'orthogonal' ? m : dim, layers, householders: variant === 'householder' ? householders : 0 };
}

/** Random parameters for `sets` sets: every value uniform in ±scale, raw Q Gaussian (Björck needs a full-rank start). */
function randomParams(shape: SylvesterShape, sets: number, seed: number, scale = 0.5): Float64Array {
  const lay = sylvesterLayout(shape);
  const p = randomArray(sets * lay.size, seed, -scale, scale);
  const raw = randomNormal(sets * lay.size, seed + 1);
  for (let s = 0; s < sets; s++) for (let i = lay.q; i < lay.size; i++) p[s * lay.size + i] = raw[s * lay.size + i];
  return p;
}

interface Outputs {
  residual: number;
  q: FloatArray;
  y: FloatArray;
  logDet: FloatArray;
  gradX: FloatArray;
  gradParams: FloatArray;
  gradQ: FloatArray;
}

/** orthogonalize → forward → backward → orthogonalizeBackward on one backend. */
function runKernels(
  be: Backend,
  shape: SylvesterShape,
  batch: number,
  amortized: boolean,
  inputs: { params: ArrayLike<number>; x: ArrayLike<number>; gy: ArrayLike<number>; gl: ArrayLike<number> },
  bjorck: SylvesterBjorckOptions,
): Outputs {
  const lay = sylvesterLayout(shape);
  const sets = amortized ? batch : 1;
  const params = be.from(inputs.params);
  const q = be.alloc(sets * shape.layers * lay.qPerLayer);
  const residual = be.sylvester.orthogonalize(shape, sets, params, q, bjorck);
  const y = be.alloc(batch * shape.dim);
  const logDet = be.alloc(batch);
  const saved = be.alloc(batch * lay.savedPerRow);
  be.sylvester.forward(shape, batch, amortized, be.from(inputs.x), params, q, y, logDet, saved);
  const gradX = be.alloc(batch * shape.dim);
  const gradParams = be.alloc(sets * lay.size);
  const gradQ = be.alloc(q.length);
  be.sylvester.backward(shape, batch, amortized, params, q, saved, be.from(inputs.gy), be.from(inputs.gl), gradX, gradParams, gradQ);
  be.sylvester.orthogonalizeBackward(shape, sets, params, gradQ, gradParams, bjorck);
  return { residual, q, y, logDet, gradX, gradParams, gradQ };
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** log|det A| of a square matrix by LU with partial pivoting (float64). */
function logAbsDet(a: Float64Array, n: number): number {
  const m = Float64Array.from(a);
  let ld = 0;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r * n + c]) > Math.abs(m[p * n + c])) p = r;
    if (p !== c) for (let j = 0; j < n; j++) [m[c * n + j], m[p * n + j]] = [m[p * n + j], m[c * n + j]];
    const piv = m[c * n + c];
    ld += Math.log(Math.abs(piv));
    for (let r = c + 1; r < n; r++) {
      const f = m[r * n + c] / piv;
      for (let j = c; j < n; j++) m[r * n + j] -= f * m[c * n + j];
    }
  }
  return ld;
}

const PRECISE: SylvesterBjorckOptions = { maxSteps: 100, tolerance: 1e-13 };

// ---------------------------------------------------------------------------

describe('sylvester reference: gradients equal central finite differences (float64)', () => {
  // A fixed number of Björck steps (tolerance never met) keeps the map smooth,
  // so the finite differences see exactly the function backward differentiates.
  const fixedSteps: SylvesterBjorckOptions = { maxSteps: 25, tolerance: 1e-300 };
  const cases: [SylvesterVariant, number, number, boolean][] = [
    ['orthogonal', 4, 3, false],
    ['orthogonal', 4, 3, true],
    ['orthogonal', 3, 3, true],
    ['householder', 4, 4, false],
    ['householder', 3, 3, true],
    ['triangular', 4, 4, false],
    ['triangular', 3, 3, true],
  ];
  it.each(cases)('%s D=%d M=%d amortized=%s', (variant, d, m, amortized) => {
    const shape = shapeOf(variant, d, m, 2);
    const batch = 2;
    const sets = amortized ? batch : 1;
    const lay = sylvesterLayout(shape);
    const params = randomParams(shape, sets, 11);
    const x = randomArray(batch * d, 12, -1.5, 1.5);
    const gy = randomArray(batch * d, 13);
    const gl = randomArray(batch, 14);
    const q = new Float64Array(sets * shape.layers * lay.qPerLayer);
    const y = new Float64Array(batch * d);
    const logDet = new Float64Array(batch);
    const loss = () => {
      referenceSylvester.orthogonalize(shape, sets, params, q, fixedSteps);
      referenceSylvester.forward(shape, batch, amortized, x, params, q, y, logDet, null);
      return dot(y, gy) + dot(logDet, gl);
    };
    const out = runKernels(reference, shape, batch, amortized, { params, x, gy, gl }, fixedSteps);
    // Central differences with h = 1e-6: truncation ~h²·f''' ≈ 1e-12, rounding ~1e-16/h = 1e-10.
    const tol = { atol: 1e-7, rtol: 1e-6 };
    expectClose(out.gradX, numericalGradient(loss, x), tol, 'gradX');
    expectClose(out.gradParams, numericalGradient(loss, params), tol, 'gradParams');
  });

  it('the unused diagonal of offDiagonal gets zero gradient, clamped diagonals get zero gradient', () => {
    const shape = shapeOf('triangular', 3, 3, 1);
    const lay = sylvesterLayout(shape);
    const params = randomParams(shape, 1, 21);
    params[lay.diagonal] = 9; // outside the clamp
    params[lay.diagonalTilde + 1] = -12;
    const out = runKernels(reference, shape, 2, false, { params, x: randomArray(6, 22), gy: randomArray(6, 23), gl: [0.7, -0.3] }, PRECISE);
    for (let i = 0; i < 3; i++) expect(out.gradParams[lay.offDiagonal + i * 4]).toBe(0);
    expect(out.gradParams[lay.diagonal]).toBe(0);
    expect(out.gradParams[lay.diagonalTilde + 1]).toBe(0);
    expect(out.gradParams[lay.diagonal + 1]).not.toBe(0);
  });
});

describe('sylvester reference: log-det equals log|det| of the numerical Jacobian', () => {
  const cases: [SylvesterVariant, number, number, boolean][] = [
    ['orthogonal', 5, 3, false],
    ['orthogonal', 4, 4, true],
    ['householder', 6, 6, false],
    ['householder', 3, 3, true],
    ['triangular', 8, 8, false],
    ['triangular', 2, 2, true],
  ];
  it.each(cases)('%s D=%d M=%d amortized=%s (K=3)', (variant, d, m, amortized) => {
    const shape = shapeOf(variant, d, m, 3);
    const batch = 2;
    const sets = amortized ? batch : 1;
    const lay = sylvesterLayout(shape);
    // Larger off-diagonal entries make the Jacobian far from the identity.
    const params = randomParams(shape, sets, 31, 1.5);
    const q = new Float64Array(sets * shape.layers * lay.qPerLayer);
    expect(referenceSylvester.orthogonalize(shape, sets, params, q, PRECISE)).toBeLessThanOrEqual(1e-13);
    const x = randomArray(batch * d, 32, -2, 2);
    const y = new Float64Array(batch * d);
    const logDet = new Float64Array(batch);
    referenceSylvester.forward(shape, batch, amortized, x, params, q, y, logDet, null);
    for (let row = 0; row < batch; row++) {
      const jac = new Float64Array(d * d);
      const h = 1e-6;
      for (let j = 0; j < d; j++) {
        const xp = Float64Array.from(x);
        const xm = Float64Array.from(x);
        xp[row * d + j] += h;
        xm[row * d + j] -= h;
        const yp = new Float64Array(batch * d);
        const ym = new Float64Array(batch * d);
        referenceSylvester.forward(shape, batch, amortized, xp, params, q, yp, new Float64Array(batch), null);
        referenceSylvester.forward(shape, batch, amortized, xm, params, q, ym, new Float64Array(batch), null);
        for (let i = 0; i < d; i++) jac[i * d + j] = (yp[row * d + i] - ym[row * d + i]) / (2 * h);
      }
      // Jacobian entries carry ~1e-10 error (central differences); log|det| of an
      // 8×8 matrix with condition ≲ 1e2 is then good to ~1e-7.
      expect(Math.abs(logAbsDet(jac, d) - logDet[row])).toBeLessThan(1e-6);
    }
  });
});

describe('sylvester reference: Björck orthonormality and Householder products', () => {
  it.each([
    [6, 6],
    [9, 4],
    [40, 40],
    [33, 7],
  ])('Björck on Gaussian D=%d M=%d reaches max|QᵀQ − I| ≤ tolerance', (d, m) => {
    const shape = shapeOf('orthogonal', d, m, 2);
    const lay = sylvesterLayout(shape);
    const params = randomParams(shape, 1, 41);
    const q = new Float64Array(2 * d * m);
    const tolerance = 1e-10;
    const residual = referenceSylvester.orthogonalize(shape, 1, params, q, { maxSteps: 100, tolerance });
    expect(residual).toBeLessThanOrEqual(tolerance);
    for (let k = 0; k < 2; k++) {
      let worst = 0;
      for (let i = 0; i < m; i++)
        for (let j = 0; j < m; j++) {
          let s = 0;
          for (let r = 0; r < d; r++) s += q[k * d * m + r * m + i] * q[k * d * m + r * m + j];
          worst = Math.max(worst, Math.abs(s - (i === j ? 1 : 0)));
        }
      expect(worst).toBeLessThanOrEqual(tolerance);
    }
    // Q spans the same columns as the raw matrix: Q = A P for the polar factor, so
    // A's columns are combinations of Q's (projection residual ~0).
    const a = params.subarray(lay.q, lay.q + d * m);
    for (let c = 0; c < m; c++) {
      const col = Array.from({ length: d }, (_, r) => a[r * m + c]);
      const coef = Array.from({ length: m }, (_, j) => col.reduce((s, v, r) => s + v * q[r * m + j], 0));
      const rest = col.map((v, r) => v - coef.reduce((s, cj, j) => s + cj * q[r * m + j], 0));
      expect(maxAbs(rest)).toBeLessThan(1e-9 * (1 + maxAbs(col)));
    }
  });

  it('with too few steps the residual exceeds the tolerance (non-convergence is visible)', () => {
    const shape = shapeOf('orthogonal', 8, 8, 1);
    const q = new Float64Array(64);
    const residual = referenceSylvester.orthogonalize(shape, 1, randomParams(shape, 1, 42), q, { maxSteps: 1, tolerance: 1e-6 });
    expect(residual).toBeGreaterThan(1e-6);
  });

  it('a zero raw matrix or Householder vector gives NaN (Q undefined)', () => {
    for (const variant of ['orthogonal', 'householder'] as const) {
      const shape = shapeOf(variant, 3, 2, 1, 2);
      const lay = sylvesterLayout(shape);
      const params = randomParams(shape, 1, 43);
      params.fill(0, lay.q, lay.q + (variant === 'orthogonal' ? 6 : 3));
      expect(referenceSylvester.orthogonalize(shape, 1, params, new Float64Array(lay.qPerLayer), PRECISE)).toBeNaN();
    }
  });

  it('the Householder product is orthogonal with determinant (−1)^n', () => {
    const d = 5;
    for (const n of [1, 2, 3, 8]) {
      const shape = shapeOf('householder', d, d, 1, n);
      const q = new Float64Array(d * d);
      referenceSylvester.orthogonalize(shape, 1, randomParams(shape, 1, 44 + n), q, PRECISE);
      const qtq = new Float64Array(d * d);
      for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) for (let r = 0; r < d; r++) qtq[i * d + j] += q[r * d + i] * q[r * d + j];
      for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) expect(Math.abs(qtq[i * d + j] - (i === j ? 1 : 0))).toBeLessThan(1e-14);
      expect(Math.abs(logAbsDet(q, d))).toBeLessThan(1e-13);
      // sign of det by elimination: count row swaps and negative pivots
      const m = Float64Array.from(q);
      let sign = 1;
      for (let c = 0; c < d; c++) {
        let p = c;
        for (let r = c + 1; r < d; r++) if (Math.abs(m[r * d + c]) > Math.abs(m[p * d + c])) p = r;
        if (p !== c) {
          sign = -sign;
          for (let j = 0; j < d; j++) [m[c * d + j], m[p * d + j]] = [m[p * d + j], m[c * d + j]];
        }
        if (m[c * d + c] < 0) sign = -sign;
        for (let r = c + 1; r < d; r++) {
          const f = m[r * d + c] / m[c * d + c];
          for (let j = c; j < d; j++) m[r * d + j] -= f * m[c * d + j];
        }
      }
      expect(sign).toBe(n % 2 === 0 ? 1 : -1);
    }
  });
});

// ---------------------------------------------------------------------------

describe.skipIf(!hasCpu())('sylvester: cpu kernels equal the reference', () => {
  const cpu = hasCpu() ? backendByName('cpu') : reference;
  const bjorck: SylvesterBjorckOptions = { maxSteps: 100, tolerance: 1e-5 };
  // [dim, m (orthogonal), layers, batch]: batch 1, dim 1 and 2, widths off every
  // SIMD width (7, 33), 32 layers, M < D, and batches spanning several 32-row
  // blocks and more than 16 reduction slots (600 rows) for shared gradients.
  const sizes: [number, number, number, number][] = [
    [1, 1, 1, 1],
    [2, 1, 2, 3],
    [7, 5, 3, 5],
    [33, 20, 1, 2],
    [3, 2, 32, 4],
    [5, 3, 2, 600],
  ];
  const cases = SYLVESTER_VARIANTS.flatMap((variant) =>
    [false, true].flatMap((amortized) => sizes.map(([d, m, k, b]) => [variant, amortized, d, variant === 'orthogonal' ? m : d, k, b] as const)),
  );
  it.each(cases)('%s amortized=%s D=%d M=%d K=%d B=%d', (variant, amortized, d, m, k, batch) => {
    const shape = shapeOf(variant, d, m, k);
    const sets = amortized ? batch : 1;
    // Inputs rounded to float32 so both backends see the same numbers.
    const inputs = {
      params: asFloat32Values(randomParams(shape, sets, 51)),
      x: asFloat32Values(randomArray(batch * d, 52, -2, 2)),
      gy: asFloat32Values(randomArray(batch * d, 53)),
      gl: asFloat32Values(randomArray(batch, 54)),
    };
    const want = runKernels(reference, shape, batch, amortized, inputs, bjorck);
    const got = runKernels(cpu, shape, batch, amortized, inputs, bjorck);
    expect(got.residual).toBeLessThanOrEqual(bjorck.tolerance);
    // float32 rounding: each of the K layers adds relative error ~ M·eps32
    // (6e-8) to sums of magnitude |z| + |QRh|; forward values agree to ~1e-6
    // relative to their size. Gradients sum up to 600 rows and, for the
    // orthogonal variant, pass through up to ~20 Björck steps, each amplifying
    // float32 error by ~2: 1e-4 of the largest gradient.
    const fwd = (a: ArrayLike<number>) => ({ atol: 2e-6 * (1 + maxAbs(a)) * Math.sqrt(k), rtol: 1e-5 });
    const bwd = (a: ArrayLike<number>) => ({ atol: (variant === 'orthogonal' ? 1e-4 : 2e-5) * (1 + maxAbs(a)), rtol: 1e-4 });
    expectClose(got.q, want.q, fwd(want.q), 'q');
    expectClose(got.y, want.y, fwd(want.y), 'y');
    expectClose(got.logDet, want.logDet, fwd(want.logDet), 'logDet');
    expectClose(got.gradX, want.gradX, bwd(want.gradX), 'gradX');
    expectClose(got.gradQ, want.gradQ, bwd(want.gradQ), 'gradQ');
    expectClose(got.gradParams, want.gradParams, bwd(want.gradParams), 'gradParams');
  });

  it.each([
    [40, 40],
    [33, 7],
    [7, 7],
  ])('Björck in float32 reaches max|QᵀQ − I| ≤ 1e-5 (D=%d M=%d, Gaussian raw matrices)', (d, m) => {
    const shape = shapeOf('orthogonal', d, m, 3);
    const sets = 4;
    const q = cpu.alloc(sets * 3 * d * m);
    const residual = cpu.sylvester.orthogonalize(shape, sets, cpu.from(randomParams(shape, sets, 57)), q, bjorck);
    expect(residual).toBeLessThanOrEqual(1e-5);
    let worst = 0;
    for (let k = 0; k < sets * 3; k++)
      for (let i = 0; i < m; i++)
        for (let j = 0; j < m; j++) {
          let s = 0;
          for (let r = 0; r < d; r++) s += q[k * d * m + r * m + i] * q[k * d * m + r * m + j];
          worst = Math.max(worst, Math.abs(s - (i === j ? 1 : 0)));
        }
    // Recomputed in float64 from the float32 Q: the kernel's own float32 check plus
    // the rounding of QᵀQ (≲ D·eps32 = 2e-6).
    expect(worst).toBeLessThanOrEqual(1e-5 + 3e-6);
  });

  it.each(SYLVESTER_VARIANTS)('%s: inverse agrees with the reference (and with x)', (variant) => {
    for (const amortized of [false, true]) {
      const shape = shapeOf(variant, 7, 5, 3);
      const batch = 6;
      const sets = amortized ? batch : 1;
      const lay = sylvesterLayout(shape);
      const params = asFloat32Values(randomParams(shape, sets, 61));
      const x = asFloat32Values(randomArray(batch * 7, 62, -2, 2));
      const results = [reference, cpu].map((be) => {
        const p = be.from(params);
        const q = be.alloc(sets * 3 * lay.qPerLayer);
        be.sylvester.orthogonalize(shape, sets, p, q, bjorck);
        const y = be.alloc(batch * 7);
        const ld = be.alloc(batch);
        be.sylvester.forward(shape, batch, amortized, be.from(x), p, q, y, ld, null);
        const xi = be.alloc(batch * 7);
        const ldi = be.alloc(batch);
        const failed = be.sylvester.inverse(shape, batch, amortized, y, p, q, xi, ldi, { maxIterations: 100, tolerance: 1e-6 });
        return { failed, ld, xi, ldi };
      });
      for (const r of results) {
        expect(r.failed).toBe(0);
        // f⁻¹(f(x)) = x up to the float32 rounding of y (1e-7 of |y| ≲ 4, amplified ≲ 3 by the inverse)
        expectClose(r.xi, x, { atol: 2e-6, rtol: 0 }, 'inverse x');
        expectClose(
          r.ldi,
          Array.from(r.ld, (v) => -v),
          { atol: 2e-6, rtol: 0 },
          'inverse logDet',
        );
      }
    }
  });
});

describe.skipIf(!hasCpu())('sylvester: scalar and AVX2 paths of the addon equal the reference', () => {
  // simd_level() is fixed per process, so each capped path runs in a child process.
  it.each(['scalar', 'avx2'])('FLOWVAE_SIMD=%s', (level) => {
    const report = runCappedSimd<{ simd: string; worst: number; cases: number }>('sylvester.simd.ts', level);
    expect(report.cases).toBeGreaterThan(10);
    // Same tolerances as the cross-check above, reported as the worst ratio error/bound.
    expect(report.worst).toBeLessThanOrEqual(1);
  });
});

// ---------------------------------------------------------------------------

describeBackends(['reference', 'cpu'], 'SylvesterFlow', (backend) => {
  const variants = SYLVESTER_VARIANTS;

  it('names its parameters with their shapes and starts near the identity map', () => {
    const flow = new SylvesterFlow({ dim: 5, layers: 3, variant: 'orthogonal', m: 4, backend });
    expect(flow.parameters().map((p) => [p.name, p.shape])).toEqual([
      ['offDiagonal', [3, 4, 4]],
      ['diagonal', [3, 4]],
      ['diagonalTilde', [3, 4]],
      ['bias', [3, 4]],
      ['q', [3, 5, 4]],
    ]);
    const hh = new SylvesterFlow({ dim: 5, layers: 2, variant: 'householder', backend });
    expect(hh.parameters().map((p) => [p.name, p.shape])).toEqual([
      ['offDiagonal', [2, 5, 5]],
      ['diagonal', [2, 5]],
      ['diagonalTilde', [2, 5]],
      ['bias', [2, 5]],
      ['householder', [2, 8, 5]],
    ]);
    expect(new SylvesterFlow({ dim: 5, variant: 'triangular', backend }).parameters().map((p) => p.name)).toEqual([
      'offDiagonal',
      'diagonal',
      'diagonalTilde',
      'bias',
    ]);
    const x = backend.from(randomArray(4 * 5, 71, -2, 2));
    const { y, logDet } = flow.forward(x, 4);
    // |R| ≤ 0.01 per entry: each of 3 layers moves a row by at most ~4·0.01·|Q| ≈ 0.04·√4.
    expect(maxAbs(Array.from(y, (v, i) => v - x[i]))).toBeLessThan(0.3);
    expect(maxAbs(logDet)).toBeLessThan(1e-2);
  });

  it('initialization is the same on every backend (float32 rounding of the reference values)', () => {
    for (const variant of variants) {
      const a = new SylvesterFlow({ dim: 6, layers: 2, variant, seed: 7, backend });
      const b = new SylvesterFlow({ dim: 6, layers: 2, variant, seed: 7, backend: reference });
      const c = new SylvesterFlow({ dim: 6, layers: 2, variant, seed: 8, backend: reference });
      a.parameters().forEach((p, i) => {
        expect(Array.from(p.value)).toEqual(Array.from(backend.from(b.parameters()[i].value)));
      });
      expect(Array.from(c.parameters()[0].value)).not.toEqual(Array.from(b.parameters()[0].value));
    }
  });

  it.each(variants)('%s: inverse(forward(z)) = z, shared and amortized', (variant) => {
    const tol = backend.dtype === 'float64' ? 1e-9 : 5e-5;
    for (const amortized of [false, true]) {
      const flow = new SylvesterFlow({
        dim: 6,
        layers: 4,
        variant,
        m: variant === 'orthogonal' ? 4 : undefined,
        amortized,
        seed: 3,
        backend,
        bjorckTolerance: backend.dtype === 'float64' ? 1e-12 : 1e-5,
      });
      const batch = 5;
      const params = amortized ? backend.from(randomParams(flow.shape, batch, 81)) : undefined;
      if (!amortized)
        flow
          .parameters()
          .forEach((p, i) =>
            p.value.set(backend.from(randomArray(p.value.length, 82 + i, -0.8, 0.8)).map((v, j) => (p.name === 'q' ? v + (j % 5 === 0 ? 1 : 0) : v))),
          );
      const z = backend.from(randomArray(batch * 6, 83, -3, 3));
      const fwd = flow.forward(z, batch, { params });
      const y = Float64Array.from(fwd.y);
      const ld = Float64Array.from(fwd.logDet);
      const inv = flow.inverse(backend.from(y), batch, { params });
      // float32: y carries 1e-7·|y| rounding, amplified by the inverse's conditioning (≲ 1e2 here).
      expectClose(inv.x, z, { atol: tol, rtol: 0 }, 'x');
      expectClose(
        inv.logDet,
        Array.from(ld, (v) => -v),
        { atol: tol, rtol: 0 },
        'logDet',
      );
    }
  });

  it('R_ii R̃_ii > −1 for extreme raw diagonals: finite outputs, log-det ≥ K·M·log(1 − tanh(8)²)', () => {
    for (const variant of variants) {
      const flow = new SylvesterFlow({ dim: 4, layers: 2, variant, amortized: true, backend });
      const lay = flow.layout;
      const batch = 4;
      const p = randomParams(flow.shape, batch, 91);
      const extremes = [1e4, -1e30, Infinity, -Infinity];
      for (let r = 0; r < batch; r++) {
        for (let i = 0; i < 2 * 4; i++) {
          p[r * lay.size + lay.diagonal + i] = extremes[r];
          p[r * lay.size + lay.diagonalTilde + i] = -extremes[r]; // R_ii R̃_ii = −tanh(8)²
        }
        p.fill(0, r * lay.size + lay.bias, r * lay.size + lay.bias + 8);
      }
      // Rows at z = 0 with b = 0 and zero off-diagonals put a = 0 where tanh' = 1: the worst case.
      for (let r = 0; r < batch; r++) p.fill(0, r * lay.size + lay.offDiagonal, r * lay.size + lay.diagonal);
      const params = backend.from(p);
      const x = backend.alloc(batch * 4);
      const { y, logDet } = flow.forward(x, batch, { params });
      const floor = 2 * 4 * Math.log(1 - Math.tanh(8) ** 2); // ≈ −116.8
      for (let r = 0; r < batch; r++) {
        expect(Number.isFinite(logDet[r])).toBe(true);
        expect(logDet[r]).toBeGreaterThanOrEqual(floor * (1 + 1e-3));
        expect(logDet[r]).toBeLessThan(floor / 2);
      }
      expect(firstBad(y)).toBe(-1);
      const g = flow.backward(backend.from(randomArray(batch * 4, 92)), backend.from([1, 1, 1, 1]));
      expect(firstBad(g.gradInput)).toBe(-1);
      expect(firstBad(g.gradParams!)).toBe(-1);
    }
  });

  it('huge finite inputs give finite outputs; non-finite inputs throw ERR_NAN naming the row', () => {
    const flow = new SylvesterFlow({ dim: 3, layers: 2, variant: 'householder', backend });
    const x = backend.from([1e30, -1e30, 3e37, 0, 1, 2]);
    const { y, logDet } = flow.forward(x, 2);
    expect(firstBad(y)).toBe(-1);
    expect(firstBad(logDet)).toBe(-1);
    const bad = backend.from([0, 0, 0, 1, NaN, 2]);
    expect(() => flow.forward(bad, 2)).toThrowError(expect.objectContaining({ name: 'FlowVaeError', code: 'ERR_NAN' }));
    expect(() => flow.forward(bad, 2)).toThrow('Non-finite value NaN in "x" at row 1 (column 1)');
    expect(() => flow.inverse(backend.from([Infinity, 0, 0]), 1)).toThrow('Non-finite value Infinity in "y" at row 0 (column 0)');
  });

  it('parameters that overflow the output throw ERR_NAN rather than returning garbage', () => {
    const flow = new SylvesterFlow({ dim: 3, layers: 1, variant: 'triangular', backend });
    flow.parameters()[0].value[1] = Infinity; // R_01
    const err = catchError(() => flow.forward(backend.from([0.5, 0.5, 0.5]), 1));
    expect(err).toBeInstanceOf(FlowVaeError);
    expect((err as FlowVaeError).code).toBe('ERR_NAN');
    expect((err as Error).message).toBe('The sylvester flow produced a non-finite output at row 0 (parameters too large?)');
  });

  it('a zero raw Q or non-finite amortized parameters throw ERR_NAN', () => {
    const flow = new SylvesterFlow({ dim: 3, variant: 'orthogonal', backend });
    flow.parameters()[4].value.fill(0);
    expect(() => flow.forward(backend.from([1, 2, 3]), 1)).toThrow('Q is undefined: some raw Q matrix is zero');
    const am = new SylvesterFlow({ dim: 3, variant: 'householder', householders: 2, amortized: true, backend });
    const p = backend.from(randomParams(am.shape, 2, 93));
    p[am.layout.size + am.layout.q + 1] = NaN;
    expect(() => am.forward(backend.from([1, 2, 3, 4, 5, 6]), 2, { params: p })).toThrow(
      `Non-finite value NaN in "params" at row 1 (column ${am.layout.q + 1})`,
    );
  });

  it('Björck non-convergence throws ERR_NOT_CONVERGED', () => {
    const flow = new SylvesterFlow({ dim: 6, variant: 'orthogonal', amortized: true, bjorckSteps: 2, bjorckTolerance: 1e-5, backend });
    const p = backend.from(randomParams(flow.shape, 1, 94));
    const err = catchError(() => flow.forward(backend.from(randomArray(6, 95)), 1, { params: p }));
    expect((err as FlowVaeError).code).toBe('ERR_NOT_CONVERGED');
    expect((err as Error).message).toMatch(
      /^Björck orthogonalization did not converge in 2 steps: max\|QᵀQ − I\| = \d\.\d\de[-+]\d+ > bjorckTolerance 0\.00001 \(raise bjorckSteps or bjorckTolerance\)$/,
    );
  });

  it('inverse non-convergence throws ERR_NOT_CONVERGED (and never returns garbage)', () => {
    const flow = new SylvesterFlow({ dim: 4, layers: 2, variant: 'orthogonal', amortized: true, inverseMaxIterations: 1, backend });
    const p = backend.from(randomParams(flow.shape, 2, 96, 1.5));
    const err = catchError(() => flow.inverse(backend.from(randomArray(8, 97, -2, 2)), 2, { params: p }));
    expect((err as FlowVaeError).code).toBe('ERR_NOT_CONVERGED');
    expect((err as Error).message).toBe('The sylvester inverse did not converge for 2 of 2 rows (first: row 0) within 1 iterations to tolerance 0.000001');
  });

  it('backward accumulates shared gradients and matches the kernels; amortized returns them', () => {
    const flow = new SylvesterFlow({ dim: 4, layers: 2, variant: 'householder', householders: 3, backend });
    const x = backend.from(randomArray(12, 101));
    const gy = backend.from(randomArray(12, 102));
    const gl = backend.from(randomArray(3, 103));
    flow.forward(x, 3);
    const g1 = Float64Array.from(flow.backward(gy, gl).gradInput);
    const once = flow.parameters().map((p) => Float64Array.from(p.grad));
    flow.forward(x, 3);
    flow.backward(gy, gl);
    flow.parameters().forEach((p, i) =>
      expectClose(
        p.grad,
        once[i].map((v) => 2 * v),
        { atol: 1e-6, rtol: 1e-6 },
        p.name,
      ),
    );
    const packed = new Float64Array(flow.layout.size);
    let off = 0;
    for (const p of flow.parameters()) {
      packed.set(p.value, off);
      off += p.value.length;
    }
    const want = runKernels(backend, flow.shape, 3, false, { params: packed, x, gy, gl }, { maxSteps: 100, tolerance: 1e-5 });
    expectClose(g1, want.gradX, { atol: 0, rtol: 0 }, 'gradInput');
    const am = new SylvesterFlow({ dim: 4, layers: 2, variant: 'householder', householders: 3, amortized: true, backend });
    const params = backend.from(Array.from({ length: 3 }, () => Array.from(packed)).flat());
    am.forward(x, 3, { params });
    const ga = am.backward(gy, gl);
    expect(ga.gradParams!.length).toBe(3 * am.amortizedSize);
    // Per-row gradients summed over rows equal the shared gradient.
    const summed = new Float64Array(am.amortizedSize);
    for (let r = 0; r < 3; r++) for (let i = 0; i < am.amortizedSize; i++) summed[i] += ga.gradParams![r * am.amortizedSize + i];
    expectClose(
      summed,
      once.flatMap((a) => Array.from(a)),
      { atol: 1e-5, rtol: 1e-5 },
      'summed amortized',
    );
    expect(am.parameters()).toEqual([]);
  });

  it('rows repeating the previous row’s raw Q share one orthogonalization, with the outputs of row-by-row calls', () => {
    for (const variant of ['orthogonal', 'householder'] as const) {
      const sets: number[] = [];
      const spy: Backend = Object.create(backend, {
        sylvester: {
          value: {
            ...backend.sylvester,
            orthogonalize: (...args: Parameters<Backend['sylvester']['orthogonalize']>) => {
              sets.push(args[1]);
              return backend.sylvester.orthogonalize(...args);
            },
          },
        },
      });
      const flow = new SylvesterFlow({ dim: 5, layers: 2, variant, householders: variant === 'householder' ? 3 : undefined, amortized: true, backend: spy });
      const size = flow.layout.size;
      const rows = [0, 1, 2].map((i) => randomParams(flow.shape, 1, 130 + i));
      // Row 2 repeats row 0's Q with another bias: it shares Q, not the output.
      const biased = Float64Array.from(rows[0]);
      biased[flow.layout.bias] += 0.25;
      // Row 5 differs from row 4 only by the sign of a zero in Q: bitwise different, so its own set.
      const signed = Float64Array.from(rows[2]);
      signed[flow.layout.q + 1] = 0;
      const negZero = Float64Array.from(signed);
      negZero[flow.layout.q + 1] = -0;
      const pattern = [rows[0], rows[0], biased, rows[1], signed, negZero, rows[0]];
      const batch = pattern.length;
      const params = backend.alloc(batch * size);
      pattern.forEach((p, r) => params.set(p, r * size));
      const x = backend.from(randomArray(batch * 5, 140));
      sets.length = 0;
      const { y, logDet } = flow.forward(x, batch, { params });
      expect(sets, variant).toEqual([5]); // runs start at rows 0, 3, 4, 5, 6
      const yAll = Float64Array.from(y);
      const ldAll = Float64Array.from(logDet);
      for (let r = 0; r < batch; r++) {
        const one = flow.forward(x.subarray(r * 5, (r + 1) * 5), 1, { params: params.subarray(r * size, (r + 1) * size) });
        const tol = backend.dtype === 'float64' ? 1e-12 : 1e-6;
        expectClose(yAll.subarray(r * 5, (r + 1) * 5), one.y, { atol: tol, rtol: tol }, `${variant} y row ${r}`);
        expectClose(ldAll.subarray(r, r + 1), one.logDet, { atol: tol, rtol: tol }, `${variant} logDet row ${r}`);
      }
      expect(yAll.subarray(0, 5)).not.toEqual(yAll.subarray(10, 15)); // the bias still applies per row
      // Distinct rows (training) go through one batched call, as before.
      sets.length = 0;
      flow.forward(x.subarray(0, 3 * 5), 3, { params: backend.from([...rows[0], ...rows[1], ...rows[2]]) });
      expect(sets).toEqual([3]);
    }
  });

  it('composes in a FlowSequence with amortized parameters laid out member by member', () => {
    const a = new SylvesterFlow({ dim: 3, layers: 2, variant: 'triangular', amortized: true, backend });
    const b = new SylvesterFlow({ dim: 3, layers: 1, variant: 'orthogonal', m: 2, amortized: true, backend });
    const seq = new FlowSequence([a, b]);
    expect(seq.amortizedSize).toBe(a.amortizedSize + b.amortizedSize);
    const params = backend.from([0, 1].flatMap((r) => [...randomParams(a.shape, 1, 110 + r), ...randomParams(b.shape, 1, 120 + r)]));
    const x = backend.from(randomArray(6, 111));
    const { y } = seq.forward(x, 2, { params });
    const back = seq.inverse(backend.from(Float64Array.from(y)), 2, { params });
    expectClose(back.x, x, { atol: backend.dtype === 'float64' ? 1e-9 : 5e-5, rtol: 0 }, 'sequence round trip');
  });

  it('rejects bad options with pinned messages', () => {
    const cases: [() => unknown, string, string][] = [
      [
        () => new SylvesterFlow({ dim: 3, variant: 'orthogonal', backend, foo: 1 } as never),
        'RangeError',
        'Unknown option "foo" in "options"; expected one of "dim", "layers", "variant", "m", "householders", "amortized", "seed", "backend", "bjorckSteps", "bjorckTolerance", "inverseTolerance", "inverseMaxIterations"',
      ],
      [() => new SylvesterFlow({ dim: 0, variant: 'orthogonal', backend }), 'RangeError', 'Expected positive integer for "dim" but received 0 (number)'],
      [
        () => new SylvesterFlow({ dim: '3', variant: 'orthogonal', backend } as never),
        'TypeError',
        'Expected positive integer for "dim" but received "3" (string)',
      ],
      [
        () => new SylvesterFlow({ dim: 3, variant: 'planar', backend } as never),
        'RangeError',
        'Expected one of "orthogonal", "householder", "triangular" for "variant" but received "planar" (string)',
      ],
      [
        () => new SylvesterFlow({ dim: 3, backend } as never),
        'TypeError',
        'Expected one of "orthogonal", "householder", "triangular" for "variant" but received undefined',
      ],
      [
        () => new SylvesterFlow({ dim: 3, variant: 'orthogonal', m: 4, backend }),
        'RangeError',
        'Expected integer between 1 and dim (3) for "m" but received 4 (number)',
      ],
      [
        () => new SylvesterFlow({ dim: 3, variant: 'householder', m: 2, backend }),
        'RangeError',
        'Expected dim (3) for the householder variant for "m" but received 2 (number)',
      ],
      [
        () => new SylvesterFlow({ dim: 3, variant: 'triangular', householders: 2, backend }),
        'RangeError',
        'Option "householders" applies to the householder variant only, not to "triangular"',
      ],
      [
        () => new SylvesterFlow({ dim: 3, variant: 'householder', householders: 0, backend }),
        'RangeError',
        'Expected positive integer for "householders" but received 0 (number)',
      ],
      [
        () => new SylvesterFlow({ dim: 3, layers: 1.5, variant: 'orthogonal', backend }),
        'RangeError',
        'Expected positive integer for "layers" but received 1.5 (number)',
      ],
      [
        () => new SylvesterFlow({ dim: 3, variant: 'orthogonal', seed: -1, backend }),
        'RangeError',
        'Expected integer in [0, 2^53) for "seed" but received -1 (number)',
      ],
      [
        () => new SylvesterFlow({ dim: 3, variant: 'orthogonal', bjorckTolerance: 0, backend }),
        'RangeError',
        'Expected number in (0, 1) for "bjorckTolerance" but received 0 (number)',
      ],
      [
        () => new SylvesterFlow({ dim: 3, variant: 'orthogonal', amortized: 1, backend } as never),
        'TypeError',
        'Expected boolean for "amortized" but received 1 (number)',
      ],
      [
        () => new SylvesterFlow({ dim: 3, variant: 'orthogonal', backend: {} } as never),
        'TypeError',
        'Expected backend name or Backend for "backend" but received object',
      ],
    ];
    for (const [fn, kind, message] of cases) {
      const err = catchError(fn);
      expect(err?.constructor.name, message).toBe(kind);
      expect((err as Error).message).toBe(message);
      expect((err as { code?: string }).code).toBe('ERR_ARG');
    }
  });

  it('rejects bad call arguments with pinned messages', () => {
    const flow = new SylvesterFlow({ dim: 3, layers: 2, variant: 'orthogonal', backend });
    const am = new SylvesterFlow({ dim: 3, variant: 'triangular', amortized: true, backend });
    const other = backend.dtype === 'float32' ? new Float64Array(6) : new Float32Array(6);
    const kindName = backend.dtype === 'float32' ? 'Float32Array' : 'Float64Array';
    const cases: [() => unknown, string, string, string][] = [
      [
        () => new SylvesterFlow({ dim: 3, variant: 'triangular', backend }).backward(backend.alloc(3), backend.alloc(1)),
        'RangeError',
        'ERR_ARG',
        'SylvesterFlow.backward called before forward',
      ],
      [() => flow.forward(backend.alloc(6), 0), 'RangeError', 'ERR_ARG', 'Expected positive integer for "batch" but received 0 (number)'],
      [() => flow.forward(backend.alloc(5), 2), 'RangeError', 'ERR_SHAPE', `Expected ${kindName} of length 6 for "x" but received ${kindName}(5)`],
      [() => flow.forward(other, 2), 'TypeError', 'ERR_ARG', `Expected ${kindName} for "x" but received ${other.constructor.name}(6)`],
      [
        () => flow.forward(backend.alloc(6), 2, { params: backend.alloc(3) }),
        'RangeError',
        'ERR_ARG',
        'The sylvester flow has shared parameters; "params" must not be given unless it is amortized',
      ],
      [() => am.forward(backend.alloc(6), 2), 'TypeError', 'ERR_ARG', `Expected ${kindName} for "params" but received undefined`],
      [
        () => am.forward(backend.alloc(6), 2, { params: backend.alloc(7) }),
        'RangeError',
        'ERR_SHAPE',
        `Expected ${kindName} of length ${2 * am.amortizedSize} for "params" but received ${kindName}(7)`,
      ],
    ];
    for (const [fn, kind, code, message] of cases) {
      const err = catchError(fn);
      expect(err?.constructor.name, message).toBe(kind);
      expect((err as Error).message).toBe(message);
      expect((err as { code?: string }).code).toBe(code);
    }
    flow.forward(backend.alloc(6), 2);
    const err = catchError(() => flow.backward(backend.alloc(6), backend.alloc(3)));
    expect((err as Error).message).toBe(`Expected ${kindName} of length 2 for "gradLogDet" but received ${kindName}(3)`);
  });
});

describeBackends(['reference', 'cpu'], 'sylvester kernels: argument checks', (backend) => {
  const shape = shapeOf('orthogonal', 3, 2, 2);
  const lay = sylvesterLayout(shape);
  const f = (n: number) => backend.alloc(n);
  const kindName = backend.dtype === 'float32' ? 'Float32Array' : 'Float64Array';
  const opts = { maxSteps: 10, tolerance: 1e-5 };
  const cases: [string, () => unknown, string, string, string][] = [
    [
      'variant',
      () => backend.sylvester.orthogonalize({ ...shape, variant: 'x' as never }, 1, f(lay.size), f(12), opts),
      'RangeError',
      'ERR_ARG',
      'Expected one of "orthogonal", "householder", "triangular" for "shape.variant" but received "x" (string)',
    ],
    [
      'dim',
      () => backend.sylvester.orthogonalize({ ...shape, dim: 0 }, 1, f(lay.size), f(12), opts),
      'RangeError',
      'ERR_ARG',
      'Expected positive integer for "shape.dim" but received 0 (number)',
    ],
    [
      'm > dim',
      () => backend.sylvester.orthogonalize({ ...shape, m: 4 }, 1, f(lay.size), f(12), opts),
      'RangeError',
      'ERR_ARG',
      'Expected integer between 1 and dim (3) for "shape.m" but received 4 (number)',
    ],
    [
      'householders',
      () => backend.sylvester.orthogonalize({ ...shape, variant: 'householder', m: 3 }, 1, f(lay.size), f(12), opts),
      'RangeError',
      'ERR_ARG',
      'Expected positive integer for the householder variant for "shape.householders" but received 0 (number)',
    ],
    [
      'unknown shape key',
      () => backend.sylvester.orthogonalize({ ...shape, extra: 1 } as never, 1, f(lay.size), f(12), opts),
      'RangeError',
      'ERR_ARG',
      'Unknown option "extra" in "shape"; expected one of "variant", "dim", "m", "layers", "householders"',
    ],
    [
      'params length',
      () => backend.sylvester.orthogonalize(shape, 1, f(lay.size - 1), f(12), opts),
      'RangeError',
      'ERR_SHAPE',
      `Expected ${kindName} of length ${lay.size} for "params" but received ${kindName}(${lay.size - 1})`,
    ],
    [
      'tolerance',
      () => backend.sylvester.orthogonalize(shape, 1, f(lay.size), f(12), { maxSteps: 10, tolerance: 0 }),
      'RangeError',
      'ERR_ARG',
      'Expected number in (0, Infinity) for "options.tolerance" but received 0 (number)',
    ],
    [
      'maxSteps',
      () => backend.sylvester.orthogonalize(shape, 1, f(lay.size), f(12), { maxSteps: -1, tolerance: 1 }),
      'RangeError',
      'ERR_ARG',
      'Expected integer between 0 and 10000 for "options.maxSteps" but received -1 (number)',
    ],
    // An iteration budget is capped: 2^32 steps on a row that never converges would run for hours.
    [
      'maxSteps cap',
      () => backend.sylvester.orthogonalize(shape, 1, f(lay.size), f(12), { maxSteps: 2 ** 32, tolerance: 1 }),
      'RangeError',
      'ERR_ARG',
      'Expected integer between 0 and 10000 for "options.maxSteps" but received 4294967296 (number)',
    ],
    [
      'batch',
      () => backend.sylvester.forward(shape, 0, false, f(0), f(lay.size), f(12), f(0), f(0), null),
      'RangeError',
      'ERR_ARG',
      'Expected positive integer for "batch" but received 0 (number)',
    ],
    [
      'saved length',
      () => backend.sylvester.forward(shape, 2, false, f(6), f(lay.size), f(12), f(6), f(2), f(3)),
      'RangeError',
      'ERR_SHAPE',
      `Expected ${kindName} of length ${2 * lay.savedPerRow} for "saved" but received ${kindName}(3)`,
    ],
    [
      'amortized params',
      () => backend.sylvester.forward(shape, 2, true, f(6), f(lay.size), f(24), f(6), f(2), null),
      'RangeError',
      'ERR_SHAPE',
      `Expected ${kindName} of length ${2 * lay.size} for "params" but received ${kindName}(${lay.size})`,
    ],
    [
      'gradQ length',
      () => backend.sylvester.backward(shape, 1, false, f(lay.size), f(12), f(lay.savedPerRow), f(3), f(1), f(3), f(lay.size), f(11)),
      'RangeError',
      'ERR_SHAPE',
      `Expected ${kindName} of length 12 for "gradQ" but received ${kindName}(11)`,
    ],
    [
      'maxIterations',
      () => backend.sylvester.inverse(shape, 1, false, f(3), f(lay.size), f(12), f(3), f(1), { maxIterations: 0, tolerance: 1e-6 }),
      'RangeError',
      'ERR_ARG',
      'Expected integer between 1 and 10000 for "options.maxIterations" but received 0 (number)',
    ],
    [
      'maxIterations cap',
      () => backend.sylvester.inverse(shape, 1, false, f(3), f(lay.size), f(12), f(3), f(1), { maxIterations: 10001, tolerance: 1e-6 }),
      'RangeError',
      'ERR_ARG',
      'Expected integer between 1 and 10000 for "options.maxIterations" but received 10001 (number)',
    ],
    [
      'x kind',
      () => backend.sylvester.inverse(shape, 1, false, [1, 2, 3] as never, f(lay.size), f(12), f(3), f(1), { maxIterations: 5, tolerance: 1e-6 }),
      'TypeError',
      'ERR_ARG',
      `Expected ${backend.dtype === 'float32' ? 'Float32Array' : 'Float32Array or Float64Array'} for "y" but received Array(3)`,
    ],
  ];
  it.each(cases)('%s', (_name, fn, kind, code, message) => {
    const err = catchError(fn);
    expect(err?.constructor.name, message).toBe(kind);
    expect((err as Error).message).toBe(message);
    expect((err as { code?: string }).code).toBe(code);
  });
});

function catchError(fn: () => unknown): Error | undefined {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  return undefined;
}

function firstBad(a: ArrayLike<number>): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return i;
  return -1;
}
