/**
 * Cases and comparisons of the lstm cross-checks, shared by test/lstm.test.ts
 * and its capped-SIMD child test/lstm.simd.ts.
 */
import type { Backend } from '../src/backend/backend';
import { lstmStashSize, lstmWorkSize } from '../src/backend/kernels/lstm';
import type { FloatArray } from '../src/backend/types';

// Test data, as test/helpers.ts makes it (that file imports vitest, which this
// module's child process cannot load).
export interface Tolerance {
  atol: number;
  rtol: number;
}

function randomArray(n: number, seed: number, lo: number, hi: number): Float64Array {
  let a = seed >>> 0;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = lo + (hi - lo) * (((t ^ (t >>> 14)) >>> 0) / 4294967296);
  }
  return out;
}

const asFloat32Values = (a: Float64Array): Float64Array => Float64Array.from(Float32Array.from(a));

export interface Case {
  batch: number;
  steps: number;
  inDim: number;
  hidden: number;
  /** null: every row full length. */
  lengths: number[] | null;
  /** h0/c0 and biases given (else null). */
  withState: boolean;
  withBias: boolean;
}

export interface Inputs {
  x: Float64Array;
  h0: Float64Array | null;
  c0: Float64Array | null;
  weightIh: Float64Array;
  weightHh: Float64Array;
  biasIh: Float64Array | null;
  biasHh: Float64Array | null;
  dy: Float64Array;
  dhn: Float64Array;
  dcn: Float64Array;
}

/** Inputs rounded to float32 so both backends see the same values; weights on PyTorch's init range ±1/√H. */
export function makeInputs(c: Case, seed: number): Inputs {
  const { batch: B, steps: T, inDim: I, hidden: H } = c;
  const k = 1 / Math.sqrt(H);
  const r = (n: number, s: number, lo = -1, hi = 1) => asFloat32Values(randomArray(n, seed * 131 + s, lo, hi));
  return {
    x: r(B * T * I, 1, -2, 2),
    h0: c.withState ? r(B * H, 2) : null,
    c0: c.withState ? r(B * H, 3, -2, 2) : null,
    weightIh: r(4 * H * I, 4, -k, k),
    weightHh: r(4 * H * H, 5, -k, k),
    biasIh: c.withBias ? r(4 * H, 6, -k, k) : null,
    biasHh: c.withBias ? r(4 * H, 7, -k, k) : null,
    dy: r(B * T * H, 8),
    dhn: r(B * H, 9),
    dcn: r(B * H, 10),
  };
}

export interface Outputs {
  y: FloatArray;
  hn: FloatArray;
  cn: FloatArray;
  dx: FloatArray;
  dh0: FloatArray;
  dc0: FloatArray;
  dWeightIh: FloatArray;
  dWeightHh: FloatArray;
  dBiasIh: FloatArray;
  dBiasHh: FloatArray;
}

export const OUTPUT_NAMES = ['y', 'hn', 'cn', 'dx', 'dh0', 'dc0', 'dWeightIh', 'dWeightHh', 'dBiasIh', 'dBiasHh'] as const;

export function run(backend: Backend, c: Case, inp: Inputs, lengthsOverride?: Uint32Array | null): Outputs {
  const { batch: B, steps: T, inDim: I, hidden: H } = c;
  const f = (a: Float64Array | null) => (a ? backend.from(a) : null);
  const lengths = lengthsOverride !== undefined ? lengthsOverride : c.lengths ? Uint32Array.from(c.lengths) : null;
  const x = backend.from(inp.x);
  const wIh = backend.from(inp.weightIh);
  const wHh = backend.from(inp.weightHh);
  const o = {
    y: backend.alloc(B * T * H),
    hn: backend.alloc(B * H),
    cn: backend.alloc(B * H),
    dx: backend.alloc(B * T * I),
    dh0: backend.alloc(B * H),
    dc0: backend.alloc(B * H),
    dWeightIh: backend.alloc(4 * H * I),
    dWeightHh: backend.alloc(4 * H * H),
    dBiasIh: backend.alloc(4 * H),
    dBiasHh: backend.alloc(4 * H),
  };
  // Stash and work start as NaN: the kernels must not read what they did not write.
  const stash = backend.alloc(lstmStashSize(B, T, H)).fill(NaN);
  const work = backend.alloc(lstmWorkSize(B, T, H)).fill(NaN);
  backend.lstm.forward(x, lengths, f(inp.h0), f(inp.c0), wIh, wHh, f(inp.biasIh), f(inp.biasHh), o.y, o.hn, o.cn, stash, B, T, I, H);
  backend.lstm.backward(
    x,
    lengths,
    wIh,
    wHh,
    stash,
    backend.from(inp.dy),
    backend.from(inp.dhn),
    backend.from(inp.dcn),
    o.dx,
    o.dh0,
    o.dc0,
    o.dWeightIh,
    o.dWeightHh,
    o.dBiasIh,
    o.dBiasHh,
    work,
    B,
    T,
    I,
    H,
    false,
  );
  return o;
}

