/**
 * Child process of test/flow-stream.test.ts: run with FLOWVAE_CACHE_BYTES=1,
 * so every amortized planar and radial backward writes its parameter
 * gradients through the streaming-store path (taken for real only when they
 * outgrow the last-level cache). Compares cpu with the reference on awkward
 * shapes and prints {cacheBytes, worst, cases}, worst being the largest
 * error / tolerance ratio (≤ 1 passes) with the cross-check's gradient
 * tolerance 4e-6·K·√D·max(max|g|, 1) (see flow-stack-helpers.ts).
 */
import { backendByName, backends } from '../src/backend';
import type { Backend } from '../src/backend/backend';

function values(n: number, seed: number, lo: number, hi: number): Float64Array {
  let a = seed >>> 0;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    a = (Math.imul(a, 1103515245) + 12345) >>> 0;
    out[i] = Math.fround(lo + ((hi - lo) * a) / 4294967296);
  }
  return out;
}

const cpu = backendByName('cpu');
const reference = backendByName('reference');
const families = [
  { name: 'planar' as const, paramSize: (d: number) => 2 * d + 1, saved: 'y' as const },
  { name: 'radial' as const, paramSize: (d: number) => d + 2, saved: 'x' as const },
];

function run(be: Backend, fam: (typeof families)[number], B: number, D: number, K: number, seed: number) {
  const k = be[fam.name];
  const n = B * K * fam.paramSize(D);
  const x = be.from(values(B * D, seed, -1.5, 1.5));
  const params = be.from(values(n, seed + 1, -0.8, 0.8));
  const y = be.alloc(B * D);
  const logDet = be.alloc(B);
  const stash = be.alloc(B * K);
  const bad0 = k.forward(x, params, y, logDet, null, stash, B, D, K, true);
  const dx = be.alloc(B * D);
  const dParams = be.from(values(n, seed + 4, -1, 1));
  const bad1 = k.backward(
    fam.saved === 'x' ? x : y,
    stash,
    params,
    be.from(values(B * D, seed + 2, -1, 1)),
    be.from(values(B, seed + 3, -1, 1)),
    dx,
    dParams,
    B,
    D,
    K,
    true,
  );
  return { bad: bad0 + bad1, dx: Float64Array.from(dx), dParams: Float64Array.from(dParams) };
}

const maxAbs = (a: ArrayLike<number>) => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
let worst = 0;
let cases = 0;
for (const fam of families) {
  for (const [B, D, K] of [
    [1, 1, 1],
    [5, 7, 4],
    [19, 33, 2],
    [37, 40, 16],
    [40, 3, 5],
  ]) {
    const ref = run(reference, fam, B, D, K, 7 + cases);
    const got = run(cpu, fam, B, D, K, 7 + cases);
    if (ref.bad !== 0 || got.bad !== 0) worst = Infinity;
    for (const key of ['dx', 'dParams'] as const) {
      const tol = 4e-6 * K * Math.sqrt(D) * Math.max(maxAbs(ref[key]), 1);
      for (let i = 0; i < ref[key].length; i++) worst = Math.max(worst, Math.abs(got[key][i] - ref[key][i]) / tol);
    }
    cases++;
  }
}
const info = backends().find((b) => b.name === 'cpu');
console.log(JSON.stringify({ cacheBytes: info?.cacheBytes, worst, cases }));
