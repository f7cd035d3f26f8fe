/**
 * Autoregressive family: the kernels (mask, IAF gate, MAF affine) against
 * their definitions, finite differences and each other across backends; MADE's
 * autoregressive property from its Jacobian; IAF/MAF modules (round trips,
 * log-det vs the numerical Jacobian, gradients, cpu vs reference); options.
 */
import { describe, expect, it } from 'vitest';
import { backendByName } from '../src/backend';
import type { Backend } from '../src/backend/backend';
import { referenceAutoregressive as ref } from '../src/backend/reference/autoregressive';
import type { FloatArray } from '../src/backend/types';
import { FLOW_FAMILIES, IAFFlow, MAFFlow } from '../src/flows';
import type { AutoregressiveFlow } from '../src/flows/autoregressive';
import { MADE, inputDegrees, type MadeOrdering } from '../src/nn/made';
import { VAE } from '../src/vae/vae';
import { asFloat32Values, dot, expectClose, hasCpu, numericalGradient, randomArray, runCappedSimd } from './helpers';
import { MASKED_SIZES, compareMaskedDense, maskedCaseDegrees } from './masked-dense-cases';

const reference = backendByName('reference');
const cpu = hasCpu() ? backendByName('cpu') : null;

// Awkward sizes: batch 1, dim 1, sizes off every SIMD width, rows larger than one task grain.
const SHAPES: [number, number][] = [
  [1, 1],
  [1, 7],
  [3, 2],
  [5, 17],
  [17, 40],
  [300, 33],
];

/** ms with s/α spread over [lo, hi] so gates saturate in both directions at the ends. */
function randomMs(batch: number, dim: number, seed: number, lo = -6, hi = 6): Float64Array {
  const ms = randomArray(2 * batch * dim, seed, -2, 2);
  const s = randomArray(batch * dim, seed + 100, lo, hi);
  for (let r = 0; r < batch; r++) for (let i = 0; i < dim; i++) ms[(2 * r + 1) * dim + i] = s[r * dim + i];
  return ms;
}

const sigmoid = (s: number) => 1 / (1 + Math.exp(-s));

describe('autoregressive kernels: reference definitions', () => {
  it('iafForward at s = 0 halves z + m and gives log|det| = −D log 2', () => {
    const z = Float64Array.from([1, -2, 3, 0.5, 0.25, -1]);
    const ms = Float64Array.from([3, 4, 5, 0, 0, 0, -1, 0, 1, 0, 0, 0]);
    const y = new Float64Array(6);
    const ld = new Float64Array(2);
    ref.iafForward(z, ms, y, ld, 2, 3);
    expect(Array.from(y)).toEqual([2, 1, 4, -0.25, 0.125, 0]);
    expect(ld[0]).toBeCloseTo(-3 * Math.LN2, 14);
    expect(ld[1]).toBeCloseTo(-3 * Math.LN2, 14);
  });

  it('iafForward matches σ z + (1 − σ) m and Σ log σ, stably at saturated gates', () => {
    const ms = Float64Array.from([0.5, -1.5, 2, -60, 60, 0.3]);
    const z = Float64Array.from([2, -1, 0.7]);
    const y = new Float64Array(3);
    const ld = new Float64Array(1);
    ref.iafForward(z, ms, y, ld, 1, 3);
    for (let i = 0; i < 3; i++) {
      const g = sigmoid(ms[3 + i]);
      expect(y[i]).toBeCloseTo(g * z[i] + (1 - g) * ms[i], 14);
    }
    // log σ(−60) = −60 − log(1 + e⁻⁶⁰) ≈ −60 exactly in float64; log σ(60) ≈ −e⁻⁶⁰; log σ(0.3) directly.
    expect(ld[0]).toBeCloseTo(-60 + Math.log(sigmoid(0.3)), 12);
  });

  it('mafForward matches (x − m) e^−α and −Σ α; the inverses undo both steps', () => {
    const batch = 4;
    const dim = 5;
    const ms = randomMs(batch, dim, 3, -3, 3);
    const x = randomArray(batch * dim, 4, -2, 2);
    const u = new Float64Array(batch * dim);
    const ld = new Float64Array(batch);
    ref.mafForward(x, ms, u, ld, batch, dim);
    for (let r = 0; r < batch; r++) {
      let sum = 0;
      for (let i = 0; i < dim; i++) {
        const a = ms[(2 * r + 1) * dim + i];
        expect(u[r * dim + i]).toBeCloseTo((x[r * dim + i] - ms[2 * r * dim + i]) / Math.exp(a), 12);
        sum += a;
      }
      expect(ld[r]).toBeCloseTo(-sum, 12);
    }
    const back = new Float64Array(batch * dim);
    const ldInv = new Float64Array(batch);
    ref.mafInverse(u, ms, back, ldInv, batch, dim);
    expectClose(back, x, { atol: 1e-12, rtol: 1e-12 }, 'maf x');
    expectClose(
      ldInv,
      ld.map((v) => -v),
      { atol: 1e-12, rtol: 0 },
      'maf logDet',
    );
    const y = new Float64Array(batch * dim);
    ref.iafForward(x, ms, y, ld, batch, dim);
    ref.iafInverse(y, ms, back, ldInv, batch, dim);
    // σ ≥ sigmoid(−3) ≈ 0.047: dividing by it amplifies rounding ~20×.
    expectClose(back, x, { atol: 1e-12, rtol: 1e-12 }, 'iaf x');
    expectClose(
      ldInv,
      ld.map((v) => -v),
      { atol: 1e-12, rtol: 0 },
      'iaf logDet',
    );
  });

  it('maskWeights keeps out ≥ in (or out > in when strict), also in place', () => {
    const w = randomArray(12, 5, 0.5, 1.5); // no zeros, so a kept entry is never 0
    const outDeg = Uint32Array.from([0, 1, 2, 3]);
    const inDeg = Uint32Array.from([1, 3, 2]);
    for (const strict of [false, true]) {
      const out = new Float64Array(12);
      ref.maskWeights(w, outDeg, inDeg, strict, out, 4, 3);
      for (let o = 0; o < 4; o++) {
        for (let i = 0; i < 3; i++) {
          const keep = strict ? outDeg[o] > inDeg[i] : outDeg[o] >= inDeg[i];
          expect(out[o * 3 + i]).toBe(keep ? w[o * 3 + i] : 0);
        }
      }
      const inPlace = Float64Array.from(w);
      ref.maskWeights(inPlace, outDeg, inDeg, strict, inPlace, 4, 3);
      expect(Array.from(inPlace)).toEqual(Array.from(out));
    }
  });
});

