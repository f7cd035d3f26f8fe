/**
 * Dense kernels: gemm, forward, backward.
 *
 * - cpu (float32, blocked SGEMM) against reference (float64 loops) at awkward
 *   sizes, every transpose combination, alpha/beta variants, accumulate on/off
 *   and null outputs;
 * - reference against hand-computed values and central finite differences;
 * - cpu results identical at 1 and 2 threads;
 * - bad arguments on both backends: error class, .code and message text.
 *
 * Tolerance for cpu vs reference. Inputs are float32 values, so both
 * backends multiply the same numbers; the reference works in float64 (its own
 * error is ~1e-16 relative, negligible here). A float32 sum of k products,
 * accumulated in any order (the SIMD path and the k blocking change the
 * order), then scaled by alpha, added to beta·C and rounded to float32, is off
 * by at most (k + 3)·u·M with u = 2^-24 and M = |alpha|·Σ_p |a_ip b_pj| + |beta·c_ij|
 * (the classical γ_n bound for inner products, Higham §3.1, plus one rounding
 * each for alpha, beta and the store). We check every element against that
 * bound; a wrong index, a dropped k term or a mishandled edge tile is off by
 * about one term, |a·b| ≈ 0.25, orders of magnitude above it.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backendByName, getNumThreads, setNumThreads } from '../src/backend';
import type { Backend } from '../src/backend/backend';
import { asFloat32Values, describeBackends, dot, expectClose, hasCpu, numericalGradient, randomArray } from './helpers';

const U32 = 2 ** -24;
const reference = backendByName('reference');

/** Elementwise |actual − expected| ≤ (terms + 3)·u·magnitude, reporting the worst element. */
function expectWithinDotBound(actual: ArrayLike<number>, expected: ArrayLike<number>, magnitude: ArrayLike<number>, terms: number, label: string): void {
  expect(actual.length, `${label} length`).toBe(expected.length);
  let worst = -1;
  let worstRatio = 0;
  for (let i = 0; i < actual.length; i++) {
    // The smallest positive float32 normal keeps the bound meaningful when M is 0 (exact zeros).
    const bound = (terms + 3) * U32 * magnitude[i] + 1.2e-38;
    const err = Math.abs(actual[i] - expected[i]);
    const ratio = Number.isNaN(err) ? Infinity : err / bound;
    if (ratio > 1 && ratio > worstRatio) {
      worst = i;
      worstRatio = ratio;
    }
  }
  if (worst >= 0) {
    expect.fail(
      `${label}: element ${worst} is ${actual[worst]} but expected ${expected[worst]} ` +
        `(bound ${(terms + 3) * U32 * magnitude[worst]}, ${worstRatio.toFixed(1)}x over; ${actual.length} elements)`,
    );
  }
}

/** Random float32-representable values in [-1, 1). */
function data(n: number, seed: number): Float64Array {
  return asFloat32Values(randomArray(n, seed));
}

const abs = (a: ArrayLike<number>): Float64Array => Float64Array.from(a, Math.abs);
const f32 = (a: ArrayLike<number>): Float32Array => Float32Array.from(a);
const f64 = (a: ArrayLike<number>): Float64Array => Float64Array.from(a);

/** Shapes (m, n, k): 0 and 1, sizes off the SIMD widths (8, 16) and tiles (6x16, 14x32), and beyond the cache blocks (MC 140, KC 384, NC 2048). */
const GEMM_SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 33],
  [7, 1, 33],
  [33, 33, 1],
  [7, 33, 257],
  [257, 7, 33],
  [15, 17, 31],
  [14, 32, 16],
  [29, 65, 300],
  [141, 47, 385],
  [3, 2100, 5],
  // Over 2^20 multiply-adds: split across threads when there are two.
  [60, 130, 400],
  [0, 5, 3],
  [4, 0, 3],
  [4, 5, 0],
];

const TRANSPOSES: [boolean, boolean][] = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

/** alpha/beta pairs: plain product, scaled accumulate, and beta = 0 over a C full of NaN. */
const SCALINGS: { alpha: number; beta: number; nanC?: boolean }[] = [
  { alpha: 1, beta: 0, nanC: true },
  { alpha: -0.75, beta: 1.5 },
  { alpha: 2, beta: 1 },
];

