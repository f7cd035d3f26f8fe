/**
 * Coupling family: the kernels (gather/scatter of halves, affine, additive,
 * NICE scaling) against their definitions, central finite differences and
 * each other across backends; CouplingFlow / RealNVP / NICE modules (the
 * 1-D alternation and odd dims, identity at initialization, round trips,
 * log-det vs the numerical Jacobian, gradients of input, every parameter and
 * context, cpu vs reference); the CouplingTransform plug-in point; argument
 * errors with their messages.
 */
import { describe, expect, it } from 'vitest';
import { backendByName } from '../src/backend';
import type { Backend } from '../src/backend/backend';
import type { CouplingKernels } from '../src/backend/kernels/coupling';
import type { FloatArray } from '../src/backend/types';
import {
  AffineCouplingTransform,
  CouplingFlow,
  FLOW_FAMILIES,
  NICEFlow,
  RealNVPFlow,
  type CouplingTransform,
  type CouplingTransformSpec,
  type Flow,
} from '../src/flows';
import { createParameter, type Parameter } from '../src/nn/parameter';
import { logAbsDet, thrown } from './flow-stack-helpers';
import { asFloat32Values, dot, expectClose, hasCpu, numericalGradient, randomArray, type Tolerance } from './helpers';

const reference = backendByName('reference');
const cpu = hasCpu() ? backendByName('cpu') : null;
const ref = reference.coupling;

interface Cols {
  batch: number;
  dim: number;
  offset: number;
  width: number;
  contextDim: number;
}

// Awkward column layouts: batch 1, the smallest coupling (dim 2), odd dims
// (second half one wider), widths off every SIMD width (4, 8, 16) so the
// zero-padded tail runs, widths of exactly one and two vectors, and a batch
// above one task's grain so the row loop goes parallel on cpu.
const COLS: Cols[] = [
  { batch: 1, dim: 2, offset: 1, width: 1, contextDim: 0 },
  { batch: 1, dim: 2, offset: 0, width: 1, contextDim: 2 },
  { batch: 3, dim: 3, offset: 1, width: 2, contextDim: 0 },
  { batch: 4, dim: 3, offset: 0, width: 1, contextDim: 3 },
  { batch: 5, dim: 17, offset: 8, width: 9, contextDim: 1 },
  { batch: 7, dim: 37, offset: 18, width: 19, contextDim: 5 },
  { batch: 9, dim: 32, offset: 0, width: 16, contextDim: 0 },
  { batch: 2, dim: 41, offset: 20, width: 21, contextDim: 0 },
  { batch: 700, dim: 40, offset: 20, width: 20, contextDim: 2 },
];

const colsName = (c: Cols) => `batch ${c.batch}, dim ${c.dim}, columns [${c.offset}, ${c.offset + c.width}), context ${c.contextDim}`;

/** Conditioner output for affine: ŝ spread over ±3 (tanh saturating at the ends), t on ±1. */
function affineH(c: Cols, seed: number): Float64Array {
  const h = randomArray(2 * c.batch * c.width, seed, -1, 1);
  const hat = randomArray(c.batch * c.width, seed + 1, -3, 3);
  for (let r = 0; r < c.batch; r++) for (let j = 0; j < c.width; j++) h[2 * r * c.width + j] = hat[r * c.width + j];
  return h;
}

function kernelData(c: Cols, seed: number) {
  return {
    x: asFloat32Values(randomArray(c.batch * c.dim, seed, -2, 2)),
    h: asFloat32Values(affineH(c, seed + 10)),
    m: asFloat32Values(randomArray(c.batch * c.width, seed + 20, -1, 1)),
    scale: asFloat32Values(randomArray(c.width, seed + 30, -1.5, 1.5)),
    context: asFloat32Values(randomArray(c.batch * c.contextDim, seed + 40, -1, 1)),
    dy: asFloat32Values(randomArray(c.batch * c.dim, seed + 50, -1, 1)),
    dLogDet: asFloat32Values(randomArray(c.batch, seed + 60, -1, 1)),
    logScale: asFloat32Values(randomArray(c.dim, seed + 70, -1, 1)),
    dIn: asFloat32Values(randomArray(c.batch * (c.width + c.contextDim), seed + 80, -1, 1)),
  };
}

/** Copies of `data` in `backend`'s element type (the inputs are float32 values either way). */
function on(backend: Backend, data: ArrayLike<number>): FloatArray {
  return backend.from(data);
}

/** An output buffer prefilled with a sentinel, to see which columns a kernel wrote. */
function sentinel(backend: Backend, n: number, value = 7.25): FloatArray {
  const a = backend.alloc(n);
  a.fill(value);
  return a;
}

/** All outputs of every kernel on one backend, for one layout. */
function runKernels(backend: Backend, c: Cols, d: ReturnType<typeof kernelData>) {
  const k = backend.coupling;
  const n = c.batch * c.dim;
  const x = on(backend, d.x);
  const h = on(backend, d.h);
  const scale = on(backend, d.scale);
  const context = c.contextDim > 0 ? on(backend, d.context) : null;
  const out: Record<string, FloatArray> = {};
  out.gather = backend.alloc(c.batch * (c.width + c.contextDim));
  k.gather(x, context, out.gather, c.batch, c.dim, c.offset, c.width, c.contextDim);
  out.scatterDx = on(backend, d.dy);
  out.scatterContext = on(backend, d.context);
  k.scatterAdd(on(backend, d.dIn), out.scatterDx, c.contextDim > 0 ? out.scatterContext : null, c.batch, c.dim, c.offset, c.width, c.contextDim);
  out.affineY = sentinel(backend, n);
  out.affineLogDet = backend.alloc(c.batch);
  k.affineForward(x, h, scale, out.affineY, out.affineLogDet, c.batch, c.dim, c.offset, c.width);
  out.affineX = sentinel(backend, n);
  out.affineInverseLogDet = backend.alloc(c.batch);
  k.affineInverse(x, h, scale, out.affineX, out.affineInverseLogDet, c.batch, c.dim, c.offset, c.width);
  out.affineDx = sentinel(backend, n);
  out.affineDh = backend.alloc(2 * c.batch * c.width);
  out.affineDScale = on(backend, d.scale); // accumulates onto what it holds
  k.affineBackward(x, h, scale, on(backend, d.dy), on(backend, d.dLogDet), out.affineDx, out.affineDh, out.affineDScale, c.batch, c.dim, c.offset, c.width);
  out.additiveY = sentinel(backend, n);
  k.additiveForward(x, on(backend, d.m), out.additiveY, c.batch, c.dim, c.offset, c.width);
  out.additiveX = sentinel(backend, n);
  k.additiveInverse(x, on(backend, d.m), out.additiveX, c.batch, c.dim, c.offset, c.width);
  out.additiveDx = sentinel(backend, n);
  out.additiveDh = backend.alloc(c.batch * c.width);
  k.additiveBackward(on(backend, d.dy), out.additiveDx, out.additiveDh, c.batch, c.dim, c.offset, c.width);
  const logScale = on(backend, d.logScale);
  out.scaleY = backend.alloc(n);
  out.scaleLogDet = backend.alloc(c.batch);
  k.scaleForward(x, logScale, out.scaleY, out.scaleLogDet, c.batch, c.dim);
  out.scaleX = backend.alloc(n);
  out.scaleInverseLogDet = backend.alloc(c.batch);
  k.scaleInverse(x, logScale, out.scaleX, out.scaleInverseLogDet, c.batch, c.dim);
  out.scaleDx = backend.alloc(n);
  out.scaleDLogScale = on(backend, d.logScale); // accumulates
  k.scaleBackward(x, logScale, on(backend, d.dy), on(backend, d.dLogDet), out.scaleDx, out.scaleDLogScale, c.batch, c.dim);
  return out;
}