describe('autoregressive kernels: reference gradients vs central finite differences (float64)', () => {
  const batch = 3;
  const dim = 4;
  for (const kind of ['iaf', 'maf'] as const) {
    it(`${kind}Backward`, () => {
      const x = randomArray(batch * dim, 1, -2, 2);
      const ms = randomMs(batch, dim, 2, -3, 3);
      const wy = randomArray(batch * dim, 3);
      const wl = randomArray(batch, 4);
      const y = new Float64Array(batch * dim);
      const ld = new Float64Array(batch);
      const fwd = kind === 'iaf' ? ref.iafForward : ref.mafForward;
      const bwd = kind === 'iaf' ? ref.iafBackward : ref.mafBackward;
      const loss = () => {
        fwd(x, ms, y, ld, batch, dim);
        return dot(y, wy) + dot(ld, wl);
      };
      const dx = new Float64Array(batch * dim);
      const dms = new Float64Array(2 * batch * dim);
      bwd(x, ms, wy, wl, dx, dms, batch, dim);
      // h = 1e-6 on functions with O(1) second derivatives: truncation ~1e-12, rounding ~1e-10.
      const tol = { atol: 1e-8, rtol: 1e-7 };
      expectClose(dx, numericalGradient(loss, x), tol, 'dx');
      expectClose(dms, numericalGradient(loss, ms), tol, 'dms');
    });
  }
});

describe.skipIf(!cpu)('autoregressive kernels: cpu vs reference', () => {
  // Elementwise float32 work (exp, log1p, one division) is accurate to a few
  // ulp (~3e-7 relative); a log-det sums D terms (|term| ≤ ~6) accumulated in
  // double, so its error is ≤ D·6·3e-7 ≈ 1e-4 at D = 40 in the worst case,
  // ~sqrt(D)·… typically. Inputs are float32-rounded so both see the same values.
  const tol = { atol: 2e-5, rtol: 2e-5 };
  const ldTol = { atol: 1e-4, rtol: 1e-5 };
  it.each(SHAPES)('forward, backward and inverse at batch %i, dim %i', (batch, dim) => {
    const n = batch * dim;
    const x = asFloat32Values(randomArray(n, batch + dim, -2, 2));
    const ms = asFloat32Values(randomMs(batch, dim, 7 * dim + batch));
    const dy = asFloat32Values(randomArray(n, 11 + n));
    const dl = asFloat32Values(randomArray(batch, 13 + n));
    for (const kind of ['iaf', 'maf'] as const) {
      const run = (b: Backend) => {
        const k = b.autoregressive;
        const y = b.alloc(n);
        const ld = b.alloc(batch);
        const dx = b.alloc(n);
        const dms = b.alloc(2 * n);
        const inv = b.alloc(n);
        const ldInv = b.alloc(batch);
        const [fwd, bwd, invFn] = kind === 'iaf' ? [k.iafForward, k.iafBackward, k.iafInverse] : [k.mafForward, k.mafBackward, k.mafInverse];
        fwd(b.from(x), b.from(ms), y, ld, batch, dim);
        bwd(b.from(x), b.from(ms), b.from(dy), b.from(dl), dx, dms, batch, dim);
        invFn(b.from(x), b.from(ms), inv, ldInv, batch, dim);
        return { y, ld, dx, dms, inv, ldInv };
      };
      const r = run(reference);
      const c = run(cpu!);
      // MAF scales by e^{±α} with |α| ≤ 6 (≤ 403): compare relative to that size.
      const scaled = kind === 'maf' ? { atol: 2e-5 * 403, rtol: 2e-5 } : tol;
      expectClose(c.y, r.y, scaled, `${kind} y`);
      expectClose(c.ld, r.ld, ldTol, `${kind} logDet`);
      expectClose(c.dx, r.dx, scaled, `${kind} dx`);
      expectClose(c.dms, r.dms, scaled, `${kind} dms`);
      // The IAF inverse divides by σ ≥ sigmoid(−6) ≈ 2.5e-3.
      expectClose(c.inv, r.inv, kind === 'iaf' ? { atol: 2e-5 * 403, rtol: 2e-5 } : scaled, `${kind} inverse`);
      expectClose(c.ldInv, r.ldInv, ldTol, `${kind} inverse logDet`);
    }
  });

  it.each([
    [1, 1],
    [7, 3],
    [40, 33],
    [320, 40],
  ])('maskWeights at %i × %i, strict and not, in place', (outDim, inDim) => {
    const w = asFloat32Values(randomArray(outDim * inDim, outDim));
    const outDeg = Uint32Array.from({ length: outDim }, (_, o) => o % (inDim + 1));
    const inDeg = inputDegrees(inDim, 'random', inDim);
    for (const strict of [false, true]) {
      const r = new Float64Array(outDim * inDim);
      ref.maskWeights(w, outDeg, inDeg, strict, r, outDim, inDim);
      const c = Float32Array.from(w);
      cpu!.autoregressive.maskWeights(c, outDeg, inDeg, strict, c, outDim, inDim);
      expect(Array.from(c)).toEqual(Array.from(r)); // a mask is exact
    }
  });
});