describe.skipIf(!hasCpu())('dense cpu vs reference', () => {
  const cpu = hasCpu() ? backendByName('cpu') : reference;

  describe('gemm', () => {
    let seed = 1;
    for (const [m, n, k] of GEMM_SHAPES) {
      for (const [transA, transB] of TRANSPOSES) {
        const tag = `${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`;
        it(`${tag} m=${m} n=${n} k=${k}`, () => {
          for (const { alpha, beta, nanC } of SCALINGS) {
            const a = data(m * k, seed++);
            const b = data(k * n, seed++);
            const c0 = nanC ? new Float64Array(m * n).fill(NaN) : data(m * n, seed++);
            const cCpu = f32(c0);
            cpu.dense.gemm(transA, transB, m, n, k, alpha, f32(a), f32(b), beta, cCpu);
            const cRef = f64(c0);
            reference.dense.gemm(transA, transB, m, n, k, alpha, a, b, beta, cRef);
            const mag = nanC ? new Float64Array(m * n) : abs(c0);
            reference.dense.gemm(transA, transB, m, n, k, Math.abs(alpha), abs(a), abs(b), Math.abs(beta), mag);
            expectWithinDotBound(cCpu, cRef, mag, k, `${tag} alpha=${alpha} beta=${beta}`);
          }
        });
      }
    }
  });

  /** (batch, inDim, outDim): batch 1, dim 1, off the SIMD width, an MNIST layer, a large batch. */
  const LAYERS: [number, number, number][] = [
    [1, 1, 1],
    [1, 7, 33],
    [7, 33, 1],
    [33, 1, 7],
    [17, 257, 15],
    // Over 2^20 multiply-adds (split across threads), inDim past one k block (384).
    [64, 400, 150],
    [4099, 9, 5],
    [0, 3, 4],
    [3, 0, 4],
  ];

  describe('forward', () => {
    for (const [batch, inDim, outDim] of LAYERS) {
      for (const withBias of [true, false]) {
        it(`batch=${batch} in=${inDim} out=${outDim} ${withBias ? 'bias' : 'no bias'}`, () => {
          const x = data(batch * inDim, 11);
          const w = data(outDim * inDim, 12);
          const bias = withBias ? data(outDim, 13) : null;
          const yCpu = new Float32Array(batch * outDim).fill(NaN);
          cpu.dense.forward(f32(x), f32(w), bias && f32(bias), yCpu, batch, inDim, outDim);
          const yRef = new Float64Array(batch * outDim).fill(NaN);
          reference.dense.forward(x, w, bias, yRef, batch, inDim, outDim);
          const mag = new Float64Array(batch * outDim);
          reference.dense.forward(abs(x), abs(w), bias && abs(bias), mag, batch, inDim, outDim);
          expectWithinDotBound(yCpu, yRef, mag, inDim, 'y');
        });
      }
    }
  });

  describe('backward', () => {
    for (const [batch, inDim, outDim] of LAYERS) {
      for (const accumulate of [false, true]) {
        it(`batch=${batch} in=${inDim} out=${outDim} accumulate=${accumulate}`, () => {
          const x = data(batch * inDim, 21);
          const w = data(outDim * inDim, 22);
          const dy = data(batch * outDim, 23);
          // Gradient buffers start with values (accumulate adds to them) or NaN (they must be overwritten).
          const dw0 = accumulate ? data(outDim * inDim, 24) : new Float64Array(outDim * inDim).fill(NaN);
          const db0 = accumulate ? data(outDim, 25) : new Float64Array(outDim).fill(NaN);
          const dx0 = new Float64Array(batch * inDim).fill(NaN);

          const [dxC, dwC, dbC] = [f32(dx0), f32(dw0), f32(db0)];
          cpu.dense.backward(f32(x), f32(w), f32(dy), dxC, dwC, dbC, batch, inDim, outDim, accumulate);
          const [dxR, dwR, dbR] = [f64(dx0), f64(dw0), f64(db0)];
          reference.dense.backward(x, w, dy, dxR, dwR, dbR, batch, inDim, outDim, accumulate);
          const clean = (a: Float64Array) => (accumulate ? abs(a) : new Float64Array(a.length));
          const [dxM, dwM, dbM] = [new Float64Array(dx0.length), clean(dw0), clean(db0)];
          reference.dense.backward(abs(x), abs(w), abs(dy), dxM, dwM, dbM, batch, inDim, outDim, accumulate);

          expectWithinDotBound(dxC, dxR, dxM, outDim, 'dx');
          expectWithinDotBound(dwC, dwR, dwM, batch, 'dWeight');
          expectWithinDotBound(dbC, dbR, dbM, batch, 'dBias');
        });
      }
    }

    it('null outputs are skipped and the others still computed', () => {
      const [batch, inDim, outDim] = [9, 20, 17];
      const x = data(batch * inDim, 31);
      const w = data(outDim * inDim, 32);
      const dy = data(batch * outDim, 33);
      const dxR = new Float64Array(batch * inDim);
      const dwR = new Float64Array(outDim * inDim);
      const dbR = new Float64Array(outDim);
      reference.dense.backward(x, w, dy, dxR, dwR, dbR, batch, inDim, outDim, false);
      const masks = [
        [true, false, false],
        [false, true, false],
        [false, false, true],
        [false, true, true],
        [false, false, false],
      ];
      for (const [wantDx, wantDw, wantDb] of masks) {
        const dx = wantDx ? new Float32Array(batch * inDim) : null;
        const dw = wantDw ? new Float32Array(outDim * inDim) : null;
        const db = wantDb ? new Float32Array(outDim) : null;
        cpu.dense.backward(f32(x), f32(w), f32(dy), dx, dw, db, batch, inDim, outDim, false);
        // Loose check here: the exact bound is tested above; this one catches skipped or swapped outputs.
        if (dx) expectClose(dx, dxR, { atol: 1e-5, rtol: 1e-5 }, 'dx');
        if (dw) expectClose(dw, dwR, { atol: 1e-5, rtol: 1e-5 }, 'dWeight');
        if (db) expectClose(db, dbR, { atol: 1e-5, rtol: 1e-5 }, 'dBias');
      }
    });
  });

  describe('threads', () => {
    let saved = 1;
    beforeAll(() => {
      saved = getNumThreads();
    });
    afterAll(() => setNumThreads(saved));

    /** Index of the first element whose bit pattern differs (-1 when identical), so equality is exact. */
    const firstBitDifference = (x: Float32Array, y: Float32Array): number => {
      if (x.length !== y.length) return Math.min(x.length, y.length);
      const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
      const v = new Uint32Array(y.buffer, y.byteOffset, y.length);
      for (let i = 0; i < u.length; i++) if (u[i] !== v[i]) return i;
      return -1;
    };

    it('gemm and backward give bit-identical results on 1, 2 and 4 threads', () => {
      // Large enough to be split across threads (the split depends on the shape).
      const cases: [boolean, boolean, number, number, number][] = [
        [false, true, 100, 300, 784],
        [false, false, 257, 129, 200],
        [true, false, 300, 333, 100],
        [true, true, 31, 1000, 65],
      ];
      for (const [transA, transB, m, n, k] of cases) {
        const a = f32(data(m * k, 41));
        const b = f32(data(k * n, 42));
        const c0 = f32(data(m * n, 43));
        // 4 threads (more than this machine's cores) can split C along both m and n.
        const results = [1, 2, 4].map((threads) => {
          setNumThreads(threads);
          const c = c0.slice();
          cpu.dense.gemm(transA, transB, m, n, k, 0.5, a, b, 0.25, c);
          return c;
        });
        expect(firstBitDifference(results[1], results[0]), `m=${m} n=${n} k=${k}, 2 threads`).toBe(-1);
        expect(firstBitDifference(results[2], results[0]), `m=${m} n=${n} k=${k}, 4 threads`).toBe(-1);
      }
      const [batch, inDim, outDim] = [256, 300, 784];
      const x = f32(data(batch * inDim, 44));
      const w = f32(data(outDim * inDim, 45));
      const dy = f32(data(batch * outDim, 46));
      const grads = [1, 2].map((threads) => {
        setNumThreads(threads);
        const dx = new Float32Array(batch * inDim);
        const dw = new Float32Array(outDim * inDim);
        const db = new Float32Array(outDim);
        cpu.dense.backward(x, w, dy, dx, dw, db, batch, inDim, outDim, false);
        return [dx, dw, db];
      });
      for (let g = 0; g < 3; g++) expect(firstBitDifference(grads[1][g], grads[0][g]), ['dx', 'dWeight', 'dBias'][g]).toBe(-1);
    });

    it('concurrent calls from worker threads and the main thread give the same bits', async () => {
      // Only one caller at a time gets the thread pool; the others run on
      // their own thread with their own packing workspace.
      const [m, n, k] = [120, 200, 300];
      const a = f32(data(m * k, 47));
      const b = f32(data(n * k, 48));
      const expected = new Float32Array(m * n);
      cpu.dense.gemm(false, true, m, n, k, 1, a, b, 0, expected);
      const code = `
        const { parentPort, workerData } = require('node:worker_threads');
        const path = require('node:path');
        const addon = require(path.join(workerData.root, 'node_modules', 'node-gyp-build'))(workerData.root);
        const { m, n, k, a, b } = workerData;
        const results = [];
        for (let r = 0; r < 8; r++) {
          const c = new Float32Array(m * n);
          addon.denseGemm(false, true, m, n, k, 1, a, b, 0, c);
          results.push(c);
        }
        parentPort.postMessage(results);`;
      const root = path.resolve(__dirname, '..');
      const workers = [0, 1].map(
        () =>
          new Promise<Float32Array[]>((resolve, reject) => {
            const w = new Worker(code, { eval: true, workerData: { root, m, n, k, a, b } });
            w.once('message', (msg: Float32Array[]) => {
              resolve(msg);
              void w.terminate();
            });
            w.once('error', reject);
          }),
      );
      const mainResults: Float32Array[] = [];
      for (let r = 0; r < 8; r++) {
        const c = new Float32Array(m * n);
        cpu.dense.gemm(false, true, m, n, k, 1, a, b, 0, c);
        mainResults.push(c);
      }
      const all = [...mainResults, ...(await Promise.all(workers)).flat()];
      expect(all.length).toBe(24);
      for (const c of all) expect(firstBitDifference(c, expected)).toBe(-1);
    });
  });
});