const inColumns = (c: Cols, i: number) => {
  const col = i % c.dim;
  return col >= c.offset && col < c.offset + c.width;
};

describe('coupling kernels: reference definitions', () => {
  it('affineForward: y_b = x_b e^s + t with s = scale·tanh(ŝ), log|det| = Σ s; other columns untouched', () => {
    // One row of dim 4 transforming columns [1, 3): ŝ = (0.5, −2), t = (0.25, −1), scale = (1.5, 0.5).
    const x = Float64Array.from([9, 0.5, -2, 9]);
    const h = Float64Array.from([0.5, -2, 0.25, -1]);
    const scale = Float64Array.from([1.5, 0.5]);
    const y = Float64Array.from([-3, -3, -3, -3]);
    const ld = new Float64Array(1);
    ref.affineForward(x, h, scale, y, ld, 1, 4, 1, 2);
    const s0 = 1.5 * Math.tanh(0.5);
    const s1 = 0.5 * Math.tanh(-2);
    expect(y[0]).toBe(-3);
    expect(y[3]).toBe(-3);
    expect(y[1]).toBeCloseTo(0.5 * Math.exp(s0) + 0.25, 14);
    expect(y[2]).toBeCloseTo(-2 * Math.exp(s1) - 1, 14);
    expect(ld[0]).toBeCloseTo(s0 + s1, 14);
  });

  it('additive, scaling and gather follow their definitions', () => {
    const x = Float64Array.from([1, 2, 3, 4, 5, 6]);
    const y = Float64Array.from([0, 0, 0, 0, 0, 0]);
    ref.additiveForward(x, Float64Array.from([10, 20]), y, 2, 3, 2, 1);
    expect(Array.from(y)).toEqual([0, 0, 13, 0, 0, 26]);
    const ld = new Float64Array(2);
    ref.scaleForward(x, Float64Array.from([0, Math.LN2, -Math.LN2]), y, ld, 2, 3);
    expectClose(y, [1, 4, 1.5, 4, 10, 3], { atol: 1e-15, rtol: 1e-15 }, 'scaled');
    expect(Array.from(ld)).toEqual([0, 0]);
    const out = new Float64Array(2 * 3);
    ref.gather(x, Float64Array.from([-1, -2]), out, 2, 3, 1, 2, 1);
    expect(Array.from(out)).toEqual([2, 3, -1, 5, 6, -2]);
  });

  it.each(COLS.filter((c) => c.batch < 100))('inverses undo the forwards, with negated log-dets ($dim, $offset, $width)', (c) => {
    const d = kernelData(c, 3);
    const n = c.batch * c.dim;
    const y = Float64Array.from(d.x);
    const back = Float64Array.from(d.x);
    const ld = new Float64Array(c.batch);
    const ldInv = new Float64Array(c.batch);
    ref.affineForward(d.x, d.h, d.scale, y, ld, c.batch, c.dim, c.offset, c.width);
    ref.affineInverse(y, d.h, d.scale, back, ldInv, c.batch, c.dim, c.offset, c.width);
    // Float64 round trip of exp(s)·exp(−s) with |s| ≤ 1.5: ~1e-15 relative.
    expectClose(back, d.x, { atol: 1e-13, rtol: 1e-13 }, 'affine round trip');
    expectClose(
      ldInv,
      ld.map((v) => -v),
      { atol: 1e-14, rtol: 0 },
      'affine logDet',
    );
    ref.additiveForward(d.x, d.m, y, c.batch, c.dim, c.offset, c.width);
    ref.additiveInverse(y, d.m, back, c.batch, c.dim, c.offset, c.width);
    expectClose(back, d.x, { atol: 1e-14, rtol: 0 }, 'additive round trip');
    const ys = new Float64Array(n);
    ref.scaleForward(d.x, d.logScale, ys, ld, c.batch, c.dim);
    ref.scaleInverse(ys, d.logScale, back, ldInv, c.batch, c.dim);
    expectClose(back, d.x, { atol: 1e-14, rtol: 1e-14 }, 'scale round trip');
    expectClose(
      ldInv,
      ld.map((v) => -v),
      { atol: 1e-14, rtol: 0 },
      'scale logDet',
    );
  });

  it.each(COLS.filter((c) => c.batch < 100))(
    'scatterAdd is the transpose of gather: ⟨gather(x), g⟩ = ⟨x, scatter(g)⟩ ($dim, $offset, $width, $contextDim)',
    (c) => {
      const d = kernelData(c, 5);
      const out = new Float64Array(c.batch * (c.width + c.contextDim));
      ref.gather(d.x, c.contextDim ? d.context : null, out, c.batch, c.dim, c.offset, c.width, c.contextDim);
      const dx = new Float64Array(c.batch * c.dim);
      const dc = new Float64Array(c.batch * c.contextDim);
      ref.scatterAdd(d.dIn, dx, c.contextDim ? dc : null, c.batch, c.dim, c.offset, c.width, c.contextDim);
      expect(dot(out, d.dIn)).toBeCloseTo(dot(d.x, dx) + dot(d.context, dc), 12);
    },
  );
});

