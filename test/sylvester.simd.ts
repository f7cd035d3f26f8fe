/**
 * Child process of test/sylvester.test.ts: with FLOWVAE_SIMD capping the
 * addon's SIMD path (scalar or avx2), compares the cpu kernels with the
 * reference on a few awkward shapes and prints {simd, worst, cases}, where
 * worst is the largest error / tolerance ratio (≤ 1 passes). Tolerances are
 * those of the cross-check in sylvester.test.ts.
 */
import { backendByName, backends } from '../src/backend';
import type { Backend } from '../src/backend/backend';
import { SYLVESTER_VARIANTS, sylvesterLayout, type SylvesterShape } from '../src/backend/kernels/sylvester';

function rand(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function values(n: number, seed: number, lo: number, hi: number): Float64Array {
  const r = rand(seed);
  return Float64Array.from(Float32Array.from({ length: n }, () => lo + (hi - lo) * r()));
}

const cpu = backendByName('cpu');
const reference = backendByName('reference');
const bjorck = { maxSteps: 100, tolerance: 1e-5 };

function run(be: Backend, shape: SylvesterShape, batch: number, amortized: boolean, p: Float64Array, x: Float64Array, gy: Float64Array, gl: Float64Array) {
  const lay = sylvesterLayout(shape);
  const sets = amortized ? batch : 1;
  const params = be.from(p);
  const q = be.alloc(sets * shape.layers * lay.qPerLayer);
  be.sylvester.orthogonalize(shape, sets, params, q, bjorck);
  const y = be.alloc(batch * shape.dim);
  const logDet = be.alloc(batch);
  const saved = be.alloc(batch * lay.savedPerRow);
  be.sylvester.forward(shape, batch, amortized, be.from(x), params, q, y, logDet, saved);
  const gradX = be.alloc(batch * shape.dim);
  const gradParams = be.alloc(sets * lay.size);
  const gradQ = be.alloc(q.length);
  be.sylvester.backward(shape, batch, amortized, params, q, saved, be.from(gy), be.from(gl), gradX, gradParams, gradQ);
  be.sylvester.orthogonalizeBackward(shape, sets, params, gradQ, gradParams, bjorck);
  return { y, logDet, gradX, gradParams, gradQ };
}

const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
let worst = 0;
let cases = 0;
for (const variant of SYLVESTER_VARIANTS) {
  for (const amortized of [false, true]) {
    for (const [d, m, k, batch] of [
      [1, 1, 1, 1],
      [7, 5, 3, 5],
      [33, 20, 1, 2],
      [5, 3, 2, 70],
    ]) {
      const shape: SylvesterShape = { variant, dim: d, m: variant === 'orthogonal' ? m : d, layers: k, householders: variant === 'householder' ? 3 : 0 };
      const lay = sylvesterLayout(shape);
      const sets = amortized ? batch : 1;
      const p = values(sets * lay.size, 1, -0.5, 0.5);
      const raw = values(sets * lay.size, 2, -1.7, 1.7);
      for (let s = 0; s < sets; s++) for (let i = lay.q; i < lay.size; i++) p[s * lay.size + i] = raw[s * lay.size + i];
      const x = values(batch * d, 3, -2, 2);
      const gy = values(batch * d, 4, -1, 1);
      const gl = values(batch, 5, -1, 1);
      const want = run(reference, shape, batch, amortized, p, x, gy, gl);
      const got = run(cpu, shape, batch, amortized, p, x, gy, gl);
      const fwdTol = (a: ArrayLike<number>) => [2e-6 * (1 + maxAbs(a)) * Math.sqrt(k), 1e-5];
      const bwdTol = (a: ArrayLike<number>) => [(variant === 'orthogonal' ? 1e-4 : 2e-5) * (1 + maxAbs(a)), 1e-4];
      for (const key of ['y', 'logDet', 'gradX', 'gradParams', 'gradQ'] as const) {
        const [atol, rtol] = key === 'y' || key === 'logDet' ? fwdTol(want[key]) : bwdTol(want[key]);
        for (let i = 0; i < want[key].length; i++) {
          const ratio = Math.abs(got[key][i] - want[key][i]) / (atol + rtol * Math.abs(want[key][i]));
          worst = Number.isNaN(ratio) ? Infinity : Math.max(worst, ratio);
        }
      }
      cases++;
    }
  }
}
process.stdout.write(JSON.stringify({ simd: backends().find((b) => b.name === 'cpu')!.simd, worst, cases }));
