/**
 * Glow pieces: the glow kernels (per-column affine map, column permutations)
 * and the modules ActNorm, ElementwiseAffine, InvertibleLinearLU and
 * Permutation. cpu against reference at awkward sizes (forward, log-det,
 * inverse and every gradient); reference gradients against central finite
 * differences in float64 (through the LU parametrization too); log-det
 * against the numerical Jacobian; round trips; ActNorm's data-dependent
 * initialization; composition in a FlowSequence with planar and a
 * conditional IAF; checkpoints; bad arguments.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { backendByName } from '../src/backend';
import type { Backend } from '../src/backend/backend';
import { referenceGlow as ref } from '../src/backend/reference/glow';
import type { FloatArray } from '../src/backend/types';
import { ActNorm, ElementwiseAffine, FlowSequence, IAFFlow, InvertibleLinearLU, Permutation, PlanarFlow, type Flow } from '../src/flows';
import { luFactor, randomRotation } from '../src/flows/linear-lu';
import { loadSafetensors } from '../src/io/safetensors';
import { Adam } from '../src/train/adam';
import { VAE } from '../src/vae/vae';
import { logAbsDet } from './flow-stack-helpers';
import { asFloat32Values, dot, expectClose, hasCpu, numericalGradient, randomArray, seededRandom } from './helpers';

const reference = backendByName('reference');
const cpu = hasCpu() ? backendByName('cpu') : null;

/** float32 machine epsilon. */
const EPS32 = 2 ** -23;

// Awkward sizes: batch 1, dim 1 and 2, dims off the SIMD widths (4, 8, 16),
// and 4099 × 19 (more than one task grain: the threaded, chunked path).
const KERNEL_SHAPES: [number, number][] = [
  [1, 1],
  [1, 2],
  [3, 1],
  [2, 7],
  [5, 9],
  [17, 33],
  [64, 40],
  [4099, 19],
];