describe('coupling kernels: reference gradients vs central finite differences (float64)', () => {
  // Loss = ⟨y, wy⟩ + ⟨logDet, wl⟩ is smooth in every input; h = 1e-6 gives
  // truncation ~1e-12·|f'''| and rounding ~1e-10 relative, so 1e-6 is ample.
  const tol: Tolerance = { atol: 1e-6, rtol: 1e-6 };

  it.each(COLS.filter((c) => c.batch < 100))('affineBackward: dx_b, dŝ, dt and dScale ($dim, $offset, $width)', (c) => {
    const d = kernelData(c, 7);
    const x = Float64Array.from(d.x);
    const h = Float64Array.from(d.h);
    const scale = Float64Array.from(d.scale);
    const wy = Float64Array.from(d.dy);
    const wl = Float64Array.from(d.dLogDet);
    const y = new Float64Array(c.batch * c.dim);
    const ld = new Float64Array(c.batch);
    const loss = () => {
      y.fill(0);
      ref.affineForward(x, h, scale, y, ld, c.batch, c.dim, c.offset, c.width);
      return dot(y, wy) + dot(ld, wl);
    };
    const dx = new Float64Array(c.batch * c.dim);
    const dh = new Float64Array(2 * c.batch * c.width);
    const dScale = Float64Array.from(d.logScale.subarray(0, c.width)); // nonzero: it accumulates
    const before = Float64Array.from(dScale);
    ref.affineBackward(x, h, scale, wy, wl, dx, dh, dScale, c.batch, c.dim, c.offset, c.width);
    const gx = numericalGradient(loss, x);
    // Only the transformed columns are the kernel's; the others stay as they were (0 here).
    expectClose(
      dx,
      gx.map((v, i) => (inColumns(c, i) ? v : 0)),
      tol,
      'dx',
    );
    expectClose(dh, numericalGradient(loss, h), tol, 'dh');
    expectClose(
      dScale.map((v, j) => v - before[j]),
      numericalGradient(loss, scale),
      tol,
      'dScale',
    );
  });

  it.each(COLS.filter((c) => c.batch < 100))('scaleBackward: dx and dLogScale ($dim)', (c) => {
    const d = kernelData(c, 9);
    const x = Float64Array.from(d.x);
    const logScale = Float64Array.from(d.logScale);
    const y = new Float64Array(c.batch * c.dim);
    const ld = new Float64Array(c.batch);
    const loss = () => {
      ref.scaleForward(x, logScale, y, ld, c.batch, c.dim);
      return dot(y, d.dy) + dot(ld, d.dLogDet);
    };
    const dx = new Float64Array(c.batch * c.dim);
    const dLogScale = new Float64Array(c.dim).fill(0.5);
    ref.scaleBackward(x, logScale, d.dy, d.dLogDet, dx, dLogScale, c.batch, c.dim);
    expectClose(dx, numericalGradient(loss, x), tol, 'dx');
    expectClose(
      dLogScale.map((v) => v - 0.5),
      numericalGradient(loss, logScale),
      tol,
      'dLogScale',
    );
  });

  it('additiveBackward: dx_b = dh = dy_b', () => {
    const c = COLS[5];
    const d = kernelData(c, 11);
    const x = Float64Array.from(d.x);
    const m = Float64Array.from(d.m);
    const y = new Float64Array(c.batch * c.dim);
    const loss = () => {
      ref.additiveForward(x, m, y, c.batch, c.dim, c.offset, c.width);
      return dot(y, d.dy);
    };
    const dx = new Float64Array(c.batch * c.dim);
    const dh = new Float64Array(c.batch * c.width);
    ref.additiveBackward(d.dy, dx, dh, c.batch, c.dim, c.offset, c.width);
    expectClose(dx, numericalGradient(loss, x), tol, 'dx');
    expectClose(dh, numericalGradient(loss, m), tol, 'dh');
  });
});