// ---------------------------------------------------------------------------
// Masked dense layers (MADE)

describe('masked dense layers: reference gradients equal central finite differences (float64)', () => {
  it.each([
    [3, 4, 'natural', false],
    [5, 3, 'reversed', true],
    [4, 5, 'random', true],
  ] as const)('%i × %i, %s degrees, strict %s', (outDim, inDim, kind, strict) => {
    const batch = 3;
    const { outDeg, inDeg } = maskedCaseDegrees(outDim, inDim, kind, 7);
    const x = randomArray(batch * inDim, 1);
    const weight = randomArray(outDim * inDim, 2);
    const bias = randomArray(outDim, 3);
    const wy = randomArray(batch * outDim, 4);
    const masked = new Float64Array(outDim * inDim);
    const y = new Float64Array(batch * outDim);
    const loss = () => {
      ref.maskedDenseForward(x, weight, bias, outDeg, inDeg, strict, masked, y, batch, inDim, outDim);
      return dot(y, wy);
    };
    loss();
    const dx = new Float64Array(batch * inDim);
    const dW = new Float64Array(outDim * inDim);
    const db = new Float64Array(outDim);
    ref.maskedDenseBackward(x, masked, wy, outDeg, inDeg, strict, dx, dW, db, batch, inDim, outDim, false);
    const tol = { atol: 1e-7, rtol: 1e-7 };
    expectClose(dx, numericalGradient(loss, x), tol, 'dx');
    expectClose(dW, numericalGradient(loss, weight), tol, 'dWeight'); // 0 where the mask cuts: y does not depend on them
    expectClose(db, numericalGradient(loss, bias), tol, 'dBias');
  });
});

describe.skipIf(!cpu)('masked dense layers: cpu equals the reference', () => {
  it.each(MASKED_SIZES)('batch %i, %i × %i: every degree order, strict and not, with and without bias/dx', (batch, outDim, inDim) => {
    expect(compareMaskedDense(cpu!, reference, batch, outDim, inDim)).toBeLessThanOrEqual(1);
  });

  // simd_level() is fixed per process, so each capped path runs in a child process.
  it.each(['scalar', 'avx2'])('FLOWVAE_SIMD=%s', (level) => {
    const report = runCappedSimd<{ simd: string; worst: number; cases: number }>('masked-dense.simd.ts', level);
    expect(report.cases).toBe(MASKED_SIZES.length);
    expect(report.worst).toBeLessThanOrEqual(1);
  });

  it('skipping the cut terms: a non-finite value behind a cut weight does not reach the output', () => {
    // Output 0 keeps input 0 only; input 1's weight is cut. The dense product would give 0 · ∞ = NaN.
    const x = Float32Array.from([1, Infinity]);
    const y = new Float32Array(1);
    cpu!.autoregressive.maskedDenseForward(
      x,
      Float32Array.from([2, 3]),
      null,
      Uint32Array.from([1]),
      Uint32Array.from([1, 2]),
      false,
      new Float32Array(2),
      y,
      1,
      2,
      1,
    );
    expect(y[0]).toBe(2);
  });
});