describe('dense reference', () => {
  it('gemm matches hand-computed products for every transpose', () => {
    // A = [[1, 2, 3], [4, 5, 6]] (2x3), B = [[1, 0], [0, 1], [2, -1]] (3x2):
    // A·B = [[1 + 0 + 6, 0 + 2 - 3], [4 + 0 + 12, 0 + 5 - 6]] = [[7, -1], [16, -1]].
    const A = [1, 2, 3, 4, 5, 6];
    const At = [1, 4, 2, 5, 3, 6];
    const B = [1, 0, 0, 1, 2, -1];
    const Bt = [1, 0, 2, 0, 1, -1];
    for (const [transA, transB] of TRANSPOSES) {
      const c = new Float64Array([10, 20, 30, 40]);
      reference.dense.gemm(transA, transB, 2, 2, 3, 2, f64(transA ? At : A), f64(transB ? Bt : B), 0.5, c);
      // 2·AB + 0.5·C
      expect(Array.from(c)).toEqual([19, 8, 47, 18]);
    }
  });

  it('forward and backward match hand-computed values', () => {
    // x = [[1, 2]], W = [[1, -1], [0.5, 2]] (out 2, in 2), b = [0.25, -1]
    const y = new Float64Array(2);
    reference.dense.forward(f64([1, 2]), f64([1, -1, 0.5, 2]), f64([0.25, -1]), y, 1, 2, 2);
    expect(Array.from(y)).toEqual([1 - 2 + 0.25, 0.5 + 4 - 1]);
    // dy = [[1, 3]]: dx = dy·W = [1 + 1.5, -1 + 6]; dW = dyᵀ x = [[1, 2], [3, 6]]; db = [1, 3]
    const dx = new Float64Array(2);
    const dw = new Float64Array([100, 100, 100, 100]);
    const db = new Float64Array([10, 20]);
    reference.dense.backward(f64([1, 2]), f64([1, -1, 0.5, 2]), f64([1, 3]), dx, dw, db, 1, 2, 2, true);
    expect(Array.from(dx)).toEqual([2.5, 5]);
    expect(Array.from(dw)).toEqual([101, 102, 103, 106]);
    expect(Array.from(db)).toEqual([11, 23]);
  });

  describe('backward vs central finite differences (float64)', () => {
    // L = Σ y ⊙ g for a fixed random g, so ∂L/∂y = g. L is linear in each
    // single input, so the central difference has no truncation error; its
    // rounding error is about eps64·|L|/h ≈ 1e-16·10/1e-6 = 1e-9. Tolerance 1e-7.
    const tol = { atol: 1e-7, rtol: 1e-7 };
    for (const [batch, inDim, outDim] of [
      [1, 1, 1],
      [3, 5, 4],
      [6, 2, 7],
    ]) {
      it(`batch=${batch} in=${inDim} out=${outDim}`, () => {
        const x = randomArray(batch * inDim, 51);
        const w = randomArray(outDim * inDim, 52);
        const bias = randomArray(outDim, 53);
        const g = randomArray(batch * outDim, 54);
        const y = new Float64Array(batch * outDim);
        const loss = () => {
          reference.dense.forward(x, w, bias, y, batch, inDim, outDim);
          return dot(y, g);
        };
        const dx = new Float64Array(batch * inDim);
        const dw = new Float64Array(outDim * inDim);
        const db = new Float64Array(outDim);
        reference.dense.backward(x, w, g, dx, dw, db, batch, inDim, outDim, false);
        expectClose(dx, numericalGradient(loss, x), tol, 'dx');
        expectClose(dw, numericalGradient(loss, w), tol, 'dWeight');
        expectClose(db, numericalGradient(loss, bias), tol, 'dBias');
      });
    }
  });
});