describe.skipIf(!cpu)('coupling kernels: cpu (float32) vs reference (float64)', () => {
  // Both backends get the same float32 input values. Elementwise results
  // (y, x, dx, dh): float32 tanh/exp are within ~3 ulp, so each element is
  // within ~1e-6 relative of |x e^s| + |t| ≤ 2·e^1.5 + 1 ≈ 10: atol 2e-5,
  // rtol 2e-6. Log-dets: a float32 sum of ≤ 21 terms |s| ≤ 1.5 with rounding
  // ~ eps32·Σ|s| ≈ 4e-6: atol 2e-5. Parameter gradients sum ≤ 700 rows of
  // terms up to ~20 (float32 within blocks of 256 rows, then float64):
  // ~sqrt(256)·eps32·Σ|terms|: rtol 1e-5 plus atol 1e-3 for sums that cancel.
  const elementwise: Tolerance = { atol: 2e-5, rtol: 2e-6 };
  const rowSums: Tolerance = { atol: 2e-5, rtol: 2e-6 };
  const paramSums: Tolerance = { atol: 1e-3, rtol: 1e-5 };
  const exact: Tolerance = { atol: 0, rtol: 0 };
  const TOLERANCES: Record<string, Tolerance> = {
    gather: exact,
    scatterDx: { atol: 1e-6, rtol: 1e-7 }, // one float32 addition
    scatterContext: { atol: 1e-6, rtol: 1e-7 },
    affineY: elementwise,
    affineLogDet: rowSums,
    affineX: elementwise,
    affineInverseLogDet: rowSums,
    affineDx: elementwise,
    affineDh: elementwise,
    affineDScale: paramSums,
    additiveY: { atol: 1e-6, rtol: 1e-7 },
    additiveX: { atol: 1e-6, rtol: 1e-7 },
    additiveDx: exact,
    additiveDh: exact,
    scaleY: elementwise,
    scaleLogDet: rowSums,
    scaleX: elementwise,
    scaleInverseLogDet: rowSums,
    scaleDx: elementwise,
    scaleDLogScale: paramSums,
  };

  it.each(COLS)('every kernel output at $batch × $dim, columns from $offset, width $width, context $contextDim', (c) => {
    const d = kernelData(c, 13);
    const want = runKernels(reference, c, d);
    const got = runKernels(cpu!, c, d);
    expect(Object.keys(got).sort()).toEqual(Object.keys(TOLERANCES).sort());
    for (const [name, tol] of Object.entries(TOLERANCES)) expectClose(got[name], want[name], tol, `${name} (${colsName(c)})`);
    // The untouched columns still hold the sentinel on cpu (compared exactly above against the reference too).
    for (const name of ['affineY', 'affineX', 'affineDx', 'additiveY', 'additiveX', 'additiveDx']) {
      got[name].forEach((v, i) => {
        if (!inColumns(c, i) && v !== 7.25) expect.fail(`${name}[${i}] outside the columns was written: ${v}`);
      });
    }
  });

  it('propagates NaN in ŝ and t into y (no silent saturation)', () => {
    const x = Float32Array.from([1, 1]);
    const h = Float32Array.from([NaN, 0, 0, NaN]);
    const y = new Float32Array(2);
    const ld = new Float32Array(1);
    cpu!.coupling.affineForward(x, h, Float32Array.from([1, 1]), y, ld, 1, 2, 0, 2);
    expect(Number.isNaN(y[0])).toBe(true);
    expect(Number.isNaN(y[1])).toBe(true);
    expect(Number.isNaN(ld[0])).toBe(true);
  });

  it('exp of large |s| overflows to ∞ and underflows to 0 as in float32 libm', () => {
    // s = scale·tanh(ŝ) with ŝ = 20 (tanh = 1): s = 100 → e^s = ∞; s = −100 → 0.
    const x = Float32Array.from([1, 1, 1]);
    const h = Float32Array.from([20, -20, 1, 0, 0, 0]);
    const scale = Float32Array.from([100, 100, 88]);
    const y = new Float32Array(3);
    cpu!.coupling.affineForward(x, h, scale, y, new Float32Array(1), 1, 3, 0, 3);
    expect(y[0]).toBe(Infinity);
    expect(y[1]).toBe(0);
    // s = 88·tanh(1) ≈ 67 carries float32 rounding of ~|s|·3 eps32 ≈ 2.4e-5, which e^s turns into relative error.
    expectClose([y[2]], [Math.exp(88 * Math.tanh(1))], { atol: 0, rtol: 5e-5 }, 'e^(88 tanh 1)');
  });
});

// ---- modules ----------------------------------------------------------------------

type Kind = 'realnvp' | 'nice';

interface FlowCase {
  kind: Kind;
  dim: number;
  layers: number;
  contextDim: number;
  hidden: number[];
}

function makeFlow(backend: Backend, fc: FlowCase, activation: 'tanh' | 'relu' | 'elu' = 'tanh'): Flow {
  const options = { dim: fc.dim, layers: fc.layers, contextDim: fc.contextDim, hidden: fc.hidden, activation, seed: 3, backend };
  return fc.kind === 'realnvp' ? new RealNVPFlow(options) : new NICEFlow(options);
}

/**
 * Moves every parameter off its initial value (the zero last layer makes a
 * fresh flow the identity, where many gradients vanish): values on ±0.5,
 * affine scales on [0.5, 1.5], rounded to float32 so both backends agree.
 */
function randomizeParameters(flow: Flow, seed: number, source?: Flow): void {
  const params = flow.parameters();
  const from = source?.parameters();
  params.forEach((p, i) => {
    if (from) {
      p.value.set(from[i].value);
      return;
    }
    const isScale = /\.scale$/.test(p.name);
    const v = asFloat32Values(randomArray(p.value.length, seed + 97 * i, isScale ? 0.5 : -0.5, isScale ? 1.5 : 0.5));
    p.value.set(v);
  });
}

function callOptions(flow: Flow, batch: number, seed: number) {
  return flow.contextDim > 0 ? { context: asFloat32Values(randomArray(batch * flow.contextDim, seed, -1, 1)) } : undefined;
}

const FLOW_CASES: FlowCase[] = [
  { kind: 'realnvp', dim: 2, layers: 2, contextDim: 0, hidden: [5] },
  { kind: 'realnvp', dim: 3, layers: 3, contextDim: 2, hidden: [4, 3] },
  { kind: 'realnvp', dim: 5, layers: 2, contextDim: 0, hidden: [6] },
  { kind: 'nice', dim: 2, layers: 2, contextDim: 1, hidden: [5] },
  { kind: 'nice', dim: 5, layers: 3, contextDim: 0, hidden: [4, 4] },
  { kind: 'realnvp', dim: 8, layers: 2, contextDim: 3, hidden: [6] },
];