describe('autoregressive kernels: bad arguments', () => {
  const backendsHere: Backend[] = cpu ? [reference, cpu] : [reference];
  for (const b of backendsHere) {
    it(`are refused on ${b.name} with the argument named`, () => {
      const k = b.autoregressive;
      const kind = b.name === 'cpu' ? 'Float32Array' : 'Float64Array';
      const x = b.alloc(6);
      const ms = b.alloc(12);
      const ld = b.alloc(2);
      expect(() => k.iafForward(x, b.alloc(11), b.alloc(6), ld, 2, 3)).toThrow(`Expected ${kind} of length 12 for "ms" but received ${kind}(11)`);
      expect(() => k.iafForward(x, b.alloc(11), b.alloc(6), ld, 2, 3)).toThrow(RangeError);
      expect(() => k.mafForward(x, ms, b.alloc(6), ld, -1, 3)).toThrow('Expected non-negative integer for "batch" but received -1 (number)');
      expect(() => k.mafBackward(x, ms, x, ld, b.alloc(6), b.alloc(12), 2, 2.5)).toThrow('Expected non-negative integer for "dim" but received 2.5 (number)');
      // The first bad argument is the one named.
      expect(() => k.iafBackward(x, ms, b.alloc(5), b.alloc(1), b.alloc(6), b.alloc(12), 2, 3)).toThrow(/for "dy"/);
      expect(() => k.mafInverse(x, ms, b.alloc(6), b.alloc(3), 2, 3)).toThrow(`Expected ${kind} of length 2 for "logDet" but received ${kind}(3)`);
      expect(() => k.iafForward([1, 2] as never, ms, x, ld, 1, 2)).toThrow(TypeError);
      const w = b.alloc(6);
      expect(() => k.maskWeights(w, Int32Array.from([1, 2]) as never, new Uint32Array(3), false, w, 2, 3)).toThrow(
        'Expected Uint32Array for "outDegrees" but received Int32Array(2)',
      );
      expect(() => k.maskWeights(w, new Uint32Array(2), new Uint32Array(2), false, w, 2, 3)).toThrow(
        'Expected Uint32Array of length 3 for "inDegrees" but received Uint32Array(2)',
      );
      expect(() => k.maskWeights(w, new Uint32Array(2), new Uint32Array(3), 1 as never, w, 2, 3)).toThrow(
        'Expected boolean for "strict" but received 1 (number)',
      );
      // Masked dense layers: x [2, 3], weight [4, 3], y [2, 4].
      const od = new Uint32Array(4);
      const id = new Uint32Array(3);
      const [xm, wm, mw, ym] = [b.alloc(6), b.alloc(12), b.alloc(12), b.alloc(8)];
      expect(() => k.maskedDenseForward(xm, wm, b.alloc(3), od, id, false, mw, ym, 2, 3, 4)).toThrow(
        `Expected ${kind} of length 4 for "bias" but received ${kind}(3)`,
      );
      expect(() => k.maskedDenseForward(xm, wm, null, od, new Uint32Array(4), false, mw, ym, 2, 3, 4)).toThrow(
        'Expected Uint32Array of length 3 for "inDegrees" but received Uint32Array(4)',
      );
      expect(() => k.maskedDenseForward(xm, wm, null, od, id, false, wm, ym, 2, 3, 4)).toThrow(
        `Expected ${kind} not overlapping "weight" for "maskedWeight" but received ${kind}(12)`,
      );
      expect(() => k.maskedDenseBackward(xm, mw, ym, od, id, false, null, mw, null, 2, 3, 4, false)).toThrow(
        `Expected ${kind} not overlapping "maskedWeight" for "dWeight" but received ${kind}(12)`,
      );
      expect(() => k.maskedDenseBackward(xm, mw, ym, od, id, false, null, null, null, 2, 3, 4, 0 as never)).toThrow(
        'Expected boolean for "accumulateDx" but received 0 (number)',
      );
    });
  }

  it.skipIf(!cpu)('cpu refuses float64 arrays and outputs overlapping inputs', () => {
    const k = cpu!.autoregressive;
    const ms = new Float32Array(12);
    expect(() => k.iafForward(new Float64Array(6), ms, new Float32Array(6), new Float32Array(2), 2, 3)).toThrow(
      'Expected Float32Array for "z" but received Float64Array(6)',
    );
    // y as a view into ms would be read after being written.
    const big = new Float32Array(18);
    expect(() => k.iafForward(new Float32Array(6), big.subarray(0, 12), big.subarray(12), new Float32Array(2), 2, 3)).not.toThrow();
    expect(() => k.iafForward(new Float32Array(6), big.subarray(0, 12), big.subarray(6, 12), new Float32Array(2), 2, 3)).toThrow(
      'Expected Float32Array not overlapping "ms" for "y" but received Float32Array(6)',
    );
    const dms = new Float32Array(12);
    expect(() => k.mafBackward(new Float32Array(6), ms, new Float32Array(6), new Float32Array(2), new Float32Array(6), ms, 2, 3)).toThrow(
      /not overlapping "ms" for "dms"/,
    );
    expect(() => k.mafBackward(new Float32Array(6), ms, new Float32Array(6), new Float32Array(2), new Float32Array(6), dms, 2, 3)).not.toThrow();
  });
});

// -----------------------------------------------------------------------------
// MADE

/** Numerical Jacobian of MADE outputs w.r.t. inputs for row 0: jac[o][j]. */
function madeJacobian(made: MADE, x: Float64Array, context: Float64Array | null): number[][] {
  const D = made.dim;
  const jac: number[][] = Array.from({ length: made.outDim }, () => new Array<number>(D).fill(0));
  for (let j = 0; j < D; j++) {
    const up = Float64Array.from(x);
    const down = Float64Array.from(x);
    up[j] += 1e-4;
    down[j] -= 1e-4;
    const yu = Float64Array.from(made.forward(up, 1, context));
    const yd = made.forward(down, 1, context);
    for (let o = 0; o < made.outDim; o++) jac[o][j] = (yu[o] - yd[o]) / 2e-4;
  }
  return jac;
}

interface MadeCase {
  name: string;
  ordering: MadeOrdering;
  hidden: number[];
  contextDim: number;
  hiddenDegrees: 'random' | 'cyclic';
}

const MADE_CASES: MadeCase[] = [
  { name: 'natural, one hidden layer', ordering: 'natural', hidden: [24], contextDim: 0, hiddenDegrees: 'cyclic' },
  { name: 'reversed, two hidden layers, context', ordering: 'reversed', hidden: [30, 20], contextDim: 3, hiddenDegrees: 'cyclic' },
  { name: 'seeded random ordering, context', ordering: 'random', hidden: [40], contextDim: 2, hiddenDegrees: 'random' },
  { name: 'explicit ordering, random degrees, three layers', ordering: [3, 1, 6, 2, 5, 4], hidden: [18, 18, 18], contextDim: 0, hiddenDegrees: 'random' },
  { name: 'no hidden layer', ordering: 'random', hidden: [], contextDim: 2, hiddenDegrees: 'random' },
];