describeBackends(['reference', 'cpu', 'cuda'], 'dense semantics', (backend: Backend) => {
  const arr = (values: number[]) => backend.from(values);

  it('beta = 0 overwrites C, even NaN and Infinity', () => {
    const c = arr([NaN, Infinity, -Infinity, NaN]);
    backend.dense.gemm(false, false, 2, 2, 1, 1, arr([1, 2]), arr([3, 4]), 0, c);
    expect(Array.from(c)).toEqual([3, 4, 6, 8]);
  });

  it('alpha = 0 and k = 0 only scale C by beta (A and B are not read)', () => {
    const c = arr([1, 2, 3, 4]);
    backend.dense.gemm(false, false, 2, 2, 1, 0, arr([NaN, NaN]), arr([NaN, NaN]), 3, c);
    expect(Array.from(c)).toEqual([3, 6, 9, 12]);
    backend.dense.gemm(true, true, 2, 2, 0, 1, arr([]), arr([]), -1, c);
    expect(Array.from(c)).toEqual([-3, -6, -9, -12]);
    const nanC = arr([NaN, NaN, NaN, NaN]);
    backend.dense.gemm(false, false, 2, 2, 0, 1, arr([]), arr([]), 0, nanC);
    expect(Array.from(nanC)).toEqual([0, 0, 0, 0]);
  });

  it('forward without bias, and with inDim = 0 giving the bias', () => {
    const y = arr([NaN, NaN]);
    backend.dense.forward(arr([1, 2]), arr([1, -1, 0.5, 2]), null, y, 1, 2, 2);
    expect(Array.from(y)).toEqual([-1, 4.5]);
    backend.dense.forward(arr([]), arr([]), arr([0.25, -1]), y, 1, 0, 2);
    expect(Array.from(y)).toEqual([0.25, -1]);
  });

  it('backward with batch = 0 zeroes the gradients, or leaves them when accumulating', () => {
    const dw = arr([1, 2]);
    const db = arr([3]);
    backend.dense.backward(arr([]), arr([5, 6]), arr([]), arr([]), dw, db, 0, 2, 1, true);
    expect([...dw, ...db]).toEqual([1, 2, 3]);
    backend.dense.backward(arr([]), arr([5, 6]), arr([]), arr([]), dw, db, 0, 2, 1, false);
    expect([...dw, ...db]).toEqual([0, 0, 0]);
  });
});