describe('CouplingFlow: structure', () => {
  it('splits by halves, the second half one wider for odd dim, and alternates the transformed half', () => {
    const flow = new RealNVPFlow({ dim: 5, layers: 3, backend: reference, hidden: [3] });
    const layers = flow.flows as CouplingFlow[];
    expect(layers.map((l) => [l.transformed, l.offset, l.width, l.condOffset, l.condWidth])).toEqual([
      ['second', 2, 3, 0, 2],
      ['first', 0, 2, 2, 3],
      ['second', 2, 3, 0, 2],
    ]);
    expect(layers[0].conditioner.inDim).toBe(2);
    expect(layers[0].conditioner.outDim).toBe(6); // [ŝ | t] for 3 columns
    expect(layers[1].conditioner.outDim).toBe(4);
  });

  it.each([reference, ...(cpu ? [cpu] : [])].map((b) => [b.name, b] as const))(
    'passes the conditioning half through bit for bit and transforms every coordinate after two layers [%s]',
    (_name, backend) => {
      const flow = makeFlow(backend, { kind: 'realnvp', dim: 7, layers: 2, contextDim: 0, hidden: [8] });
      randomizeParameters(flow, 1);
      const batch = 3;
      const x = backend.from(randomArray(batch * 7, 2, -1, 1));
      const first = (flow as RealNVPFlow).flows[0];
      const y1 = first.forward(x, batch).y;
      for (let r = 0; r < batch; r++) {
        for (let j = 0; j < 7; j++) {
          if (j < 3) expect(y1[r * 7 + j]).toBe(x[r * 7 + j]);
          else expect(y1[r * 7 + j]).not.toBe(x[r * 7 + j]);
        }
      }
      const y = flow.forward(x, batch).y;
      for (let i = 0; i < y.length; i++) expect(y[i]).not.toBe(x[i]);
    },
  );

  it.each(['realnvp', 'nice'] as const)('a fresh %s stack is the identity (zero last conditioner layer, unit scaling)', (kind) => {
    for (const backend of [reference, ...(cpu ? [cpu] : [])]) {
      const flow = makeFlow(backend, { kind, dim: 6, layers: 4, contextDim: 2, hidden: [8, 8] }, 'relu');
      const x = backend.from(randomArray(4 * 6, 3));
      const out = flow.forward(x, 4, { context: backend.from(randomArray(8, 4)) });
      expect(Array.from(out.y)).toEqual(Array.from(x));
      expect(Array.from(out.logDet)).toEqual([0, 0, 0, 0]);
    }
  });

  it('names parameters by layer, as the optimizer and checkpoints see them', () => {
    const names = new NICEFlow({ dim: 4, layers: 2, hidden: [3], backend: reference }).parameters().map((p) => p.name);
    expect(names).toEqual([
      '0.conditioner.0.weight',
      '0.conditioner.0.bias',
      '0.conditioner.2.weight',
      '0.conditioner.2.bias',
      '1.conditioner.0.weight',
      '1.conditioner.0.bias',
      '1.conditioner.2.weight',
      '1.conditioner.2.bias',
      '2.logScale',
    ]);
    const realnvp = new RealNVPFlow({ dim: 4, layers: 1, hidden: [3], backend: reference }).parameters().map((p) => p.name);
    expect(realnvp).toEqual(['0.conditioner.0.weight', '0.conditioner.0.bias', '0.conditioner.2.weight', '0.conditioner.2.bias', '0.scale']);
  });

  it('reuses its buffers across calls (no allocation per call in steady state)', () => {
    const flow = makeFlow(reference, { kind: 'realnvp', dim: 4, layers: 2, contextDim: 0, hidden: [3] });
    const x = randomArray(8, 1);
    const a = flow.forward(x, 2);
    const ga = flow.backward(randomArray(8, 2), randomArray(2, 3));
    const b = flow.forward(x, 2);
    const gb = flow.backward(randomArray(8, 2), randomArray(2, 3));
    expect(b.y).toBe(a.y);
    expect(b.logDet).toBe(a.logDet);
    expect(gb.gradInput).toBe(ga.gradInput);
  });

  it('registers nice and realnvp as shareable, not amortizable, taking hidden/activation/contextDim', () => {
    for (const name of ['nice', 'realnvp']) {
      const family = FLOW_FAMILIES[name];
      expect(family.shareable).toBe(true);
      expect(family.amortizable).toBe(false);
      const flow = family.create({
        dim: 4,
        layers: 3,
        amortized: false,
        seed: 1,
        backend: reference,
        extra: { hidden: [7], activation: 'elu', contextDim: 2 },
      });
      expect(flow.kind).toBe(name);
      expect(flow.contextDim).toBe(2);
      const first = (flow as RealNVPFlow).flows[0] as CouplingFlow;
      expect(first.conditioner.layers[0].outDim).toBe(7);
      expect(first.conditioner.activation).toBe('elu');
      expect((flow as RealNVPFlow).flows.length).toBe(name === 'nice' ? 4 : 3);
    }
  });
});

describe('CouplingFlow: invariants on the reference backend (float64)', () => {
  it.each(FLOW_CASES)('inverse(forward(x)) ≈ x and log-dets negate: $kind dim $dim, context $contextDim', (fc) => {
    const flow = makeFlow(reference, fc);
    randomizeParameters(flow, 5);
    const batch = 4;
    const x = randomArray(batch * fc.dim, 6, -2, 2);
    const opts = callOptions(flow, batch, 7);
    const fwd = flow.forward(x, batch, opts);
    const y = Float64Array.from(fwd.y);
    const ld = Float64Array.from(fwd.logDet);
    const inv = flow.inverse(y, batch, opts);
    // Analytic inverse in float64: exp(s)·exp(−s) and t − t round to ~1e-15 per layer.
    expectClose(inv.x, x, { atol: 1e-12, rtol: 1e-12 }, 'x');
    expectClose(
      inv.logDet,
      ld.map((v) => -v),
      { atol: 1e-12, rtol: 0 },
      'logDet',
    );
  });

  it.each(FLOW_CASES)('log-det equals log|det| of the numerical Jacobian: $kind dim $dim, context $contextDim', (fc) => {
    const flow = makeFlow(reference, fc);
    randomizeParameters(flow, 8);
    const batch = 2;
    const D = fc.dim;
    const x = randomArray(batch * D, 9, -2, 2);
    const opts = callOptions(flow, batch, 10);
    const ld = Float64Array.from(flow.forward(x, batch, opts).logDet);
    expect(ld.some((v) => Math.abs(v) > 1e-3) || fc.kind === 'nice').toBe(true);
    const h = 1e-6;
    for (let r = 0; r < batch; r++) {
      const jac = new Float64Array(D * D);
      for (let j = 0; j < D; j++) {
        const up = Float64Array.from(x);
        const down = Float64Array.from(x);
        up[r * D + j] += h;
        down[r * D + j] -= h;
        const yu = Float64Array.from(flow.forward(up, batch, opts).y);
        const yd = flow.forward(down, batch, opts).y;
        for (let i = 0; i < D; i++) jac[i * D + j] = (yu[r * D + i] - yd[r * D + i]) / (2 * h);
      }
      // Central differences of a smooth map: Jacobian entries to ~1e-9, log|det| to ~1e-8.
      expect(Math.abs(logAbsDet(jac, D) - ld[r])).toBeLessThan(1e-6);
    }
  });

  it.each(FLOW_CASES)('gradients of input, every parameter and context vs central differences: $kind dim $dim, context $contextDim', (fc) => {
    const flow = makeFlow(reference, fc);
    randomizeParameters(flow, 11);
    const batch = 3;
    const x = randomArray(batch * fc.dim, 12, -2, 2);
    const opts = callOptions(flow, batch, 13);
    const wy = randomArray(batch * fc.dim, 14);
    const wl = randomArray(batch, 15);
    const loss = () => {
      const out = flow.forward(x, batch, opts);
      return dot(out.y, wy) + dot(out.logDet, wl);
    };
    loss();
    for (const p of flow.parameters()) p.grad.fill(0);
    const grads = flow.backward(wy, wl);
    const gx = Float64Array.from(grads.gradInput);
    const gc = grads.gradContext ? Float64Array.from(grads.gradContext) : null;
    expect(gc === null).toBe(fc.contextDim === 0);
    const paramGrads = flow.parameters().map((p) => Float64Array.from(p.grad));
    // Smooth loss (tanh conditioners), h = 1e-6: error ~1e-9 absolute.
    const tol = { atol: 1e-6, rtol: 1e-6 };
    expectClose(gx, numericalGradient(loss, x), tol, 'input');
    if (gc) expectClose(gc, numericalGradient(loss, opts!.context), tol, 'context');
    flow.parameters().forEach((p, i) => expectClose(paramGrads[i], numericalGradient(loss, p.value), tol, p.name));
  });
});