describe('MADE: the autoregressive property', () => {
  const D = 6;
  for (const c of MADE_CASES) {
    it(`output i depends only on inputs before i: ${c.name}`, () => {
      const made = new MADE(reference, { dim: D, hidden: c.hidden, contextDim: c.contextDim, ordering: c.ordering, hiddenDegrees: c.hiddenDegrees, seed: 3 });
      const deg = made.degrees;
      // The ordering is a permutation of 1…D (the test's own check, not the module's).
      expect(Array.from(deg).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6]);
      if (Array.isArray(c.ordering)) expect(Array.from(deg)).toEqual(c.ordering);
      if (c.ordering === 'natural') expect(Array.from(deg)).toEqual([1, 2, 3, 4, 5, 6]);
      if (c.ordering === 'reversed') expect(Array.from(deg)).toEqual([6, 5, 4, 3, 2, 1]);
      // Random-looking biases so no unit sits exactly at a kink of the activation.
      for (const p of made.parameters()) if (p.name.endsWith('bias')) p.value.set(randomArray(p.value.length, 9, -0.5, 0.5));
      const context = c.contextDim > 0 ? randomArray(c.contextDim, 4) : null;
      let allowedSeen = 0;
      let allowedTotal = 0;
      for (const seed of [1, 2]) {
        const x = randomArray(D, seed, -1.5, 1.5);
        const jac = madeJacobian(made, x, context);
        for (let o = 0; o < made.outDim; o++) {
          const i = o % D;
          for (let j = 0; j < D; j++) {
            if (deg[j] >= deg[i]) {
              expect(jac[o][j], `∂out${o}/∂x${j}`).toBe(0); // exactly: no path at all
            } else {
              allowedTotal++;
              if (Math.abs(jac[o][j]) > 1e-9) allowedSeen++;
            }
          }
        }
      }
      // The masks are not trivially zero: with cyclic degrees and wide layers every
      // permitted dependence is present; with random degrees most are.
      if (c.hidden.length > 0 && c.hiddenDegrees === 'cyclic') expect(allowedSeen).toBe(allowedTotal);
      else if (c.hidden.length > 0) expect(allowedSeen).toBeGreaterThan(0.8 * allowedTotal);
      else expect(allowedSeen).toBe(allowedTotal);
      // The first input in the ordering has constant outputs; the last sees all others.
      const first = deg.indexOf(1);
      const jac = madeJacobian(made, randomArray(D, 5), context);
      for (const o of [first, first + D]) expect(jac[o].every((v) => v === 0)).toBe(true);
    });
  }

  it('connectivity through the masks equals "degree(in) < degree(out)" (mask products)', () => {
    for (const c of MADE_CASES.filter((m) => m.hiddenDegrees === 'cyclic')) {
      const made = new MADE(reference, { dim: D, hidden: c.hidden, ordering: c.ordering, hiddenDegrees: 'cyclic', seed: 8 });
      // reach[u][j] = number of paths from input j to unit u, by multiplying the 0/1 masks.
      let reach: number[][] = Array.from({ length: D }, (_, j) => Array.from({ length: D }, (_, k) => (j === k ? 1 : 0)));
      for (const layer of made.layers) {
        const mask = layer.mask();
        reach = Array.from({ length: layer.outDim }, (_, o) =>
          Array.from({ length: D }, (_, j) => reach.reduce((s, row, u) => s + mask[o * layer.inDim + u] * row[j], 0)),
        );
      }
      for (let o = 0; o < made.outDim; o++) {
        for (let j = 0; j < D; j++) expect(reach[o][j] > 0, `${c.name}: out ${o} ← in ${j}`).toBe(made.degrees[j] < made.degrees[o % D]);
      }
    }
  });

  it('masked weights neither change the output nor receive gradient', () => {
    const made = new MADE(reference, { dim: 5, hidden: [15], contextDim: 2, seed: 4 });
    const x = randomArray(10, 1);
    const ctx = randomArray(4, 2);
    const before = Float64Array.from(made.forward(x, 2, ctx));
    for (const layer of made.layers) {
      const mask = layer.mask();
      for (let i = 0; i < mask.length; i++) if (mask[i] === 0) layer.weight.value[i] = 1e3 * (i + 1);
    }
    expect(Array.from(made.forward(x, 2, ctx))).toEqual(Array.from(before));
    for (const p of made.parameters()) p.grad.fill(7); // masked entries must end at exactly 0
    made.backward(randomArray(20, 3), null, null);
    for (const layer of made.layers) {
      const mask = layer.mask();
      for (let i = 0; i < mask.length; i++) if (mask[i] === 0) expect(layer.weight.grad[i]).toBe(0);
    }
  });

  it('gradients vs central finite differences (input, context, every parameter)', () => {
    const made = new MADE(reference, { dim: 4, hidden: [9, 7], contextDim: 3, ordering: 'random', activation: 'tanh', seed: 6 });
    const batch = 2;
    const x = randomArray(8, 1);
    const ctx = randomArray(6, 2);
    const w = randomArray(16, 3);
    const loss = () => dot(made.forward(x, batch, ctx), w);
    loss();
    for (const p of made.parameters()) p.grad.fill(0);
    const gx = new Float64Array(8).fill(0.5); // backward adds to what is there
    const gc = new Float64Array(6);
    made.backward(w, gx, gc);
    const tol = { atol: 1e-8, rtol: 1e-6 };
    expectClose(
      gx.map((v) => v - 0.5),
      numericalGradient(loss, x),
      tol,
      'x',
    );
    expectClose(gc, numericalGradient(loss, ctx), tol, 'context');
    for (const p of made.parameters()) expectClose(p.grad, numericalGradient(loss, p.value), tol, p.name);
  });

  it('names parameters like a PyTorch nn.Sequential with a context layer', () => {
    const made = new MADE(reference, { dim: 3, hidden: [8, 8], contextDim: 2, seed: 1 });
    expect(made.parameters().map((p) => `${p.name}:${p.shape.join('x')}`)).toEqual([
      '0.weight:8x3',
      '0.bias:8',
      '2.weight:8x8',
      '2.bias:8',
      '4.weight:6x8',
      '4.bias:6',
      'context.weight:8x2',
    ]);
  });

  it('seeded orderings and degrees are reproducible and differ between seeds', () => {
    expect(Array.from(inputDegrees(9, 'random', 5))).toEqual(Array.from(inputDegrees(9, 'random', 5)));
    expect(Array.from(inputDegrees(9, 'random', 5))).not.toEqual(Array.from(inputDegrees(9, 'random', 6)));
    const a = new MADE(reference, { dim: 5, hidden: [10], seed: 2 });
    const b = new MADE(reference, { dim: 5, hidden: [10], seed: 2 });
    expect(Array.from(a.layers[0].outDegrees)).toEqual(Array.from(b.layers[0].outDegrees));
  });

  it('validates its options', () => {
    expect(() => new MADE(reference, { dim: 0, hidden: [4], seed: 0 })).toThrow('Expected positive integer for "dim" but received 0 (number)');
    expect(() => new MADE(reference, { dim: 3, hidden: [4, -1], seed: 0 })).toThrow('Expected positive integer for "hidden[1]" but received -1 (number)');
    expect(() => new MADE(reference, { dim: 3, hidden: [4], ordering: [1, 1, 2], seed: 0 })).toThrow(
      'Expected permutation of 1…3 for "ordering[1]" but received 1 (number)',
    );
    expect(() => new MADE(reference, { dim: 3, hidden: [4], ordering: 'sideways' as never, seed: 0 })).toThrow(RangeError);
    const made = new MADE(reference, { dim: 3, hidden: [4], contextDim: 2, seed: 0 });
    expect(() => made.forward(new Float64Array(3), 1)).toThrow('Expected Float32Array or Float64Array for "context" but received undefined');
  });
});