describeBackends(['reference', 'cpu', 'cuda'], 'dense bad arguments', (backend: Backend) => {
  const kind = backend.dtype === 'float32' ? 'Float32Array' : 'Float64Array';
  /** What the backend says it accepts where a float array is required. */
  const arrayKind = backend.name === 'reference' ? 'Float32Array or Float64Array' : 'Float32Array';
  const optionalKind = backend.name === 'reference' ? 'Float32Array or Float64Array' : 'Float32Array or null';
  const arr = (n: number) => backend.alloc(n);

  type Loose = (...args: unknown[]) => void;
  const gemm = (...args: unknown[]) => (backend.dense.gemm as unknown as Loose)(...args);
  const forward = (...args: unknown[]) => (backend.dense.forward as unknown as Loose)(...args);
  const backward = (...args: unknown[]) => (backend.dense.backward as unknown as Loose)(...args);

  function expectError(fn: () => void, ctor: typeof TypeError | typeof RangeError, code: string, message: string): void {
    let caught: unknown;
    try {
      fn();
    } catch (err) {
      caught = err;
    }
    expect(caught, message).toBeInstanceOf(ctor);
    expect((caught as { code?: string }).code).toBe(code);
    expect((caught as Error).message).toBe(message);
  }

  // A valid call: 2x3 · 3x4.
  const good = (): unknown[] => [false, false, 2, 4, 3, 1, arr(6), arr(12), 0, arr(8)];
  const withArg = (i: number, v: unknown) => {
    const args = good();
    args[i] = v;
    return args;
  };

  it('gemm: wrong lengths', () => {
    expectError(() => gemm(...withArg(6, arr(7))), RangeError, 'ERR_SHAPE', `Expected ${kind} of length 6 for "a" but received ${kind}(7)`);
    expectError(() => gemm(...withArg(7, arr(11))), RangeError, 'ERR_SHAPE', `Expected ${kind} of length 12 for "b" but received ${kind}(11)`);
    expectError(() => gemm(...withArg(9, arr(0))), RangeError, 'ERR_SHAPE', `Expected ${kind} of length 8 for "c" but received ${kind}(0)`);
  });

  it('gemm: output left untouched when an argument is refused', () => {
    const c = arr(8).fill(7);
    const args = withArg(9, c);
    args[7] = arr(5);
    expect(() => gemm(...args)).toThrow(RangeError);
    expect(Array.from(c)).toEqual(new Array(8).fill(7));
  });

  it('gemm: plain Array and non-array values', () => {
    expectError(() => gemm(...withArg(6, [1, 2, 3, 4, 5, 6])), TypeError, 'ERR_ARG', `Expected ${arrayKind} for "a" but received Array(6)`);
    expectError(() => gemm(...withArg(9, 'c')), TypeError, 'ERR_ARG', `Expected ${arrayKind} for "c" but received "c" (string)`);
    expectError(() => gemm(...withArg(7, new Int32Array(12))), TypeError, 'ERR_ARG', `Expected ${arrayKind} for "b" but received Int32Array(12)`);
  });

  it('gemm: bad sizes, flags and scalars', () => {
    expectError(() => gemm(...withArg(2, -1)), RangeError, 'ERR_ARG', 'Expected non-negative integer for "m" but received -1 (number)');
    expectError(() => gemm(...withArg(3, NaN)), RangeError, 'ERR_ARG', 'Expected non-negative integer for "n" but received NaN (number)');
    expectError(() => gemm(...withArg(4, 1.5)), RangeError, 'ERR_ARG', 'Expected non-negative integer for "k" but received 1.5 (number)');
    expectError(() => gemm(...withArg(4, '3')), TypeError, 'ERR_ARG', 'Expected non-negative integer for "k" but received "3" (string)');
    expectError(() => gemm(...withArg(0, 1)), TypeError, 'ERR_ARG', 'Expected boolean for "transA" but received 1 (number)');
    expectError(() => gemm(...withArg(1, undefined)), TypeError, 'ERR_ARG', 'Expected boolean for "transB" but received undefined');
    expectError(() => gemm(...withArg(5, NaN)), RangeError, 'ERR_ARG', 'Expected finite number for "alpha" but received NaN (number)');
    expectError(() => gemm(...withArg(8, Infinity)), RangeError, 'ERR_ARG', 'Expected finite number for "beta" but received Infinity (number)');
  });

  it('gemm: too few arguments are counted, an undefined one is named', () => {
    // Every backend counts a kernel's arguments first (src/backend/registry.ts), in the bindings' words.
    expectError(() => gemm(false, false, 2, 4), TypeError, 'ERR_ARG', 'denseGemm expects 10 arguments but received 4');
    expectError(() => gemm(false, false, 2, 4, 3, 1, arr(6), arr(12), 0), TypeError, 'ERR_ARG', 'denseGemm expects 10 arguments but received 9');
    expectError(() => gemm(), TypeError, 'ERR_ARG', 'denseGemm expects 10 arguments but received 0');
    expectError(() => gemm(...withArg(4, undefined)), TypeError, 'ERR_ARG', 'Expected non-negative integer for "k" but received undefined');
    expectError(() => gemm(...withArg(9, undefined)), TypeError, 'ERR_ARG', `Expected ${arrayKind} for "c" but received undefined`);
    expectError(() => gemm(...withArg(0, undefined)), TypeError, 'ERR_ARG', 'Expected boolean for "transA" but received undefined');
  });

  it('gemm: an output overlapping an input is refused', () => {
    const shared = arr(16);
    const a = shared.subarray(0, 6);
    const c = shared.subarray(4, 12);
    expectError(
      () => gemm(...withArg(6, a).map((v, i) => (i === 9 ? c : v))),
      RangeError,
      'ERR_ARG',
      `Expected ${kind} not overlapping "a" for "c" but received ${kind}(8)`,
    );
  });

  it('forward: wrong lengths, kinds, sizes and missing arguments', () => {
    const ok = (): unknown[] => [arr(6), arr(12), arr(4), arr(8), 2, 3, 4];
    const fwd = (i: number, v: unknown) => {
      const args = ok();
      args[i] = v;
      return forward(...args);
    };
    expect(() => forward(...ok())).not.toThrow();
    expectError(() => fwd(0, arr(5)), RangeError, 'ERR_SHAPE', `Expected ${kind} of length 6 for "x" but received ${kind}(5)`);
    expectError(() => fwd(1, arr(13)), RangeError, 'ERR_SHAPE', `Expected ${kind} of length 12 for "weight" but received ${kind}(13)`);
    expectError(() => fwd(2, arr(3)), RangeError, 'ERR_SHAPE', `Expected ${kind} of length 4 for "bias" but received ${kind}(3)`);
    expectError(() => fwd(3, arr(9)), RangeError, 'ERR_SHAPE', `Expected ${kind} of length 8 for "y" but received ${kind}(9)`);
    expectError(() => fwd(0, [0, 0, 0, 0, 0, 0]), TypeError, 'ERR_ARG', `Expected ${arrayKind} for "x" but received Array(6)`);
    expectError(() => fwd(2, [0, 0, 0, 0]), TypeError, 'ERR_ARG', `Expected ${optionalKind} for "bias" but received Array(4)`);
    expectError(() => fwd(4, -2), RangeError, 'ERR_ARG', 'Expected non-negative integer for "batch" but received -2 (number)');
    expectError(() => fwd(5, NaN), RangeError, 'ERR_ARG', 'Expected non-negative integer for "inDim" but received NaN (number)');
    expectError(() => fwd(6, 2 ** 33), RangeError, 'ERR_ARG', 'Expected non-negative integer for "outDim" but received 8589934592 (number)');
    expectError(() => forward(arr(6), arr(12)), TypeError, 'ERR_ARG', 'denseForward expects 7 arguments but received 2');
    expectError(() => fwd(4, undefined), TypeError, 'ERR_ARG', 'Expected non-negative integer for "batch" but received undefined');
  });

  it('forward: y overlapping x is refused, y beside x is accepted', () => {
    const shared = arr(16);
    const x = shared.subarray(0, 6);
    expectError(
      () => forward(x, arr(12), null, shared.subarray(5, 13), 2, 3, 4),
      RangeError,
      'ERR_ARG',
      `Expected ${kind} not overlapping "x" for "y" but received ${kind}(8)`,
    );
    expect(() => forward(x, arr(12), null, shared.subarray(6, 14), 2, 3, 4)).not.toThrow();
  });

  it('backward: wrong lengths, kinds, sizes, flags and missing arguments', () => {
    // batch 2, inDim 3, outDim 4
    const ok = (): unknown[] => [arr(6), arr(12), arr(8), arr(6), arr(12), arr(4), 2, 3, 4, false];
    const bwd = (i: number, v: unknown) => {
      const args = ok();
      args[i] = v;
      return backward(...args);
    };
    expect(() => backward(...ok())).not.toThrow();
    expectError(() => bwd(0, arr(7)), RangeError, 'ERR_SHAPE', `Expected ${kind} of length 6 for "x" but received ${kind}(7)`);
    expectError(() => bwd(1, arr(4)), RangeError, 'ERR_SHAPE', `Expected ${kind} of length 12 for "weight" but received ${kind}(4)`);
    expectError(() => bwd(2, arr(6)), RangeError, 'ERR_SHAPE', `Expected ${kind} of length 8 for "dy" but received ${kind}(6)`);
    expectError(() => bwd(3, arr(8)), RangeError, 'ERR_SHAPE', `Expected ${kind} of length 6 for "dx" but received ${kind}(8)`);
    expectError(() => bwd(4, arr(11)), RangeError, 'ERR_SHAPE', `Expected ${kind} of length 12 for "dWeight" but received ${kind}(11)`);
    expectError(() => bwd(5, arr(5)), RangeError, 'ERR_SHAPE', `Expected ${kind} of length 4 for "dBias" but received ${kind}(5)`);
    expectError(() => bwd(2, new Array(8).fill(0)), TypeError, 'ERR_ARG', `Expected ${arrayKind} for "dy" but received Array(8)`);
    expectError(() => bwd(4, {}), TypeError, 'ERR_ARG', `Expected ${optionalKind} for "dWeight" but received object`);
    expectError(() => bwd(6, -1), RangeError, 'ERR_ARG', 'Expected non-negative integer for "batch" but received -1 (number)');
    expectError(() => bwd(7, NaN), RangeError, 'ERR_ARG', 'Expected non-negative integer for "inDim" but received NaN (number)');
    expectError(() => bwd(8, null), TypeError, 'ERR_ARG', 'Expected non-negative integer for "outDim" but received null');
    expectError(() => bwd(9, 0), TypeError, 'ERR_ARG', 'Expected boolean for "accumulate" but received 0 (number)');
    expectError(
      () => backward(arr(6), arr(12), arr(8), arr(6), arr(12), arr(4), 2, 3, 4),
      TypeError,
      'ERR_ARG',
      'denseBackward expects 10 arguments but received 9',
    );
    expectError(() => bwd(9, undefined), TypeError, 'ERR_ARG', 'Expected boolean for "accumulate" but received undefined');
  });

  it('backward: gradients overlapping inputs or each other are refused', () => {
    const shared = arr(40);
    const args = (dx: unknown, dw: unknown) => [shared.subarray(0, 6), arr(12), arr(8), dx, dw, null, 2, 3, 4, false];
    expectError(
      () => backward(...args(shared.subarray(3, 9), null)),
      RangeError,
      'ERR_ARG',
      `Expected ${kind} not overlapping "x" for "dx" but received ${kind}(6)`,
    );
    expectError(
      () => backward(...args(shared.subarray(10, 16), shared.subarray(15, 27))),
      RangeError,
      'ERR_ARG',
      `Expected ${kind} not overlapping "dx" for "dWeight" but received ${kind}(12)`,
    );
    expect(() => backward(...args(shared.subarray(10, 16), shared.subarray(16, 28)))).not.toThrow();
  });
});