function randomPermutation(dim: number, seed: number): Uint32Array {
  const rand = seededRandom(seed);
  const p = new Uint32Array(dim).map((_, i) => i);
  for (let i = dim - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

describe('glow kernels: reference definitions', () => {
  it('affineForward / affineInverse / affineBackward on a hand-worked example', () => {
    // x = [[1, 2], [3, -1]], logScale = [ln 2, 0], shift = [1, −1].
    const x = Float64Array.from([1, 2, 3, -1]);
    const ls = Float64Array.from([Math.LN2, 0]);
    const shift = Float64Array.from([1, -1]);
    const y = new Float64Array(4);
    const ld = new Float64Array(2);
    ref.affineForward(x, ls, shift, y, ld, 2, 2);
    expectClose(y, [3, 1, 7, -2], { atol: 1e-15, rtol: 0 }, 'y');
    expectClose(ld, [Math.LN2, Math.LN2], { atol: 1e-15, rtol: 0 }, 'logDet');
    const back = new Float64Array(4);
    ref.affineInverse(y, ls, shift, back, ld, 2, 2);
    expectClose(back, x, { atol: 1e-15, rtol: 0 }, 'inverse');
    expectClose(ld, [-Math.LN2, -Math.LN2], { atol: 1e-15, rtol: 0 }, 'inverse logDet');
    // dy = [[1, 1], [2, 0]], dLogDet = [0.5, 0.25]; the parameter gradients start at [10, 20].
    const dx = new Float64Array(4);
    const dls = Float64Array.from([10, 20]);
    const dshift = Float64Array.from([10, 20]);
    ref.affineBackward(x, ls, Float64Array.from([1, 1, 2, 0]), Float64Array.from([0.5, 0.25]), dx, dls, dshift, 2, 2);
    expectClose(dx, [2, 1, 4, 0], { atol: 1e-15, rtol: 0 }, 'dx');
    // dls_0 = 2·(1·1 + 2·3) + 0.75 = 14.75; dls_1 = 1·(1·2 + 0·(−1)) + 0.75 = 2.75.
    expectClose(dls, [24.75, 22.75], { atol: 1e-14, rtol: 0 }, 'dLogScale');
    expectClose(dshift, [13, 21], { atol: 1e-14, rtol: 0 }, 'dShift');
  });

  it('permuteColumns gathers, unpermuteColumns scatters', () => {
    const x = Float64Array.from([10, 11, 12, 20, 21, 22]);
    const perm = Uint32Array.from([2, 0, 1]);
    const y = new Float64Array(6);
    ref.permuteColumns(x, perm, y, 2, 3);
    expect(Array.from(y)).toEqual([12, 10, 11, 22, 20, 21]);
    const back = new Float64Array(6);
    ref.unpermuteColumns(y, perm, back, 2, 3);
    expect(Array.from(back)).toEqual(Array.from(x));
  });
});

describe.skipIf(!cpu)('glow kernels: cpu vs reference', () => {
  const b = cpu!;
  describe.each(KERNEL_SHAPES)('batch %i, dim %i', (batch, dim) => {
    const n = batch * dim;
    const x = asFloat32Values(randomArray(n, 1, -2, 2));
    const ls = asFloat32Values(randomArray(dim, 2, -1.5, 1.5));
    const shift = asFloat32Values(randomArray(dim, 3, -1, 1));
    const dy = asFloat32Values(randomArray(n, 4));
    const dl = asFloat32Values(randomArray(batch, 5));
    const g0 = asFloat32Values(randomArray(dim, 6));

    it('affine forward, inverse, log-det', () => {
      const run = (k: Backend, fn: 'affineForward' | 'affineInverse') => {
        const out = k.alloc(n);
        const ld = k.alloc(batch);
        k.glow[fn](k.from(x), k.from(ls), k.from(shift), out, ld, batch, dim);
        return { out, ld };
      };
      for (const fn of ['affineForward', 'affineInverse'] as const) {
        const r = run(reference, fn);
        const c = run(b, fn);
        // e^{±ls} rounded once to float32, then one multiply and one add (or a
        // subtract and a multiply): a few ulps of |x|·e^{1.5} + |shift| ≤ 10.
        expectClose(c.out, r.out, { atol: 8 * EPS32 * 10, rtol: 0 }, `${fn} output`);
        // Σ of dim float32 values in double, rounded once.
        expectClose(c.ld, r.ld, { atol: EPS32 * 2 * dim, rtol: 0 }, `${fn} logDet`);
      }
    });

    it('affine backward: dx and accumulated parameter gradients', () => {
      const run = (k: Backend) => {
        const dx = k.alloc(n);
        const dls = k.from(g0);
        const dshift = k.from(g0);
        k.glow.affineBackward(k.from(x), k.from(ls), k.from(dy), k.from(dl), dx, dls, dshift, batch, dim);
        return { dx, dls, dshift };
      };
      const r = run(reference);
      const c = run(b);
      // dx = dy · e^{ls}: two roundings.
      expectClose(c.dx, r.dx, { atol: 0, rtol: 3 * EPS32 }, 'dx');
      // Products of float32 inputs are exact in double and summed in double
      // (only the order differs), so the float32 rounding of the result (|·|
      // ≲ 2·e^{1.5}·batch) dominates: 2 ulps of that bound.
      const bound = 2 * EPS32 * (1 + 10 * batch);
      expectClose(c.dls, r.dls, { atol: bound, rtol: 0 }, 'dLogScale');
      expectClose(c.dshift, r.dshift, { atol: bound, rtol: 0 }, 'dShift');
    });

    it('permutations give the same values exactly', () => {
      const perm = randomPermutation(dim, 7 + dim);
      for (const fn of ['permuteColumns', 'unpermuteColumns'] as const) {
        const r = reference.alloc(n);
        const c = b.alloc(n);
        reference.glow[fn](reference.from(x), perm, r, batch, dim);
        b.glow[fn](b.from(x), perm, c, batch, dim);
        expect(Array.from(c)).toEqual(Array.from(r));
      }
    });
  });
});

// -----------------------------------------------------------------------------
// Modules.

type PieceName = 'actnorm' | 'elementwise-affine' | 'linear-lu' | 'permutation-random' | 'permutation-reverse';
const PIECES: PieceName[] = ['actnorm', 'elementwise-affine', 'linear-lu', 'permutation-random', 'permutation-reverse'];

function makePiece(name: PieceName, backend: Backend, dim: number, seed = 3): Flow {
  switch (name) {
    case 'actnorm':
      return new ActNorm({ dim, backend });
    case 'elementwise-affine':
      return new ElementwiseAffine({ dim, backend });
    case 'linear-lu':
      return new InvertibleLinearLU({ dim, seed, backend });
    case 'permutation-random':
      return new Permutation({ dim, order: 'random', seed, backend });
    case 'permutation-reverse':
      return new Permutation({ dim, order: 'reverse', backend });
  }
}

/**
 * Moves the parameters away from their initial values (float32-representable,
 * so both backends get the same numbers): L and U entries on ±0.6, log|s| and
 * log-scales on ±0.7, shifts on ±1. ActNorm is marked initialized by running
 * its initialization on a separate batch first (then overwritten).
 */
function randomizeParameters(flow: Flow, seed: number): void {
  if (flow instanceof ActNorm) flow.initialize(flow.backend.from(randomArray(8 * flow.dim, seed + 50, -1, 1)), 8);
  flow.parameters().forEach((p, i) => {
    const range = p.name === 'shift' ? 1 : p.name === 'lower' || p.name === 'upper' ? 0.6 : 0.7;
    p.value.set(asFloat32Values(randomArray(p.value.length, seed + i, -range, range)));
  });
}

/** Copies parameter and buffer values from one module to an identical one on another backend. */
function copyState(from: Flow, to: Flow): void {
  const tp = to.parameters();
  from.parameters().forEach((p, i) => tp[i].value.set(p.value));
  const tb = to.buffers?.() ?? [];
  (from.buffers?.() ?? []).forEach((bf, i) => tb[i].value.set(bf.value));
}

describe.each(PIECES)('%s: reference gradients vs central finite differences (float64)', (name) => {
  it.each([
    [3, 4],
    [2, 1],
    [1, 5],
  ])('batch %i, dim %i: input and every parameter', (batch, dim) => {
    const flow = makePiece(name, reference, dim);
    randomizeParameters(flow, 11);
    const x = randomArray(batch * dim, 12, -1.5, 1.5);
    const wy = randomArray(batch * dim, 13);
    const wl = randomArray(batch, 14);
    const loss = () => {
      const out = flow.forward(x, batch);
      return dot(out.y, wy) + dot(out.logDet, wl);
    };
    loss();
    for (const p of flow.parameters()) p.grad.fill(0);
    const gx = Float64Array.from(flow.backward(wy, wl).gradInput);
    const grads = flow.parameters().map((p) => Float64Array.from(p.grad));
    // The loss is linear in y and log-det, smooth in every input: h = 1e-6 gives
    // truncation ~1e-12·|f'''| and rounding ~1e-10, far below 1e-7 + 1e-6·|g|.
    const tol = { atol: 1e-7, rtol: 1e-6 };
    expectClose(gx, numericalGradient(loss, x), tol, 'input');
    flow.parameters().forEach((p, i) => expectClose(grads[i], numericalGradient(loss, p.value), tol, p.name));
  });
});

describe('InvertibleLinearLU: the parametrization', () => {
  it('W = P L (U + diag(s)) and log|det| = Σ log|s| = log|det W|', () => {
    const D = 5;
    const flow = new InvertibleLinearLU({ dim: D, seed: 4, backend: reference });
    randomizeParameters(flow, 21);
    const w = flow.assembleWeight();
    const perm = flow.permutation;
    const sign = flow.sign;
    // An independent transcription: M = L V with L, V written out, then rows permuted.
    const lo = flow.lower.value;
    const up = flow.upper.value;
    const la = flow.logAbsDiag.value;
    for (let i = 0; i < D; i++) {
      for (let j = 0; j < D; j++) {
        let m = 0;
        const row = perm[i];
        for (let k = 0; k <= Math.min(row, j); k++) {
          const l = k === row ? 1 : lo[row * D + k];
          const v = k === j ? sign[k] * Math.exp(la[k]) : up[k * D + j];
          m += l * v;
        }
        expect(w[i * D + j]).toBeCloseTo(m, 13);
      }
    }
    const ld = flow.forward(randomArray(2 * D, 1), 2).logDet;
    let sum = 0;
    for (const v of la) sum += v;
    expect(ld[0]).toBeCloseTo(sum, 13);
    expect(logAbsDet(Float64Array.from(w), D)).toBeCloseTo(sum, 12);
  });

  it('W⁻¹ from the triangular solves is the inverse of W', () => {
    for (const D of [1, 2, 7, 20]) {
      const flow = new InvertibleLinearLU({ dim: D, seed: D, backend: reference });
      randomizeParameters(flow, D);
      const w = Float64Array.from(flow.assembleWeight());
      const winv = flow.inverseWeight();
      for (let i = 0; i < D; i++) {
        for (let j = 0; j < D; j++) {
          let s = 0;
          for (let k = 0; k < D; k++) s += w[i * D + k] * winv[k * D + j];
          // Well-conditioned W (unit L, |U| ≤ 0.6, |s| within e^±0.7): errors ~1e-14.
          expect(Math.abs(s - (i === j ? 1 : 0))).toBeLessThan(1e-10);
        }
      }
    }
  });

  it('starts as a seeded random rotation (Glow), factored with P from the pivoting', () => {
    for (const D of [1, 3, 8]) {
      const q = randomRotation(reference, D, 9);
      // QᵀQ = I.
      for (let i = 0; i < D; i++) {
        for (let j = 0; j < D; j++) {
          let s = 0;
          for (let k = 0; k < D; k++) s += q[k * D + i] * q[k * D + j];
          expect(Math.abs(s - (i === j ? 1 : 0))).toBeLessThan(1e-13);
        }
      }
      const flow = new InvertibleLinearLU({ dim: D, seed: 9, backend: reference });
      expectClose(flow.assembleWeight(), q, { atol: 1e-13, rtol: 0 }, `W0 at dim ${D}`);
      // |det| = 1: the log|s| sum to 0.
      const ld = flow.forward(new Float64Array(D), 1).logDet[0];
      expect(Math.abs(ld)).toBeLessThan(1e-12);
      // Partial pivoting keeps |L| ≤ 1.
      for (const v of flow.lower.value) expect(Math.abs(v)).toBeLessThanOrEqual(1);
    }
    expect(Array.from(randomRotation(reference, 4, 1))).not.toEqual(Array.from(randomRotation(reference, 4, 2)));
  });

  it('luFactor reproduces its input', () => {
    const D = 6;
    const a = randomArray(D * D, 3, -1, 1);
    const { lu, perm } = luFactor(a, D);
    for (let i = 0; i < D; i++) {
      for (let j = 0; j < D; j++) {
        let s = 0;
        const row = perm[i];
        for (let k = 0; k <= Math.min(row, j); k++) s += (k === row ? 1 : lu[row * D + k]) * lu[k * D + j];
        expect(s).toBeCloseTo(a[i * D + j], 13);
      }
    }
  });

  it('masked entries (outside the triangles) are ignored and get zero gradient', () => {
    const D = 4;
    const flow = new InvertibleLinearLU({ dim: D, seed: 2, backend: reference });
    const x = randomArray(3 * D, 5);
    const before = Float64Array.from(flow.forward(x, 3).y);
    for (let i = 0; i < D; i++) {
      for (let j = 0; j < D; j++) {
        if (i <= j) flow.lower.value[i * D + j] = 7;
        if (i >= j) flow.upper.value[i * D + j] = -7;
      }
    }
    expectClose(flow.forward(x, 3).y, before, { atol: 0, rtol: 0 }, 'y with junk outside the triangles');
    for (const p of flow.parameters()) p.grad.fill(0);
    flow.backward(randomArray(3 * D, 6), randomArray(3, 7));
    for (let i = 0; i < D; i++) {
      for (let j = 0; j < D; j++) {
        if (i <= j) expect(flow.lower.grad[i * D + j]).toBe(0);
        if (i >= j) expect(flow.upper.grad[i * D + j]).toBe(0);
      }
    }
  });
});

describe.each(PIECES)('%s: log-det vs the numerical Jacobian, round trip (reference)', (name) => {
  it.each([1, 3, 8])('dim %i', (dim) => {
    const batch = 2;
    const flow = makePiece(name, reference, dim);
    randomizeParameters(flow, 31);
    const x = randomArray(batch * dim, 32, -1.5, 1.5);
    const out = flow.forward(x, batch);
    const y = Float64Array.from(out.y);
    const ld = Float64Array.from(out.logDet);
    const h = 1e-6;
    for (let r = 0; r < batch; r++) {
      const jac = new Float64Array(dim * dim);
      for (let j = 0; j < dim; j++) {
        const up = Float64Array.from(x);
        const down = Float64Array.from(x);
        up[r * dim + j] += h;
        down[r * dim + j] -= h;
        const yu = Float64Array.from(flow.forward(up, batch).y);
        const yd = flow.forward(down, batch).y;
        for (let i = 0; i < dim; i++) jac[i * dim + j] = (yu[r * dim + i] - yd[r * dim + i]) / (2 * h);
      }
      // The maps are linear in x: central differences are exact up to rounding (~1e-10).
      expect(Math.abs(logAbsDet(jac, dim) - ld[r])).toBeLessThan(1e-7);
    }
    const inv = flow.inverse(y, batch);
    expectClose(inv.x, x, { atol: 1e-12, rtol: 1e-12 }, 'inverse(forward(x))');
    expectClose(
      inv.logDet,
      ld.map((v) => -v),
      { atol: 1e-12, rtol: 0 },
      'inverse logDet',
    );
  });
});

/**
 * Tolerances of the module comparison, per piece and dim. Affine maps: y =
 * x·fl(e^{ls}) + shift has three roundings on values ≤ ~3 (|x| ≤ 1.5,
 * e^{0.7} ≈ 2), and the parameter gradients are batch-long sums rounded once
 * (|·| ≲ 3·batch). The LU linear map: W is assembled by a float32 GEMM over
 * dim terms and applied by another, so y carries ≲ dim·eps32 relative to
 * its magnitude (typical √dim; measured ≤ 20 eps32 at dim 40, |y| ≤ 14); the
 * inverse adds cond(W); the parameter gradients add the batch-long sum
 * ∂W = dyᵀx (√batch growth) and two more dim-term GEMMs (measured ≤ 94 eps32).
 */
function moduleTolerance(name: PieceName, dim: number, batch: number) {
  if (name === 'linear-lu') {
    const t = 4 * dim * EPS32;
    return { y: { atol: t, rtol: t }, grad: { atol: t * (1 + Math.sqrt(batch)), rtol: t } };
  }
  return { y: { atol: 16 * EPS32, rtol: 4 * EPS32 }, grad: { atol: 4 * EPS32 * (1 + 3 * batch), rtol: 4 * EPS32 } };
}

/** ‖W‖∞ · ‖W⁻¹‖∞ of a reference LU module. */
function conditionNumber(flow: InvertibleLinearLU): number {
  const D = flow.dim;
  const norm = (m: FloatArray) => {
    let worst = 0;
    for (let i = 0; i < D; i++) {
      let s = 0;
      for (let j = 0; j < D; j++) s += Math.abs(m[i * D + j]);
      worst = Math.max(worst, s);
    }
    return worst;
  };
  return norm(flow.assembleWeight()) * norm(flow.inverseWeight());
}

describe.skipIf(!cpu)('Glow modules: cpu vs reference (forward, log-det, inverse, every gradient)', () => {
  const b = cpu!;
  const shapes: [number, number][] = [
    [1, 1],
    [1, 2],
    [4, 2],
    [7, 5],
    [33, 17],
    [64, 40],
  ];
  describe.each(PIECES)('%s', (name) => {
    it.each(shapes)('batch %i, dim %i', (batch, dim) => {
      const r = makePiece(name, reference, dim);
      const c = makePiece(name, b, dim);
      // The same seed gives the same starting state on both backends (float32 rounding apart).
      const tolInit = { atol: 4 * EPS32, rtol: 4 * EPS32 };
      c.parameters().forEach((p, i) => expectClose(p.value, r.parameters()[i].value, tolInit, `initial ${p.name}`));
      (c.buffers?.() ?? []).forEach((bf, i) => expect(Array.from(bf.value)).toEqual(Array.from(r.buffers!()[i].value)));
      randomizeParameters(r, 41);
      copyState(r, c);
      const x = asFloat32Values(randomArray(batch * dim, 42, -1.5, 1.5));
      const dy = asFloat32Values(randomArray(batch * dim, 43));
      const dl = asFloat32Values(randomArray(batch, 44));
      const tol = moduleTolerance(name, dim, batch);
      const rf = r.forward(x, batch);
      const cf = c.forward(b.from(x), batch);
      expectClose(cf.y, rf.y, tol.y, 'y');
      expectClose(cf.logDet, rf.logDet, { atol: 2 * dim * EPS32, rtol: 0 }, 'logDet');
      for (const f of [r, c]) for (const p of f.parameters()) p.grad.fill(0);
      const rg = Float64Array.from(r.backward(dy, dl).gradInput);
      const cg = c.backward(b.from(dy), b.from(dl)).gradInput;
      expectClose(cg, rg, tol.y, 'gradInput');
      c.parameters().forEach((p, i) => expectClose(p.grad, r.parameters()[i].grad, tol.grad, `grad ${p.name}`));
      const ri = r.inverse(x, batch);
      const ci = c.inverse(b.from(x), batch);
      expectClose(ci.x, ri.x, tol.y, 'inverse x');
      expectClose(ci.logDet, ri.logDet, { atol: 2 * dim * EPS32, rtol: 0 }, 'inverse logDet');
      // Round trip on cpu: the forward's float32 error, amplified by the
      // inverse by up to cond(W) (random triangular factors at dim 40 reach ~10³).
      const cond = r instanceof InvertibleLinearLU ? conditionNumber(r) : 1;
      const back = c.inverse(b.from(cf.y), batch).x;
      expectClose(back, x, { atol: 2 * tol.y.atol * cond, rtol: 2 * tol.y.rtol }, 'cpu inverse(forward(x))');
    });
  });
});

// -----------------------------------------------------------------------------
// ActNorm's data-dependent initialization.

function columnStats(y: FloatArray, batch: number, dim: number): { mean: Float64Array; std: Float64Array } {
  const mean = new Float64Array(dim);
  const std = new Float64Array(dim);
  for (let r = 0; r < batch; r++) for (let j = 0; j < dim; j++) mean[j] += y[r * dim + j] / batch;
  for (let r = 0; r < batch; r++) for (let j = 0; j < dim; j++) std[j] += (y[r * dim + j] - mean[j]) ** 2 / batch;
  return { mean, std: std.map(Math.sqrt) };
}

describe('ActNorm: data-dependent initialization', () => {
  const backendsHere = cpu ? [reference, cpu] : [reference];
  it.each(backendsHere.map((b) => [b.name, b] as const))('the first batch comes out with mean 0, std 1 per dim [%s]', (_n, b) => {
    const batch = 50;
    const dim = 7;
    // Columns with different means (−3…3) and spreads (0.1…5).
    const raw = randomArray(batch * dim, 51, -1, 1);
    for (let r = 0; r < batch; r++) for (let j = 0; j < dim; j++) raw[r * dim + j] = j - 3 + (0.1 + 0.8 * j) * raw[r * dim + j];
    const flow = new ActNorm({ dim, backend: b });
    expect(flow.initialized).toBe(false);
    const { y, logDet } = flow.forward(b.from(raw), batch, { training: true });
    expect(flow.initialized).toBe(true);
    const { mean, std } = columnStats(y, batch, dim);
    // float64: exact but for Glow's ε (std/(std + 1e-6) ≥ 1 − 2e-5 at std ≥ 0.05).
    // float32: each y carries ~2 ulps of |x|·scale ≲ 40 → mean to ~1e-5, std to ~1e-5.
    const tol = b.dtype === 'float64' ? 1e-12 : 2e-5;
    expectClose(mean, new Float64Array(dim), { atol: tol, rtol: 0 }, 'mean');
    expectClose(std, new Float64Array(dim).fill(1), { atol: 2e-5 + tol, rtol: 0 }, 'std');
    // log|det| = Σ −log(std_j + ε), the same for every row.
    const rawStats = columnStats(raw, batch, dim);
    let expectedLd = 0;
    for (const s of rawStats.std) expectedLd -= Math.log(s + 1e-6);
    expectClose(logDet, new Float64Array(batch).fill(expectedLd), { atol: b.dtype === 'float64' ? 1e-12 : 1e-5, rtol: 0 }, 'logDet');
  });

  it.skipIf(!cpu)('initializes to the same values on cpu and reference', () => {
    const batch = 40;
    const dim = 9;
    const x = asFloat32Values(randomArray(batch * dim, 52, -2, 3));
    const r = new ActNorm({ dim, backend: reference });
    const c = new ActNorm({ dim, backend: cpu! });
    r.forward(x, batch, { training: true });
    c.forward(cpu!.from(x), batch, { training: true });
    // The statistics are computed in float64 from identical inputs; cpu rounds the results to float32.
    expectClose(c.logScale.value, r.logScale.value, { atol: EPS32, rtol: EPS32 }, 'logScale');
    expectClose(c.shift.value, r.shift.value, { atol: 2 * EPS32, rtol: 2 * EPS32 }, 'shift');
  });

  it('initializes once: later batches use the same parameters; initialize() re-runs it on demand', () => {
    const dim = 3;
    const flow = new ActNorm({ dim, backend: reference });
    const first = randomArray(10 * dim, 53, 2, 6);
    flow.forward(first, 10, { training: true });
    const ls = Float64Array.from(flow.logScale.value);
    const other = randomArray(4 * dim, 54, -10, 10);
    flow.forward(other, 4, { training: true });
    expect(Array.from(flow.logScale.value)).toEqual(Array.from(ls));
    flow.initialize(other, 4);
    expect(Array.from(flow.logScale.value)).not.toEqual(Array.from(ls));
    const { mean } = columnStats(flow.forward(other, 4).y, 4, dim);
    expectClose(mean, new Float64Array(dim), { atol: 1e-12, rtol: 0 }, 'mean after initialize()');
  });

  it('evaluation forwards do not initialize; the first training forward does', () => {
    const flow = new ActNorm({ dim: 2, backend: reference });
    const x = Float64Array.from([1, 2, 3, 5]);
    expect(Array.from(flow.forward(x, 2).y)).toEqual([1, 2, 3, 5]);
    expect(flow.initialized).toBe(false);
    flow.forward(x, 2, { training: true });
    expect(flow.initialized).toBe(true);
    expect(Array.from(flow.logScale.value)).not.toEqual([0, 0]);
  });

  it('inverse does not initialize (identity before any forward)', () => {
    const flow = new ActNorm({ dim: 2, backend: reference });
    const y = Float64Array.from([1, 2, 3, 4]);
    expect(Array.from(flow.inverse(y, 2).x)).toEqual([1, 2, 3, 4]);
    expect(flow.initialized).toBe(false);
  });

  it('refuses to initialize from one row or from non-finite data', () => {
    const flow = new ActNorm({ dim: 2, backend: reference });
    expect(() => flow.forward(Float64Array.from([1, 2]), 1, { training: true })).toThrow(RangeError);
    expect(() => flow.forward(Float64Array.from([1, 2]), 1, { training: true })).toThrow(
      'Expected batch of at least 2 rows to initialize ActNorm from for "batch" but received 1 (number)',
    );
    expect(() => flow.forward(Float64Array.from([1, 2, NaN, 4]), 2, { training: true })).toThrow('ActNorm.initialize: row 1 of "x" is not finite');
    expect(flow.initialized).toBe(false);
  });

  it('the initialization survives the optimizer (Adam built before the first forward)', () => {
    const dim = 4;
    const flow = new ActNorm({ dim, backend: reference });
    const adam = new Adam(reference, flow.parameters(), { lr: 1e-3 });
    // Mean ≈ 5.2, std ≈ 0.12: the initialization sets logScale ≈ 2.1 and shift ≈ −45.
    const x = randomArray(20 * dim, 55, 5, 5.4);
    flow.forward(x, 20, { training: true });
    const initScale = Float64Array.from(flow.logScale.value);
    const initShift = Float64Array.from(flow.shift.value);
    flow.backward(randomArray(20 * dim, 56), randomArray(20, 57));
    adam.step();
    // One Adam step moves each value by at most lr (·(1 + tiny)); with a stale
    // copy they would be back within lr of 0.
    expectClose(flow.logScale.value, initScale, { atol: 1.01e-3, rtol: 0 }, 'logScale after one step');
    expectClose(flow.shift.value, initShift, { atol: 1.01e-3, rtol: 0 }, 'shift after one step');
    for (let j = 0; j < dim; j++) {
      expect(initScale[j]).toBeGreaterThan(1.5);
      expect(initShift[j]).toBeLessThan(-20);
    }
  });
});

// -----------------------------------------------------------------------------
// Permutations.

describe('Permutation', () => {
  it('reverse is the reversal; random is seeded, a permutation, the same on every backend', () => {
    expect(Array.from(new Permutation({ dim: 5, order: 'reverse', backend: reference }).permutation)).toEqual([4, 3, 2, 1, 0]);
    for (const dim of [1, 2, 9, 40]) {
      const p = new Permutation({ dim, seed: 8, backend: reference }).permutation;
      expect(Array.from(p).sort((a, b) => a - b)).toEqual(Array.from({ length: dim }, (_, i) => i));
      expect(Array.from(new Permutation({ dim, seed: 8, backend: reference }).permutation)).toEqual(Array.from(p));
      if (cpu) expect(Array.from(new Permutation({ dim, seed: 8, backend: cpu }).permutation)).toEqual(Array.from(p));
    }
    const a = new Permutation({ dim: 40, seed: 1, backend: reference }).permutation;
    const c = new Permutation({ dim: 40, seed: 2, backend: reference }).permutation;
    expect(Array.from(a)).not.toEqual(Array.from(c));
    expect(new Permutation({ dim: 3, backend: reference }).order).toBe('random');
  });

  it.each(cpu ? [reference, cpu] : [reference])('round trip is exact, backward applies the inverse permutation [%#]', (b) => {
    const dim = 13;
    const batch = 6;
    const flow = new Permutation({ dim, seed: 5, backend: b });
    const x = b.from(randomArray(batch * dim, 61));
    const { y, logDet } = flow.forward(x, batch);
    expect(Array.from(logDet)).toEqual(new Array(batch).fill(0));
    const perm = flow.permutation;
    for (let r = 0; r < batch; r++) for (let j = 0; j < dim; j++) expect(y[r * dim + j]).toBe(x[r * dim + perm[j]]);
    const back = flow.inverse(b.from(y), batch);
    expect(Array.from(back.x)).toEqual(Array.from(x));
    expect(Array.from(back.logDet)).toEqual(new Array(batch).fill(0));
    const dy = b.from(randomArray(batch * dim, 62));
    const dx = flow.backward(dy, b.alloc(batch)).gradInput;
    for (let r = 0; r < batch; r++) for (let j = 0; j < dim; j++) expect(dx[r * dim + perm[j]]).toBe(dy[r * dim + j]);
  });

  it('refuses a stored permutation that is not one (e.g. a corrupted checkpoint)', () => {
    const flow = new Permutation({ dim: 3, order: 'reverse', backend: reference });
    flow.buffers()[0].value.set([0, 0, 1]);
    expect(() => flow.forward(new Float64Array(3), 1)).toThrow('Expected permutation of 0..2 (element 1 is 0) for "permutation" but received Float64Array(3)');
    const lu = new InvertibleLinearLU({ dim: 2, backend: reference });
    lu.buffers()[1].value[1] = 0.5;
    expect(() => lu.forward(new Float64Array(2), 1)).toThrow('Expected array of ±1 (element 1 is 0.5) for "sign" but received Float64Array(2)');
  });
});

// -----------------------------------------------------------------------------
// Composition with the other flows, context passing through.

function glowSequence(backend: Backend, dim: number, contextDim: number): FlowSequence {
  return new FlowSequence([
    new ActNorm({ dim, backend }),
    new InvertibleLinearLU({ dim, seed: 1, backend }),
    new PlanarFlow({ dim, layers: 2, seed: 2, backend }),
    new IAFFlow({ dim, hidden: [6], contextDim, seed: 3, backend }),
    new Permutation({ dim, seed: 4, backend }),
    new ElementwiseAffine({ dim, backend }),
    new IAFFlow({ dim, hidden: [5], contextDim, seed: 5, backend }),
  ]);
}

describe('Glow pieces in a FlowSequence with planar and conditional IAF', () => {
  const dim = 3;
  const contextDim = 2;
  const batch = 4;

  function prepared(backend: Backend) {
    const seq = glowSequence(backend, dim, contextDim);
    for (const f of seq.flows) if (!(f instanceof IAFFlow || f instanceof PlanarFlow)) randomizeParameters(f, 71);
    return seq;
  }

  it('names parameters and buffers by position; the context reaches the IAF members', () => {
    const seq = prepared(reference);
    expect(seq.contextDim).toBe(contextDim);
    const names = seq.parameters().map((p) => p.name);
    expect(names).toContain('0.logScale');
    expect(names).toContain('1.lower');
    expect(names).toContain('5.shift');
    expect(seq.buffers().map((b) => b.name)).toEqual(['0.initialized', '1.permutation', '1.sign', '4.permutation']);
    const x = randomArray(batch * dim, 72);
    const a = Float64Array.from(seq.forward(x, batch, { context: randomArray(batch * contextDim, 73) }).y);
    const b = seq.forward(x, batch, { context: randomArray(batch * contextDim, 74) }).y;
    expect(Array.from(a)).not.toEqual(Array.from(b));
  });

  it('gradients (input, context, every parameter) vs central finite differences; log-det vs Jacobian; round trip', () => {
    const seq = prepared(reference);
    const x = randomArray(batch * dim, 75, -1.2, 1.2);
    const context = randomArray(batch * contextDim, 76);
    const wy = randomArray(batch * dim, 77);
    const wl = randomArray(batch, 78);
    const loss = () => {
      const out = seq.forward(x, batch, { context });
      return dot(out.y, wy) + dot(out.logDet, wl);
    };
    loss();
    for (const p of seq.parameters()) p.grad.fill(0);
    const g = seq.backward(wy, wl);
    const gx = Float64Array.from(g.gradInput);
    const gc = Float64Array.from(g.gradContext!);
    const grads = seq.parameters().map((p) => Float64Array.from(p.grad));
    // Smooth composite in float64: h = 1e-6 central differences are good to ~1e-9.
    const tol = { atol: 1e-6, rtol: 1e-5 };
    expectClose(gx, numericalGradient(loss, x), tol, 'input');
    expectClose(gc, numericalGradient(loss, context), tol, 'context');
    seq.parameters().forEach((p, i) => expectClose(grads[i], numericalGradient(loss, p.value), tol, p.name));

    const out = seq.forward(x, batch, { context });
    const y = Float64Array.from(out.y);
    const ld = Float64Array.from(out.logDet);
    for (let r = 0; r < batch; r++) {
      const jac = new Float64Array(dim * dim);
      for (let j = 0; j < dim; j++) {
        const up = Float64Array.from(x);
        const down = Float64Array.from(x);
        up[r * dim + j] += 1e-6;
        down[r * dim + j] -= 1e-6;
        const yu = Float64Array.from(seq.forward(up, batch, { context }).y);
        const yd = seq.forward(down, batch, { context }).y;
        for (let i = 0; i < dim; i++) jac[i * dim + j] = (yu[r * dim + i] - yd[r * dim + i]) / 2e-6;
      }
      expect(Math.abs(logAbsDet(jac, dim) - ld[r])).toBeLessThan(1e-6);
    }
    // Planar's inverse is iterative (to 1e-6 in the argument of tanh; DESIGN §4).
    const inv = seq.inverse(y, batch, { context });
    expectClose(inv.x, x, { atol: 1e-5, rtol: 1e-5 }, 'inverse(forward(x))');
    expectClose(
      inv.logDet,
      ld.map((v) => -v),
      { atol: 1e-5, rtol: 1e-5 },
      'inverse logDet',
    );
  });

  it.skipIf(!cpu)('cpu matches reference through the whole sequence', () => {
    const r = prepared(reference);
    const c = glowSequence(cpu!, dim, contextDim);
    copyState(r, c);
    const x = asFloat32Values(randomArray(batch * dim, 81));
    const context = asFloat32Values(randomArray(batch * contextDim, 82));
    const dy = asFloat32Values(randomArray(batch * dim, 83));
    const dl = asFloat32Values(randomArray(batch, 84));
    const rf = r.forward(x, batch, { context });
    const cf = c.forward(cpu!.from(x), batch, { context: cpu!.from(context) });
    // Seven float32 layers on values of order 1: each adds a few ulps, compounded by Lipschitz constants ≲ 3.
    const tol = { atol: 2e-5, rtol: 2e-5 };
    expectClose(cf.y, rf.y, tol, 'y');
    expectClose(cf.logDet, rf.logDet, tol, 'logDet');
    for (const f of [r, c]) for (const p of f.parameters()) p.grad.fill(0);
    const rg = r.backward(dy, dl);
    const rgx = Float64Array.from(rg.gradInput);
    const rgc = Float64Array.from(rg.gradContext!);
    const cg = c.backward(cpu!.from(dy), cpu!.from(dl));
    expectClose(cg.gradInput, rgx, { atol: 1e-4, rtol: 1e-4 }, 'gradInput');
    expectClose(cg.gradContext!, rgc, { atol: 1e-4, rtol: 1e-4 }, 'gradContext');
    c.parameters().forEach((p, i) => expectClose(p.grad, r.parameters()[i].grad, { atol: 1e-4, rtol: 1e-4 }, p.name));
  });
});

// -----------------------------------------------------------------------------
// Checkpoints: buffers are saved, and a loaded ActNorm is not initialized again.

describe('VAE with Glow pieces: save and load', () => {
  it('keeps ActNorm initialized and restores the fixed permutations and signs', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flowvae-glow-'));
    try {
      const options = {
        inputDim: 6,
        latentDim: 3,
        encoder: { hidden: [8] },
        decoder: { hidden: [8] },
        posterior: { flow: 'actnorm', layers: 2 },
        seed: 3,
        backend: 'reference' as const,
      };
      const vae = new VAE(options);
      const x = randomArray(20 * 6, 91, 0, 1).map((v) => (v > 0.5 ? 1 : 0));
      await vae.fit(x, { epochs: 1, batchSize: 10, seed: 1 });
      expect(vae.namedBuffers().map((b) => [b.name, b.value[0]])).toEqual([
        ['flow.0.initialized', 1],
        ['flow.1.initialized', 1],
      ]);
      const file = vae.save(dir);
      expect(loadSafetensors(file).tensors.map((t) => t.name)).toContain('flow.1.initialized');
      const loaded = VAE.load(dir, { backend: 'reference' });
      // A first forward on other data would re-initialize if the flag were lost.
      loaded.elbo(randomArray(5 * 6, 92, 0, 1), { seed: 1 });
      loaded.parameters().forEach((p, i) => expect(Array.from(p.value), p.name).toEqual(Array.from(vae.parameters()[i].value)));
      expect(loaded.elbo(x, { seed: 5 }).elbo).toBe(vae.elbo(x, { seed: 5 }).elbo);

      // A fresh model of the same architecture is not initialized: loading is what restores the flag.
      expect(new VAE(options).namedBuffers()[0].value[0]).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('saves linear-lu and permutation buffers under their names and loads them back', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flowvae-glow-'));
    try {
      const vae = new VAE({
        inputDim: 5,
        latentDim: 4,
        encoder: { hidden: [6] },
        decoder: { hidden: [6] },
        posterior: { flow: 'linear-lu', layers: 1 },
        seed: 2,
        backend: 'reference',
      });
      const names = vae.namedBuffers().map((b) => b.name);
      expect(names).toEqual(['flow.permutation', 'flow.sign']);
      // Overwrite them with other valid values: the loaded model must have these, not the seed's.
      vae.namedBuffers()[0].value.set([3, 2, 1, 0]);
      vae.namedBuffers()[1].value.set([1, -1, -1, 1]);
      vae.save(dir);
      const loaded = VAE.load(dir, { backend: 'reference' });
      expect(Array.from(loaded.namedBuffers()[0].value)).toEqual([3, 2, 1, 0]);
      expect(Array.from(loaded.namedBuffers()[1].value)).toEqual([1, -1, -1, 1]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

// -----------------------------------------------------------------------------
// Bad arguments.

describe('Glow pieces: bad arguments', () => {
  it.each([
    [() => new ActNorm({ dim: 0, backend: reference }), RangeError, 'Expected positive integer for "dim" but received 0 (number)'],
    [() => new ElementwiseAffine({ dim: 2, seed: 1, backend: reference } as never), RangeError, 'Unknown option "seed" in "options"'],
    [() => new InvertibleLinearLU({ dim: 2, seed: -1, backend: reference }), RangeError, 'Expected integer in [0, 2^53) for "seed" but received -1 (number)'],
    [
      () => new Permutation({ dim: 2, order: 'sideways' as never, backend: reference }),
      RangeError,
      'Expected one of "reverse", "random" for "order" but received "sideways" (string)',
    ],
    [() => new Permutation(null as never), TypeError, 'Expected options object for "options" but received null'],
    [() => new ActNorm({ dim: 2, backend: {} as never }), TypeError, 'Expected backend name or Backend for "backend" but received object'],
  ])('constructor %#', (make, kind, message) => {
    expect(make).toThrow(kind);
    expect(make).toThrow(message);
  });

  it('calls: shapes, context, params, backward before forward', () => {
    const flow = new InvertibleLinearLU({ dim: 3, backend: reference });
    expect(() => flow.forward(new Float64Array(5), 2)).toThrow('Expected Float64Array of length 6 for "x" but received Float64Array(5)');
    expect(() => flow.forward(new Float32Array(6), 2)).toThrow('Expected Float64Array for "x" but received Float32Array(6)');
    expect(() => flow.forward(new Float64Array(3), 0)).toThrow('Expected positive integer for "batch" but received 0 (number)');
    expect(() => flow.forward(new Float64Array(3), 1, { context: new Float64Array(2) })).toThrow(
      'Expected no context (the linear-lu flow is not conditional) for "context" but received Float64Array(2)',
    );
    expect(() => flow.inverse(new Float64Array(3), 1, { params: new Float64Array(2) })).toThrow(
      'Expected no params (the linear-lu flow has shared parameters) for "params" but received Float64Array(2)',
    );
    expect(() => flow.backward(new Float64Array(3), new Float64Array(1))).toThrow('InvertibleLinearLU.backward called before forward');
    const act = new ActNorm({ dim: 2, backend: reference });
    expect(() => act.backward(new Float64Array(2), new Float64Array(1))).toThrow('ActNorm.backward called before forward');
    act.forward(new Float64Array([1, 2, 3, 5]), 2);
    expect(() => act.backward(new Float64Array(2), new Float64Array(2))).toThrow(
      'Expected Float64Array of length 4 for "gradOutput" but received Float64Array(2)',
    );
  });

  it('registry: unknown posterior options are refused', () => {
    const base = { inputDim: 4, latentDim: 2, backend: 'reference' as const };
    expect(() => new VAE({ ...base, posterior: { flow: 'permutation', order: 'sideways' } })).toThrow(
      'Expected one of "reverse", "random" for "order" but received "sideways" (string)',
    );
    expect(() => new VAE({ ...base, posterior: { flow: 'actnorm', scale: 2 } })).toThrow('Unknown option "scale" in "posterior"');
    expect(() => new VAE({ ...base, posterior: { flow: 'linear-lu', amortized: true } })).toThrow(
      'The linear-lu flow cannot be amortized; set "posterior.amortized" to false',
    );
  });

  const kernelBackends = cpu ? [reference, cpu] : [reference];
  it.each(kernelBackends.map((b) => [b.name, b] as const))('kernels [%s]: lengths and permutations, same messages on both backends', (_n, b) => {
    const x = b.alloc(6);
    const y = b.alloc(6);
    expect(() => b.glow.permuteColumns(x, Uint32Array.from([0, 0, 1]), y, 2, 3)).toThrow(RangeError);
    expect(() => b.glow.permuteColumns(x, Uint32Array.from([0, 0, 1]), y, 2, 3)).toThrow(
      'Expected permutation of 0..2 as a Uint32Array of length 3 for "perm" but received Uint32Array(3)',
    );
    expect(() => b.glow.unpermuteColumns(x, Uint32Array.from([0, 1, 3]), y, 2, 3)).toThrow(
      'Expected permutation of 0..2 as a Uint32Array of length 3 for "perm" but received Uint32Array(3)',
    );
    expect(() => b.glow.permuteColumns(x, Uint32Array.from([0, 1]), y, 2, 3)).toThrow(
      'Expected Uint32Array of length 3 for "perm" but received Uint32Array(2)',
    );
    expect(() => b.glow.permuteColumns(x, [0, 1, 2] as never, y, 2, 3)).toThrow(TypeError);
    expect(() => b.glow.affineForward(x, b.alloc(3), b.alloc(2), y, b.alloc(2), 2, 3)).toThrow(
      `Expected ${b.dtype === 'float32' ? 'Float32Array' : 'Float64Array'} of length 3 for "shift" but received ${
        b.dtype === 'float32' ? 'Float32Array' : 'Float64Array'
      }(2)`,
    );
    expect(() => b.glow.affineBackward(x, b.alloc(3), y, b.alloc(2), b.alloc(6), b.alloc(3), b.alloc(3), -1, 3)).toThrow(
      'Expected non-negative integer for "batch" but received -1 (number)',
    );
  });

  it.skipIf(!cpu)('the binding refuses an output overlapping an input', () => {
    const buf = new Float32Array(12);
    expect(() => cpu!.glow.affineForward(buf.subarray(0, 6), new Float32Array(3), new Float32Array(3), buf.subarray(4, 10), new Float32Array(2), 2, 3)).toThrow(
      'Expected Float32Array not overlapping "x" for "y" but received Float32Array(6)',
    );
  });
});