// -----------------------------------------------------------------------------
// IAF and MAF modules

type Make = (backend: Backend) => AutoregressiveFlow;

const FLOWS: { name: string; make: Make }[] = [
  { name: 'IAF, K = 3, two hidden layers, context', make: (b) => new IAFFlow({ dim: 5, layers: 3, hidden: [12, 10], contextDim: 3, seed: 4, backend: b }) },
  { name: 'IAF, K = 2, unconditional', make: (b) => new IAFFlow({ dim: 4, layers: 2, seed: 5, backend: b }) },
  { name: 'MAF, K = 3, context', make: (b) => new MAFFlow({ dim: 5, layers: 3, hidden: [15], contextDim: 2, seed: 6, backend: b }) },
  { name: 'MAF, K = 1, dim 1', make: (b) => new MAFFlow({ dim: 1, layers: 1, hidden: [3], seed: 7, backend: b }) },
];

/** Bigger weights than the near-identity initialisation, so the tests see a far-from-trivial map. */
function perturbWeights(flow: AutoregressiveFlow, seed: number): void {
  flow.parameters().forEach((p, i) => {
    const noise = randomArray(p.value.length, seed + i, -0.4, 0.4);
    for (let j = 0; j < p.value.length; j++) p.value[j] += noise[j];
  });
}

function logAbsDet(a: Float64Array, n: number): number {
  const m = Float64Array.from(a);
  let s = 0;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r * n + c]) > Math.abs(m[p * n + c])) p = r;
    if (p !== c) for (let k = 0; k < n; k++) [m[c * n + k], m[p * n + k]] = [m[p * n + k], m[c * n + k]];
    s += Math.log(Math.abs(m[c * n + c]));
    for (let r = c + 1; r < n; r++) {
      const f = m[r * n + c] / m[c * n + c];
      for (let k = c; k < n; k++) m[r * n + k] -= f * m[c * n + k];
    }
  }
  return s;
}

describe.each(FLOWS)('autoregressive flow: $name', ({ make }) => {
  const batch = 3;

  function setup(b: Backend) {
    const flow = make(b);
    perturbWeights(flow, 20);
    const D = flow.dim;
    const x = b.from(asFloat32Values(randomArray(batch * D, 1, -1.5, 1.5)));
    const context = flow.contextDim > 0 ? b.from(asFloat32Values(randomArray(batch * flow.contextDim, 2))) : undefined;
    return { flow, D, x, context };
  }

  it('inverse(forward(x)) ≈ x and the log-dets are opposite (reference)', () => {
    const { flow, D, x, context } = setup(reference);
    const fwd = flow.forward(x, batch, { context });
    const y = Float64Array.from(fwd.y);
    const ld = Float64Array.from(fwd.logDet);
    expect(y.some((v, i) => Math.abs(v - x[i]) > 1e-2)).toBe(true); // not the identity
    const inv = flow.inverse(y, batch, { context });
    // D exact passes per step in float64: only rounding remains.
    expectClose(inv.x, x, { atol: 1e-10, rtol: 1e-10 }, 'x');
    expectClose(
      inv.logDet,
      ld.map((v) => -v),
      { atol: 1e-10, rtol: 1e-10 },
      'logDet',
    );
    expect(D).toBeGreaterThan(0);
  });

  it('log-det equals log|det| of the numerical Jacobian, which is triangular in the first step ordering', () => {
    const { flow, D, x, context } = setup(reference);
    const ld = Float64Array.from(flow.forward(x, batch, { context }).logDet);
    for (let r = 0; r < batch; r++) {
      const jac = new Float64Array(D * D);
      for (let j = 0; j < D; j++) {
        const up = Float64Array.from(x);
        const down = Float64Array.from(x);
        up[r * D + j] += 1e-6;
        down[r * D + j] -= 1e-6;
        const yu = Float64Array.from(flow.forward(up, batch, { context }).y);
        const yd = flow.forward(down, batch, { context }).y;
        for (let i = 0; i < D; i++) jac[i * D + j] = (yu[r * D + i] - yd[r * D + i]) / 2e-6;
      }
      // Central differences: entries to ~1e-9, log|det| to ~1e-8.
      expect(Math.abs(logAbsDet(jac, D) - ld[r])).toBeLessThan(1e-6);
      if (flow.layers === 1) {
        // One step, natural ordering: lower triangular.
        for (let i = 0; i < D; i++) for (let j = i + 1; j < D; j++) expect(Math.abs(jac[i * D + j])).toBeLessThan(1e-9);
      }
    }
  });

  it('gradients through the module vs central finite differences (reference)', () => {
    const { flow, D, x, context } = setup(reference);
    const wy = randomArray(batch * D, 7);
    const wl = randomArray(batch, 8);
    const loss = () => {
      const out = flow.forward(x, batch, { context });
      return dot(out.y, wy) + dot(out.logDet, wl);
    };
    loss();
    for (const p of flow.parameters()) p.grad.fill(0);
    const g = flow.backward(wy, wl);
    const gx = Float64Array.from(g.gradInput);
    const gc = g.gradContext ? Float64Array.from(g.gradContext) : null;
    expect(g.gradParams).toBeNull();
    expect(gc === null).toBe(flow.contextDim === 0);
    const grads = flow.parameters().map((p) => Float64Array.from(p.grad));
    // Smooth (ELU is C¹ with bounded second derivative): h = 1e-6 gives ~1e-9 error.
    const tol = { atol: 1e-7, rtol: 1e-6 };
    expectClose(gx, numericalGradient(loss, x), tol, 'input');
    if (gc) expectClose(gc, numericalGradient(loss, context!), tol, 'context');
    flow.parameters().forEach((p, i) => expectClose(grads[i], numericalGradient(loss, p.value), tol, p.name));
  });

  it.skipIf(!cpu)('cpu matches reference: forward, backward, inverse', () => {
    const r = setup(reference);
    const c = setup(cpu!);
    const wy = asFloat32Values(randomArray(batch * r.D, 7));
    const wl = asFloat32Values(randomArray(batch, 8));
    const results = [r, c].map(({ flow, x, context }) => {
      const b = flow.backend;
      const out = flow.forward(x, batch, { context });
      const y = Float64Array.from(out.y);
      const ld = Float64Array.from(out.logDet);
      for (const p of flow.parameters()) p.grad.fill(0);
      const g = flow.backward(b.from(wy), b.from(wl));
      const gx = Float64Array.from(g.gradInput);
      const gc = g.gradContext ? Float64Array.from(g.gradContext) : null;
      const gp = flow.parameters().map((p) => Float64Array.from(p.grad));
      const inv = flow.inverse(b.from(y), batch, { context });
      return { y, ld, gx, gc, gp, inv: Float64Array.from(inv.x), names: flow.parameters().map((p) => p.name) };
    });
    const [R, C] = results;
    expect(C.names).toEqual(R.names);
    // Same seeds give the same initial weights on both backends (up to float32 rounding);
    // products of width ≤ 15 in float32 agree to ~1e-6 relative, compounded over K ≤ 3
    // steps and a gradient chain: 1e-4 leaves ample room while still catching any
    // wrong index or mask (errors O(0.1)).
    const tol = { atol: 1e-4, rtol: 1e-4 };
    expectClose(C.y, R.y, tol, 'y');
    expectClose(C.ld, R.ld, tol, 'logDet');
    expectClose(C.gx, R.gx, tol, 'gradInput');
    if (R.gc) expectClose(C.gc!, R.gc, tol, 'gradContext');
    R.gp.forEach((g, i) => expectClose(C.gp[i], g, { atol: 2e-4, rtol: 1e-4 }, R.names[i]));
    // The float32 inverse of the float32 forward returns x to ~1e-5.
    expectClose(C.inv, r.x, { atol: 1e-4, rtol: 1e-4 }, 'inverse');
  });
});