describe.skipIf(!cpu)('CouplingFlow: cpu (float32) vs reference (float64), same parameters', () => {
  // Sizes: batch 1 and batches off the SIMD width; dim 2, odd dims (3, 17,
  // second half one wider), 40; with and without context; conditioners deep
  // enough for the dense kernels' blocking to matter.
  const CASES: (FlowCase & { batch: number })[] = [
    { kind: 'realnvp', dim: 2, layers: 2, contextDim: 0, hidden: [5], batch: 1 },
    { kind: 'realnvp', dim: 3, layers: 3, contextDim: 2, hidden: [9, 7], batch: 7 },
    { kind: 'realnvp', dim: 17, layers: 4, contextDim: 3, hidden: [33], batch: 13 },
    { kind: 'realnvp', dim: 40, layers: 2, contextDim: 0, hidden: [64, 64], batch: 37 },
    { kind: 'nice', dim: 3, layers: 2, contextDim: 0, hidden: [6], batch: 1 },
    { kind: 'nice', dim: 17, layers: 3, contextDim: 4, hidden: [20, 20], batch: 9 },
  ];
  // Each layer's conditioner output is a float32 matrix product of depth
  // ≤ 64 with |terms| ≤ ~0.5 (error ~sqrt(64)·eps32·Σ|terms| ≈ 1e-5), and
  // errors compound mildly through ≤ 4 layers with |∂y/∂x| ≲ e^1.5: 5e-5 on
  // y, input/context gradients and log-dets (a sum over ≤ 20 columns).
  // Parameter gradients sum over the batch as well (≤ 37 rows): 2e-4.
  const values: Tolerance = { atol: 5e-5, rtol: 5e-5 };
  const sums: Tolerance = { atol: 2e-4, rtol: 1e-4 };

  it.each(CASES)('forward, log-det, inverse and every gradient: $kind dim $dim, batch $batch, context $contextDim', (fc) => {
    const refFlow = makeFlow(reference, fc);
    randomizeParameters(refFlow, 21);
    const cpuFlow = makeFlow(cpu!, fc);
    randomizeParameters(cpuFlow, 0, refFlow);
    const x = asFloat32Values(randomArray(fc.batch * fc.dim, 22, -2, 2));
    const opts = callOptions(refFlow, fc.batch, 23);
    const cpuOpts = opts && { context: cpu!.from(opts.context) };
    const wy = asFloat32Values(randomArray(fc.batch * fc.dim, 24));
    const wl = asFloat32Values(randomArray(fc.batch, 25));

    const a = refFlow.forward(x, fc.batch, opts);
    const b = cpuFlow.forward(cpu!.from(x), fc.batch, cpuOpts);
    expectClose(b.y, a.y, values, 'y');
    expectClose(b.logDet, a.logDet, values, 'logDet');
    for (const f of [refFlow, cpuFlow]) for (const p of f.parameters()) p.grad.fill(0);
    const ga = refFlow.backward(wy, wl);
    const gb = cpuFlow.backward(cpu!.from(wy), cpu!.from(wl));
    expectClose(gb.gradInput, ga.gradInput, values, 'gradInput');
    if (fc.contextDim > 0) expectClose(gb.gradContext!, ga.gradContext!, values, 'gradContext');
    else expect(gb.gradContext).toBeNull();
    const pa = refFlow.parameters();
    cpuFlow.parameters().forEach((p, i) => expectClose(p.grad, pa[i].grad, sums, p.name));

    const y = Float64Array.from(a.y);
    const ia = refFlow.inverse(y, fc.batch, opts);
    const ib = cpuFlow.inverse(cpu!.from(y), fc.batch, cpuOpts);
    expectClose(ib.x, ia.x, values, 'inverse x');
    expectClose(ib.x, x, values, 'cpu round trip');
    expectClose(ib.logDet, ia.logDet, values, 'inverse logDet');
  });
});