describe.skipIf(!hasCpu())('dense cpu refuses float64', () => {
  it('a Float64Array is a TypeError naming the argument', () => {
    const cpu = backendByName('cpu');
    const f = new Float32Array(6);
    let caught: unknown;
    try {
      cpu.dense.forward(f, new Float64Array(12), null, new Float32Array(8), 2, 3, 4);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(TypeError);
    expect((caught as { code?: string }).code).toBe('ERR_ARG');
    expect((caught as Error).message).toBe('Expected Float32Array for "weight" but received Float64Array(12)');
    expect(() => cpu.dense.gemm(false, false, 1, 1, 1, 1, new Float64Array(1), f.subarray(0, 1), 0, f.subarray(1, 2))).toThrow(
      'Expected Float32Array for "a" but received Float64Array(1)',
    );
    expect(() => cpu.dense.backward(f, new Float32Array(12), new Float32Array(8), null, null, new Float64Array(4), 2, 3, 4, true)).toThrow(
      'Expected Float32Array or null for "dBias" but received Float64Array(4)',
    );
  });
});

// Folded from the former test/cuda.test.ts. Skipped, with the reason, where no CUDA device is present.
describeBackends(['cuda'], 'cuda vs reference', (cuda: Backend) => {
  const reference = backendByName('reference');
  const f32 = (a: ArrayLike<number>): Float32Array => Float32Array.from(a);
  const f64 = (a: ArrayLike<number>): Float64Array => Float64Array.from(a);
  const abs = (a: ArrayLike<number>): Float64Array => Float64Array.from(a, Math.abs);
  const data = (n: number, seed: number): Float64Array => asFloat32Values(randomArray(n, seed));
  describe('dense', () => {
    // (m, n, k): empty, 1, around the 64×64 tile and the 16-deep k step, and several tiles.
    const shapes: [number, number, number][] = [
      [1, 1, 1],
      [7, 33, 257],
      [63, 65, 15],
      [64, 64, 16],
      [65, 130, 17],
      [129, 7, 300],
      [3, 2100, 5],
      [0, 5, 3],
      [4, 0, 3],
      [4, 5, 0],
    ];
    const scalings = [
      { alpha: 1, beta: 0, nanC: true },
      { alpha: -0.75, beta: 1.5, nanC: false },
      { alpha: 0, beta: 2, nanC: false },
    ];
    let seed = 1;
    for (const [m, n, k] of shapes) {
      for (const [transA, transB] of [
        [false, false],
        [false, true],
        [true, false],
        [true, true],
      ] as const) {
        it(`gemm ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'} m=${m} n=${n} k=${k}`, () => {
          for (const { alpha, beta, nanC } of scalings) {
            const a = data(m * k, seed++);
            const b = data(k * n, seed++);
            const c0 = nanC ? new Float64Array(m * n).fill(NaN) : data(m * n, seed++);
            const got = f32(c0);
            cuda.dense.gemm(transA, transB, m, n, k, alpha, f32(a), f32(b), beta, got);
            const want = f64(c0);
            reference.dense.gemm(transA, transB, m, n, k, alpha, a, b, beta, want);
            const mag = nanC ? new Float64Array(m * n) : abs(c0);
            reference.dense.gemm(transA, transB, m, n, k, Math.abs(alpha), abs(a), abs(b), Math.abs(beta), mag);
            expectWithinDotBound(got, want, mag, k, `alpha=${alpha} beta=${beta}`);
          }
        });
      }
    }

    const layers: [number, number, number][] = [
      [1, 1, 1],
      [7, 33, 1],
      [17, 257, 15],
      [100, 784, 300],
      [4099, 9, 5],
      [0, 3, 4],
      [3, 0, 4],
    ];
    for (const [batch, inDim, outDim] of layers) {
      it(`forward and backward batch=${batch} in=${inDim} out=${outDim}`, () => {
        const x = data(batch * inDim, 11);
        const w = data(outDim * inDim, 12);
        const bias = data(outDim, 13);
        for (const withBias of [true, false]) {
          const y = new Float32Array(batch * outDim).fill(NaN);
          cuda.dense.forward(f32(x), f32(w), withBias ? f32(bias) : null, y, batch, inDim, outDim);
          const yRef = new Float64Array(batch * outDim);
          reference.dense.forward(x, w, withBias ? bias : null, yRef, batch, inDim, outDim);
          const mag = new Float64Array(batch * outDim);
          reference.dense.forward(abs(x), abs(w), withBias ? abs(bias) : null, mag, batch, inDim, outDim);
          expectWithinDotBound(y, yRef, mag, inDim, `y ${withBias ? 'with' : 'without'} bias`);
        }
        const dy = data(batch * outDim, 23);
        for (const accumulate of [false, true]) {
          const dw0 = accumulate ? data(outDim * inDim, 24) : new Float64Array(outDim * inDim).fill(NaN);
          const db0 = accumulate ? data(outDim, 25) : new Float64Array(outDim).fill(NaN);
          const [dx, dw, db] = [new Float32Array(batch * inDim).fill(NaN), f32(dw0), f32(db0)];
          cuda.dense.backward(f32(x), f32(w), f32(dy), dx, dw, db, batch, inDim, outDim, accumulate);
          const [dxR, dwR, dbR] = [new Float64Array(batch * inDim), f64(dw0), f64(db0)];
          reference.dense.backward(x, w, dy, dxR, dwR, dbR, batch, inDim, outDim, accumulate);
          const clean = (a: Float64Array) => (accumulate ? abs(a) : new Float64Array(a.length));
          const [dxM, dwM, dbM] = [new Float64Array(batch * inDim), clean(dw0), clean(db0)];
          reference.dense.backward(abs(x), abs(w), abs(dy), dxM, dwM, dbM, batch, inDim, outDim, accumulate);
          expectWithinDotBound(dx, dxR, dxM, outDim, `dx accumulate=${accumulate}`);
          expectWithinDotBound(dw, dwR, dwM, batch, `dWeight accumulate=${accumulate}`);
          expectWithinDotBound(db, dbR, dbM, batch, `dBias accumulate=${accumulate}`);
          // Null outputs are skipped, the others still computed.
          const dbAlone = new Float32Array(outDim).fill(NaN);
          cuda.dense.backward(f32(x), f32(w), f32(dy), null, null, dbAlone, batch, inDim, outDim, false);
          const [dbAloneR, dbAloneM] = [new Float64Array(outDim), new Float64Array(outDim)];
          reference.dense.backward(x, w, dy, null, null, dbAloneR, batch, inDim, outDim, false);
          reference.dense.backward(abs(x), abs(w), abs(dy), null, null, dbAloneM, batch, inDim, outDim, false);
          expectWithinDotBound(dbAlone, dbAloneR, dbAloneM, batch, 'dBias alone');
        }
      });
    }
  });
});