export const CASES: [string, Case][] = [
  ['batch 1, one step, H 7', { batch: 1, steps: 1, inDim: 3, hidden: 7, lengths: null, withState: true, withBias: true }],
  ['ragged with an empty row, H 13', { batch: 5, steps: 6, inDim: 4, hidden: 13, lengths: [6, 0, 3, 1, 5], withState: true, withBias: true }],
  ['no state, no bias, H 16, in 1', { batch: 3, steps: 4, inDim: 1, hidden: 16, lengths: null, withState: false, withBias: false }],
  ['in 0 (recurrence only), H 9', { batch: 2, steps: 3, inDim: 0, hidden: 9, lengths: [3, 2], withState: true, withBias: true }],
  [
    'H 33 (two AVX-512 vectors and a tail), ragged',
    { batch: 7, steps: 9, inDim: 10, hidden: 33, lengths: [9, 8, 1, 9, 4, 2, 7], withState: true, withBias: true },
  ],
  ['zero steps', { batch: 2, steps: 0, inDim: 3, hidden: 5, lengths: null, withState: true, withBias: true }],
  ['long T 200, H 7, ragged', { batch: 3, steps: 200, inDim: 2, hidden: 7, lengths: [200, 137, 61], withState: true, withBias: true }],
];

// float32 against float64, with values and weights of order 1 (PyTorch's init range). Each
// float32 gate value is within a few ulp (vector tanh/sigmoid ≈ 2 ulp); the recurrence contracts
// (|f| < 1), so errors do not grow with T: measured worst 1.8e-7 on y/hn/cn up to T = 200 and
// H = 256, hence 1e-6 absolute. Gradients are sums over rows and steps (up to 28 in size): their
// errors scale with the largest entry, measured ≤ 5e-7 of it, hence 5e-6 of it, plus 1e-5 of each entry.
export const FORWARD_TOL: Tolerance = { atol: 1e-6, rtol: 1e-5 };

export function gradTol(expected: ArrayLike<number>): Tolerance {
  let m = 0;
  for (let i = 0; i < expected.length; i++) m = Math.max(m, Math.abs(expected[i]));
  return { atol: 5e-6 * Math.max(m, 1e-3), rtol: 1e-5 };
}

export function toleranceFor(name: (typeof OUTPUT_NAMES)[number], expected: ArrayLike<number>): Tolerance {
  return name === 'y' || name === 'hn' || name === 'cn' ? FORWARD_TOL : gradTol(expected);
}

/** Largest |cpu − reference| / tolerance over every output of a case (≤ 1 passes). */
export function compareLstm(cpu: Backend, reference: Backend, c: Case, seed: number): number {
  const inp = makeInputs(c, seed);
  const want = run(reference, c, inp);
  const got = run(cpu, c, inp);
  let worst = 0;
  for (const k of OUTPUT_NAMES) {
    const tol = toleranceFor(k, want[k]);
    for (let i = 0; i < want[k].length; i++) {
      const ratio = Math.abs(got[k][i] - want[k][i]) / (tol.atol + tol.rtol * Math.abs(want[k][i]));
      worst = Number.isNaN(ratio) ? Infinity : Math.max(worst, ratio);
    }
  }
  return worst;
}