describe('IAF/MAF: registry, VAE posterior and options', () => {
  it('registers iaf and maf as shared, non-amortizable families; iaf takes a context as wide as the latent', () => {
    expect(FLOW_FAMILIES.iaf.shareable).toBe(true);
    expect(FLOW_FAMILIES.iaf.amortizable).toBe(false);
    expect(FLOW_FAMILIES.maf.shareable).toBe(true);
    const iaf = FLOW_FAMILIES.iaf.create({ dim: 6, layers: 2, amortized: false, seed: 1, backend: reference, extra: {} });
    expect(iaf.contextDim).toBe(6);
    expect(iaf.kind).toBe('iaf');
    const iaf2 = FLOW_FAMILIES.iaf.create({ dim: 6, layers: 2, amortized: false, seed: 1, backend: reference, extra: { contextDim: 4, hidden: [10, 10] } });
    expect(iaf2.contextDim).toBe(4);
    expect(iaf2.parameters().map((p) => p.name)).toContain('1.context.weight');
    expect(FLOW_FAMILIES.maf.create({ dim: 6, layers: 2, amortized: false, seed: 1, backend: reference, extra: {} }).contextDim).toBe(0);
    expect(() => FLOW_FAMILIES.iaf.create({ dim: 6, layers: 2, amortized: false, seed: 1, backend: reference, extra: { widths: [3] } })).toThrow(
      /Unknown option "widths" in "posterior"/,
    );
  });

  it('an IAF posterior VAE feeds the encoder context to every step', () => {
    const vae = new VAE({
      inputDim: 6,
      latentDim: 3,
      encoder: { hidden: [8] },
      decoder: { hidden: [8] },
      posterior: { flow: 'iaf', layers: 2, hidden: [9] },
      seed: 1,
      backend: 'reference',
    });
    expect(vae.flow!.contextDim).toBe(3);
    expect(vae.contextHead!.outDim).toBe(3);
    const names = vae.parameters().map((p) => p.name);
    for (const n of ['encoder.context.weight', 'flow.0.0.weight', 'flow.0.2.bias', 'flow.1.context.weight']) expect(names).toContain(n);
    // The ELBO responds to the context head: the flow uses it.
    const x = Float64Array.from(randomArray(12, 3, 0, 1).map((v) => (v > 0.5 ? 1 : 0)));
    const before = vae.elbo(x).elbo;
    vae.contextHead!.weight.value.fill(0.5);
    expect(vae.elbo(x).elbo).not.toBeCloseTo(before, 6);
  });

  it('IAF starts near the identity with gates at sigmoid(gateBias)', () => {
    const flow = new IAFFlow({ dim: 4, layers: 1, seed: 2, backend: reference, gateBias: 3 });
    const x = randomArray(8, 1);
    const out = flow.forward(x, 2);
    // Output weights start at 0.1× PyTorch's scale, so s ≈ 3 ± 0.2 per dimension.
    for (let r = 0; r < 2; r++) expect(Math.abs(out.logDet[r] - 4 * Math.log(sigmoid(3)))).toBeLessThan(4 * 0.02);
  });

  it('validates its options and context', () => {
    expect(() => new IAFFlow({ dim: 3, layers: 0, backend: reference })).toThrow('Expected positive integer for "layers" but received 0 (number)');
    expect(() => new MAFFlow({ dim: 3, hidden: 5 as never, backend: reference })).toThrow(TypeError);
    expect(() => new IAFFlow({ dim: 3, gateBias: NaN, backend: reference })).toThrow('Expected finite number for "gateBias" but received NaN (number)');
    const flow = new IAFFlow({ dim: 3, contextDim: 2, backend: reference });
    expect(() => flow.forward(new Float64Array(6), 2, { context: new Float64Array(3) })).toThrow(
      'Expected Float64Array of length 4 for "context" but received Float64Array(3)',
    );
    expect(() => flow.backward(new Float64Array(6), new Float64Array(2))).toThrow(/backward called before forward/);
  });
});