describe('CouplingTransform plug-in point', () => {
  /**
   * A transform written only against the interface (as a spline would be):
   * y_b = x_b·(1 + a²) + b·c + d with h = [a | b] (paramsPerDim 2, its own
   * layout per column: a_j, b_j interleaved) and an own parameter c [width],
   * plus d from initConditionerBias. Log-det Σ log(1 + a²).
   */
  class ToyTransform implements CouplingTransform {
    readonly kind = 'toy';
    readonly paramsPerDim = 2;
    readonly width: number;
    readonly c: Parameter;
    biasSeen: number[] = [];
    constructor(spec: CouplingTransformSpec) {
      this.width = spec.width;
      this.c = createParameter(spec.backend, 'c', [spec.width]);
      this.c.value.set(randomArray(spec.width, spec.seed));
    }
    parameters() {
      return [this.c];
    }
    initConditionerBias(bias: FloatArray) {
      this.biasSeen = Array.from(bias);
      for (let j = 0; j < this.width; j++) bias[2 * j] = 0.5; // a = 0.5 at the start
    }
    forward(x: FloatArray, h: FloatArray, y: FloatArray, logDet: FloatArray, batch: number, dim: number, offset: number) {
      for (let r = 0; r < batch; r++) {
        let ld = 0;
        for (let j = 0; j < this.width; j++) {
          const a = h[r * 2 * this.width + 2 * j];
          const b = h[r * 2 * this.width + 2 * j + 1];
          y[r * dim + offset + j] = x[r * dim + offset + j] * (1 + a * a) + b * this.c.value[j];
          ld += Math.log(1 + a * a);
        }
        logDet[r] = ld;
      }
    }
    inverse(y: FloatArray, h: FloatArray, x: FloatArray, logDet: FloatArray, batch: number, dim: number, offset: number) {
      for (let r = 0; r < batch; r++) {
        let ld = 0;
        for (let j = 0; j < this.width; j++) {
          const a = h[r * 2 * this.width + 2 * j];
          const b = h[r * 2 * this.width + 2 * j + 1];
          x[r * dim + offset + j] = (y[r * dim + offset + j] - b * this.c.value[j]) / (1 + a * a);
          ld -= Math.log(1 + a * a);
        }
        logDet[r] = ld;
      }
    }
    backward(x: FloatArray, h: FloatArray, dy: FloatArray, dLogDet: FloatArray, dx: FloatArray, dh: FloatArray, batch: number, dim: number, offset: number) {
      for (let r = 0; r < batch; r++) {
        for (let j = 0; j < this.width; j++) {
          const a = h[r * 2 * this.width + 2 * j];
          const b = h[r * 2 * this.width + 2 * j + 1];
          const g = dy[r * dim + offset + j];
          dx[r * dim + offset + j] = g * (1 + a * a);
          dh[r * 2 * this.width + 2 * j] = g * x[r * dim + offset + j] * 2 * a + (dLogDet[r] * 2 * a) / (1 + a * a);
          dh[r * 2 * this.width + 2 * j + 1] = g * this.c.value[j];
          this.c.grad[j] += g * b;
        }
      }
    }
  }

  it('a transform written against the interface gets its conditioner, bias hook, parameters, context and gradients', () => {
    let made: ToyTransform | null = null;
    const flow = new CouplingFlow({
      dim: 5,
      transform: (spec) => (made = new ToyTransform(spec)),
      transformed: 'first',
      hidden: [4],
      activation: 'tanh',
      contextDim: 2,
      seed: 1,
      backend: reference,
    });
    expect(flow.kind).toBe('coupling-toy');
    expect(made!.width).toBe(2);
    expect(made!.biasSeen).toEqual([0, 0, 0, 0]); // zero last layer when the hook runs
    expect(flow.conditioner.outDim).toBe(4);
    expect(flow.parameters().map((p) => p.name)).toEqual(['conditioner.0.weight', 'conditioner.0.bias', 'conditioner.2.weight', 'conditioner.2.bias', 'c']);
    // At the start a = 0.5, b = 0: y_b = 1.25 x_b exactly, log-det 2 log 1.25.
    const x0 = randomArray(5, 1);
    const ctx0 = randomArray(2, 2);
    const start = flow.forward(x0, 1, { context: ctx0 });
    expectClose(start.y, [1.25 * x0[0], 1.25 * x0[1], x0[2], x0[3], x0[4]], { atol: 1e-15, rtol: 1e-15 }, 'start');
    expect(start.logDet[0]).toBeCloseTo(2 * Math.log(1.25), 14);

    randomizeParameters(flow, 3);
    const batch = 2;
    const x = randomArray(batch * 5, 4, -2, 2);
    const context = randomArray(batch * 2, 5);
    const wy = randomArray(batch * 5, 6);
    const wl = randomArray(batch, 7);
    const loss = () => {
      const out = flow.forward(x, batch, { context });
      return dot(out.y, wy) + dot(out.logDet, wl);
    };
    loss();
    for (const p of flow.parameters()) p.grad.fill(0);
    const g = flow.backward(wy, wl);
    const gx = Float64Array.from(g.gradInput);
    const gc = Float64Array.from(g.gradContext!);
    const gp = flow.parameters().map((p) => Float64Array.from(p.grad));
    const tol = { atol: 1e-6, rtol: 1e-6 };
    expectClose(gx, numericalGradient(loss, x), tol, 'input');
    expectClose(gc, numericalGradient(loss, context), tol, 'context');
    flow.parameters().forEach((p, i) => expectClose(gp[i], numericalGradient(loss, p.value), tol, p.name));
    const y = Float64Array.from(flow.forward(x, batch, { context }).y);
    expectClose(flow.inverse(y, batch, { context }).x, x, { atol: 1e-12, rtol: 1e-12 }, 'round trip');
  });

  it('AffineCouplingTransform plugs into CouplingFlow directly', () => {
    const flow = new CouplingFlow({ dim: 3, transform: (s) => new AffineCouplingTransform(s), hidden: [2], backend: reference });
    expect(flow.kind).toBe('coupling-affine');
    expect(
      flow
        .parameters()
        .map((p) => p.name)
        .at(-1),
    ).toBe('scale');
  });
});