// Keeps the unused-type import meaningful for readers: flows take FloatArray in and out.
export type { FloatArray };

describe('IAF/MAF inverse: finite answers, or the rows named', () => {
  // The inverse takes from each pass only the coordinates it solves exactly;
  // round trips stay exact with large MADE weights (uniform on ±1.5/√fan_in).
  function wideFlow(Flow: typeof IAFFlow | typeof MAFFlow, seed: number): AutoregressiveFlow {
    const flow = new Flow({ dim: 40, layers: 2, hidden: [80], seed, backend: 'reference' });
    for (const p of flow.parameters()) {
      const fanIn = p.shape.length === 2 ? p.shape[1] : 80;
      const u = randomArray(p.value.length, seed + p.value.length, -1.5 / Math.sqrt(fanIn), 1.5 / Math.sqrt(fanIn));
      p.value.set(u);
    }
    return flow;
  }

  for (const [name, Flow] of [
    ['IAF', IAFFlow],
    ['MAF', MAFFlow],
  ] as const) {
    it(`${name}: inverse(forward(z)) = z on every row of 64 at D = 40 with large MADE weights`, () => {
      const flow = wideFlow(Flow, 7);
      const z = randomArray(64 * 40, 3, -2, 2);
      const { y, logDet } = flow.forward(z, 64);
      const yCopy = Float64Array.from(y);
      const ldCopy = Float64Array.from(logDet);
      expect(yCopy.every(Number.isFinite)).toBe(true);
      const back = flow.inverse(yCopy, 64);
      expectClose(back.x, z, { atol: 1e-7, rtol: 1e-7 }, `${name} round trip`);
      expectClose(
        back.logDet,
        ldCopy.map((v) => -v),
        { atol: 1e-7, rtol: 1e-7 },
        `${name} logDet`,
      );
    });
  }

  // float64 answers to 1e-12; cpu works in float32 (epsilon 6e-8): 1e-5, and the
  // value 1000·x1 in the exponent carries x1's rounding into x2, 1000·6e-8 ≈ 1e-4.
  for (const [backend, rtol, x2tol] of [
    ['reference', 1e-12, 1e-12],
    ['cpu', 1e-5, 2e-4],
  ] as const) {
    it.skipIf(backend === 'cpu' && !hasCpu())(`${backend}: a finite solution is found where unsolved coordinates overflow on the way`, () => {
      // MAF, D = 2, one hidden unit h = elu(x1): α1 = −5, α2 = 1000 h. The
      // answer is x1 = y1 e^−5 ≈ 0.0067, x2 = y2 e^(1000 h(x1)) ≈ 0.5 e^6.7. The
      // first pass starts from x = y and computes x2 with α2 = 1000 elu(1):
      // ∞. On reference the masked weight of x2 times ∞ was NaN in every later
      // pass of the old inverse; cpu's masked products skip the masked zeros,
      // so there the old inverse happened to stay finite and the case checks
      // the answer.
      const flow = new MAFFlow({ dim: 2, layers: 1, hidden: [1], seed: 1, backend });
      const [hidden, out] = flow.mades[0].layers;
      hidden.weight.value.set([1, 0]);
      hidden.bias.value.set([0]);
      out.weight.value.set([0, 0, 0, 1000]);
      out.bias.value.set([0, 0, -5, 0]);
      const y0 = backend === 'cpu' ? Float32Array.from([1, 0.5]) : Float64Array.from([1, 0.5]);
      const { x } = flow.inverse(y0, 1);
      const x1 = Math.exp(-5);
      expectClose([x[0]], [x1], { atol: 0, rtol }, 'maf inverse x1');
      expectClose([x[1]], [0.5 * Math.exp(1000 * x1)], { atol: 0, rtol: x2tol }, 'maf inverse x2');
      const { y } = flow.forward(backend === 'cpu' ? Float32Array.from(x) : Float64Array.from(x), 1);
      expectClose(y, [1, 0.5], { atol: rtol, rtol }, 'round trip');
    });
  }

  it('a row with no finite solution is named (ERR_NOT_CONVERGED), never returned as NaN', () => {
    const flow = new IAFFlow({ dim: 3, layers: 1, hidden: [6], seed: 1, backend: 'reference' });
    // A gate saturated at σ = sigmoid(−800) = 0 in float64 for the first coordinate: x = (y − m)/σ overflows.
    const made = flow.mades[0];
    made.layers[made.layers.length - 1].bias.value[3] = -800;
    const y = Float64Array.from([0.5, 0.1, 0.2, 0.3, 0.1, 0.2]);
    expect(() => flow.inverse(y, 2)).toThrow(
      expect.objectContaining({
        code: 'ERR_NOT_CONVERGED',
        message: 'The iaf inverse has no finite solution for rows 0, 1 of "y" (a coordinate overflows: the input is outside what the flow maps to)',
      }),
    );
  });
});