describe('coupling: argument errors', () => {
  it('refuses dim 1: a coupling layer needs a half to condition on', () => {
    const e = thrown(() => new RealNVPFlow({ dim: 1, backend: reference }));
    expect(e).toBeInstanceOf(RangeError);
    expect(e.code).toBe('ERR_ARG');
    expect(e.message).toBe('Expected integer ≥ 2 (a coupling layer conditions one half on the other) for "dim" but received 1 (number)');
    expect(() => FLOW_FAMILIES.nice.create({ dim: 1, layers: 2, amortized: false, seed: 0, backend: reference, extra: {} })).toThrow(
      'Expected integer ≥ 2 (a coupling layer conditions one half on the other) for "dim" but received 1 (number)',
    );
  });

  it.each([
    [{ dim: 4, layers: 0 }, RangeError, 'Expected positive integer for "layers" but received 0 (number)'],
    [{ dim: 4, hidden: [3, 0] }, RangeError, 'Expected positive integer for "hidden[1]" but received 0 (number)'],
    [{ dim: 4, hidden: 8 }, TypeError, 'Expected array of positive integers for "hidden" but received 8 (number)'],
    [{ dim: 4, activation: 'swish' }, RangeError, 'for "activation" but received "swish" (string)'],
    [{ dim: 4, contextDim: -1 }, RangeError, 'Expected non-negative integer for "contextDim" but received -1 (number)'],
    [{ dim: 2.5 }, RangeError, 'Expected positive integer for "dim" but received 2.5 (number)'],
  ])('RealNVPFlow(%j) throws', (options, kind, message) => {
    const e = thrown(() => new RealNVPFlow({ backend: reference, ...(options as { dim: number }) }));
    expect(e).toBeInstanceOf(kind);
    expect(e.message).toContain(message);
  });

  it('refuses a bad transformed half, a transform of the wrong width, and unknown registry options', () => {
    expect(() => new CouplingFlow({ dim: 4, transform: (s) => new AffineCouplingTransform(s), transformed: 'middle' as 'first', backend: reference })).toThrow(
      'Expected one of "first", "second" for "transformed" but received "middle" (string)',
    );
    expect(() => new CouplingFlow({ dim: 5, transform: (s) => new AffineCouplingTransform({ ...s, width: 2 }), backend: reference })).toThrow(
      'Expected transform of width 3 for "transform.width" but received 2 (number)',
    );
    expect(() => new CouplingFlow({ dim: 4, transform: 'affine' as never, backend: reference })).toThrow(
      'Expected transform factory function for "transform" but received "affine" (string)',
    );
    expect(() => FLOW_FAMILIES.realnvp.create({ dim: 4, layers: 2, amortized: false, seed: 0, backend: reference, extra: { depth: 3 } })).toThrow(
      'Unknown option "depth" in "posterior"; expected one of "hidden", "activation", "contextDim"',
    );
  });

  it('checks the call: batch, x, context; backward needs a forward (and not an inverse) first', () => {
    const flow = makeFlow(reference, { kind: 'realnvp', dim: 4, layers: 2, contextDim: 2, hidden: [3] });
    expect(() => flow.forward(new Float64Array(8), 0)).toThrow('Expected positive integer for "batch" but received 0 (number)');
    expect(() => flow.forward(new Float64Array(8), 2)).toThrow('Expected Float32Array or Float64Array for "context" but received undefined');
    expect(() => flow.forward(new Float64Array(7), 2, { context: new Float64Array(4) })).toThrow(
      'Expected Float64Array of length 8 for "x" but received Float64Array(7)',
    );
    expect(() => flow.backward(new Float64Array(8), new Float64Array(2))).toThrow('backward called before forward');
    flow.forward(new Float64Array(8), 2, { context: new Float64Array(4) });
    expect(() => flow.backward(new Float64Array(6), new Float64Array(2))).toThrow(
      'Expected Float64Array of length 8 for "gradOutput" but received Float64Array(6)',
    );
    flow.inverse(new Float64Array(8), 2, { context: new Float64Array(4) });
    expect(() => flow.backward(new Float64Array(8), new Float64Array(2))).toThrow('backward called before forward');
  });

  // The same checks, and the same messages, on every backend's kernels.
  const backends = [reference, ...(cpu ? [cpu] : [])];
  describe.each(backends.map((b) => [b.name, b] as const))('kernels [%s]', (_name, backend) => {
    const k: CouplingKernels = backend.coupling;
    const A = (n: number) => backend.alloc(n);
    const arrayKind = backend.dtype === 'float32' ? 'Float32Array' : 'Float64Array';

    it('refuses columns outside the rows', () => {
      let e = thrown(() => k.affineForward(A(6), A(8), A(4), A(6), A(2), 2, 3, 0, 4));
      expect(e).toBeInstanceOf(RangeError);
      expect(e.message).toBe('Expected integer in [0, 3] for "width" but received 4 (number)');
      e = thrown(() => k.additiveForward(A(10), A(4), A(10), 2, 5, 4, 2));
      expect(e).toBeInstanceOf(RangeError);
      expect(e.message).toBe('Expected integer in [0, 3] for "offset" but received 4 (number)');
      e = thrown(() => k.gather(A(10), null, A(4), 2, 5, 1.5, 2, 0));
      expect(e.message).toBe('Expected non-negative integer for "offset" but received 1.5 (number)');
    });

    it('refuses wrong lengths, naming the first bad argument', () => {
      let e = thrown(() => k.affineForward(A(6), A(7), A(1), A(6), A(2), 2, 3, 2, 1));
      expect(e).toBeInstanceOf(RangeError);
      expect(e.code).toBe('ERR_SHAPE');
      expect(e.message).toBe(`Expected ${arrayKind} of length 4 for "h" but received ${arrayKind}(7)`);
      e = thrown(() => k.affineBackward(A(6), A(4), A(1), A(6), A(2), A(6), A(4), A(2), 2, 3, 2, 1));
      expect(e.message).toBe(`Expected ${arrayKind} of length 1 for "dScale" but received ${arrayKind}(2)`);
      e = thrown(() => k.scaleBackward(A(6), A(3), A(6), A(1), A(6), A(3), 2, 3));
      expect(e.message).toBe(`Expected ${arrayKind} of length 2 for "dLogDet" but received ${arrayKind}(1)`);
      e = thrown(() => k.gather(A(6), A(3), A(6), 2, 3, 0, 1, 2));
      expect(e.message).toBe(`Expected ${arrayKind} of length 4 for "context" but received ${arrayKind}(3)`);
    });

    it('requires the context when contextDim > 0 and refuses overlapping outputs', () => {
      let e = thrown(() => k.gather(A(6), null, A(6), 2, 3, 0, 1, 2));
      expect(e).toBeInstanceOf(TypeError);
      expect(e.message).toMatch(/^Expected Float32Array( or Float64Array)? for "context" but received null$/);
      const shared = A(12);
      e = thrown(() => k.affineForward(shared.subarray(0, 6), A(4), A(1), shared.subarray(4, 10), A(2), 2, 3, 2, 1));
      expect(e).toBeInstanceOf(RangeError);
      expect(e.message).toBe(`Expected ${arrayKind} not overlapping "x" for "y" but received ${arrayKind}(6)`);
      e = thrown(() => k.scatterAdd(A(6), shared.subarray(0, 6), shared.subarray(2, 6), 2, 3, 0, 1, 2));
      expect(e.message).toBe(`Expected ${arrayKind} not overlapping "dx" for "dContext" but received ${arrayKind}(4)`);
    });
  });
});
