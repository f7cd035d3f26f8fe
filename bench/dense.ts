/**
 * Dense layer and SGEMM throughput: the MNIST VAE layers (784→300, 300→300,
 * 300→784) at batch 100 and 256, forward (y = x Wᵀ + b) and forward+backward
 * (plus dx = dy W, dW = dyᵀ x, db = Σ dy), and the three GEMMs behind them
 * on their own. Contenders, side by side in one run:
 *   reference  pure TypeScript, float64 (layers only: it is slow)
 *   cpu        native blocked SGEMM at 1 and 2 threads
 *   numpy      float32 matmul with out= on the system BLAS (OpenBLAS on
 *              Debian when libopenblas0 is installed) at 1 and 2 threads
 * Contenders are interleaved layer shape by layer shape, round by round,
 * in rotating order, and we quote the median over rounds, so a noisy machine
 * shifts them alike (numpy runs in a fresh process per shape, threads set
 * through the environment). FLOPs count 2 per multiply-add of the matrix
 * products only.
 *
 * Environment: FLOWVAE_BENCH_ROUNDS (default 3), FLOWVAE_BENCH_SECONDS
 * (time per measurement, default 0.05).
 */
import * as os from 'node:os';
import { backends, backendByName, getNumThreads, setNumThreads } from '../src/backend';
import type { Backend } from '../src/backend/backend';
import type { FloatArray } from '../src/backend/types';
import { median, printTable, runPython, si, timeIt, writeResults } from './common';

const BATCHES = [100, 256];
const LAYERS: [number, number][] = [
  [784, 300],
  [300, 300],
  [300, 784],
];
const THREADS = [1, 2];

interface LayerCase {
  kind: 'forward' | 'train';
  batch: number;
  inDim: number;
  outDim: number;
}
interface GemmCase {
  kind: 'gemm';
  /** What the product computes in a dense layer. */
  role: 'y = x·Wᵀ' | 'dx = dy·W' | 'dW = dyᵀ·x';
  batch: number;
  inDim: number;
  outDim: number;
  transA: boolean;
  transB: boolean;
  m: number;
  n: number;
  k: number;
}
type Case = LayerCase | GemmCase;

function buildCases(): { layers: LayerCase[]; gemms: GemmCase[] } {
  const layers: LayerCase[] = [];
  const gemms: GemmCase[] = [];
  for (const batch of BATCHES) {
    for (const [inDim, outDim] of LAYERS) {
      layers.push({ kind: 'forward', batch, inDim, outDim }, { kind: 'train', batch, inDim, outDim });
      const base = { kind: 'gemm' as const, batch, inDim, outDim };
      gemms.push(
        { ...base, role: 'y = x·Wᵀ', transA: false, transB: true, m: batch, n: outDim, k: inDim },
        { ...base, role: 'dx = dy·W', transA: false, transB: false, m: batch, n: inDim, k: outDim },
        { ...base, role: 'dW = dyᵀ·x', transA: true, transB: false, m: outDim, n: inDim, k: batch },
      );
    }
  }
  return { layers, gemms };
}

function flops(c: Case): number {
  if (c.kind === 'gemm') return 2 * c.m * c.n * c.k;
  const product = 2 * c.batch * c.inDim * c.outDim;
  return c.kind === 'forward' ? product : 3 * product;
}

function fill(a: FloatArray, seed: number): FloatArray {
  let s = seed >>> 0;
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 31 - 1;
  }
  return a;
}

/** A closure running one case on a backend, with its buffers allocated up front. */
function runner(backend: Backend, c: Case): () => void {
  const alloc = (n: number, seed: number) => fill(backend.alloc(n), seed);
  if (c.kind === 'gemm') {
    const a = alloc(c.m * c.k, 1);
    const b = alloc(c.k * c.n, 2);
    const out = backend.alloc(c.m * c.n);
    return () => backend.dense.gemm(c.transA, c.transB, c.m, c.n, c.k, 1, a, b, 0, out);
  }
  const { batch, inDim, outDim } = c;
  const x = alloc(batch * inDim, 3);
  const w = alloc(outDim * inDim, 4);
  const bias = alloc(outDim, 5);
  const y = backend.alloc(batch * outDim);
  const dy = alloc(batch * outDim, 6);
  const dx = backend.alloc(batch * inDim);
  const dw = backend.alloc(outDim * inDim);
  const db = backend.alloc(outDim);
  const forward = () => backend.dense.forward(x, w, bias, y, batch, inDim, outDim);
  if (c.kind === 'forward') return forward;
  return () => {
    forward();
    // Overwrite the gradients, as the numpy peer does with out=.
    backend.dense.backward(x, w, dy, dx, dw, db, batch, inDim, outDim, false);
  };
}

type Contender = 'reference' | `cpu ${number}t` | `numpy ${number}t`;

export async function run(): Promise<unknown> {
  const rounds = Math.max(1, Number(process.env.FLOWVAE_BENCH_ROUNDS ?? 3));
  const minSeconds = Number(process.env.FLOWVAE_BENCH_SECONDS ?? 0.05);
  const { layers, gemms } = buildCases();
  const all: Case[] = [...layers, ...gemms];
  const cpuInfo = backends().find((b) => b.name === 'cpu')!;
  const savedThreads = getNumThreads();
  const notes: string[] = [];
  // Other processes on the machine slow every contender; the ratios hold better than the absolute figures.
  const loadBefore = os.loadavg()[0];
  if (!cpuInfo.available) notes.push(`cpu skipped: ${cpuInfo.reason}`);

  // samples[contender][case index]: seconds per call, one per round.
  const samples = new Map<Contender, number[][]>();
  const record = (who: Contender, indices: number[], times: number[]) => {
    if (!samples.has(who))
      samples.set(
        who,
        all.map(() => []),
      );
    indices.forEach((index, j) => samples.get(who)![index].push(times[j]));
  };
  let blas = '';
  let numpyVersion = '';

  // A contender measures a group of cases (one layer shape: its forward,
  // fwd+bwd and three GEMMs). Groups are interleaved with the contenders
  // rotating, so the contenders of one case are measured seconds apart.
  type Run = (indices: number[]) => void;
  const reference = backendByName('reference');
  const contenders: Run[] = [
    // The reference is slow: layer cases only, one measurement per round.
    (indices) => {
      const layerIndices = indices.filter((i) => all[i].kind !== 'gemm');
      const times = layerIndices.map((i) => timeIt(runner(reference, all[i]), { minSeconds: 0.1, rounds: 1 }));
      record('reference', layerIndices, times);
    },
  ];
  if (cpuInfo.available) {
    const cpu = backendByName('cpu');
    for (const t of THREADS) {
      contenders.push((indices) => {
        setNumThreads(t);
        record(
          `cpu ${t}t`,
          indices,
          indices.map((i) => timeIt(runner(cpu, all[i]), { minSeconds, rounds: 3 })),
        );
      });
    }
  }
  for (const t of THREADS) {
    contenders.push((indices) => {
      if (notes.some((n) => n.startsWith('numpy skipped'))) return;
      const spec = { minSeconds, rounds: 3, cases: indices.map((i) => all[i]) };
      const { result, reason } = runPython<{ numpy: string; blas: string; results: number[] }>('dense_numpy.py', spec, t);
      if (!result) {
        notes.push(`numpy skipped: ${reason}`);
        return;
      }
      blas = result.blas;
      numpyVersion = result.numpy;
      record(`numpy ${t}t`, indices, result.results);
    });
  }
  const groups = layers
    .filter((c) => c.kind === 'forward')
    .map((shape) =>
      all
        .map((c, i) => [c, i] as const)
        .filter(([c]) => c.batch === shape.batch && c.inDim === shape.inDim && c.outDim === shape.outDim)
        .map(([, i]) => i),
    );
  for (let r = 0; r < rounds; r++) {
    console.log(`round ${r + 1}/${rounds} ...`);
    groups.forEach((indices, g) => {
      // Rotate the order so no contender always runs first or last.
      for (let i = 0; i < contenders.length; i++) contenders[(i + r + g) % contenders.length](indices);
    });
  }
  setNumThreads(savedThreads);
  if (blas && !/openblas|mkl|blis/i.test(blas)) {
    notes.push(`numpy runs on ${blas}, not an optimized BLAS: the numpy ratios are not the OpenBLAS comparison`);
  }

  // Median over rounds of seconds per call.
  const seconds = (who: Contender, index: number): number => {
    const perCase = samples.get(who)?.[index];
    return perCase && perCase.length > 0 ? median(perCase) : NaN;
  };
  const names = [...samples.keys()];
  const ratio = (x: number, y: number) => (Number.isFinite(x) && Number.isFinite(y) ? (y / x).toFixed(2) : '-');

  const layerRows: Record<string, unknown>[] = [];
  const table1: (string | number)[][] = [
    ['layer', 'mode', ...names.map((n) => `${n} ex/s`), 'cpu 1t GFLOP/s', 'cpu 2t GFLOP/s', 'cpu/numpy 1t', 'cpu/numpy 2t', 'cpu 1t/ref'],
  ];
  layers.forEach((c, i) => {
    const s = Object.fromEntries(names.map((n) => [n, seconds(n, i)]));
    const gf = (n: Contender) => flops(c) / s[n] / 1e9;
    table1.push([
      `${c.batch}x${c.inDim}→${c.outDim}`,
      c.kind === 'forward' ? 'forward' : 'fwd+bwd',
      ...names.map((n) => si(c.batch / s[n])),
      gf('cpu 1t').toFixed(1),
      gf('cpu 2t').toFixed(1),
      ratio(s['cpu 1t'], s['numpy 1t']),
      ratio(s['cpu 2t'], s['numpy 2t']),
      ratio(s['cpu 1t'], s.reference),
    ]);
    layerRows.push({
      batch: c.batch,
      inDim: c.inDim,
      outDim: c.outDim,
      mode: c.kind,
      flops: flops(c),
      secondsPerCall: s,
      examplesPerSecond: Object.fromEntries(names.map((n) => [n, c.batch / s[n]])),
      gflops: Object.fromEntries(names.map((n) => [n, flops(c) / s[n] / 1e9])),
    });
  });

  const gemmRows: Record<string, unknown>[] = [];
  const gemmNames = names.filter((n) => n !== 'reference');
  const table2: (string | number)[][] = [['gemm (m x n x k)', 'op', 'role', ...gemmNames.map((n) => `${n} GFLOP/s`), 'cpu/numpy 1t', 'cpu/numpy 2t']];
  gemms.forEach((c, j) => {
    const i = layers.length + j;
    const s = Object.fromEntries(gemmNames.map((n) => [n, seconds(n, i)]));
    table2.push([
      `${c.m}x${c.n}x${c.k}`,
      `${c.transA ? 'T' : 'N'}${c.transB ? 'T' : 'N'}`,
      c.role,
      ...gemmNames.map((n) => (flops(c) / s[n] / 1e9).toFixed(1)),
      ratio(s['cpu 1t'], s['numpy 1t']),
      ratio(s['cpu 2t'], s['numpy 2t']),
    ]);
    gemmRows.push({
      m: c.m,
      n: c.n,
      k: c.k,
      transA: c.transA,
      transB: c.transB,
      role: c.role,
      batch: c.batch,
      inDim: c.inDim,
      outDim: c.outDim,
      secondsPerCall: s,
      gflops: Object.fromEntries(gemmNames.map((n) => [n, flops(c) / s[n] / 1e9])),
    });
  });

  console.log(
    `\ncpu simd: ${cpuInfo.simd ?? '-'}; numpy ${numpyVersion || '-'} on ${blas || '-'}; ${rounds} rounds; ` +
      `load average ${loadBefore.toFixed(1)} before, ${os.loadavg()[0].toFixed(1)} after\n`,
  );
  printTable(table1);
  console.log('');
  printTable(table2);
  // Geometric means of the ratios over every layer and GEMM case: steadier than any single case on a busy machine.
  const geomean = (who: Contender, over: Contender, indices: number[]): number => {
    const logs = indices.map((i) => Math.log(seconds(over, i) / seconds(who, i))).filter(Number.isFinite);
    return logs.length ? Math.exp(logs.reduce((x, y) => x + y, 0) / logs.length) : NaN;
  };
  const layerIdx = layers.map((_, i) => i);
  const gemmIdx = gemms.map((_, j) => layers.length + j);
  const summary = {
    cpuOverNumpy1t: { layers: geomean('cpu 1t', 'numpy 1t', layerIdx), gemms: geomean('cpu 1t', 'numpy 1t', gemmIdx) },
    cpuOverNumpy2t: { layers: geomean('cpu 2t', 'numpy 2t', layerIdx), gemms: geomean('cpu 2t', 'numpy 2t', gemmIdx) },
    cpu1tOverReference: { layers: geomean('cpu 1t', 'reference', layerIdx) },
  };
  console.log(
    `\ngeometric means: cpu/numpy 1t ${summary.cpuOverNumpy1t.layers.toFixed(2)} (layers), ` +
      `${summary.cpuOverNumpy1t.gemms.toFixed(2)} (gemms); cpu/numpy 2t ${summary.cpuOverNumpy2t.layers.toFixed(2)} (layers), ` +
      `${summary.cpuOverNumpy2t.gemms.toFixed(2)} (gemms); cpu 1t/reference ${summary.cpu1tOverReference.layers.toFixed(1)}`,
  );
  for (const note of notes) console.log(`note: ${note}`);

  const result = {
    suite: 'dense',
    simd: cpuInfo.simd ?? null,
    numpy: numpyVersion || null,
    blas: blas || null,
    rounds,
    loadAverage: { before: loadBefore, after: os.loadavg()[0] },
    notes,
    summary,
    layers: layerRows,
    gemms: gemmRows,
  };
  const file = writeResults('dense', result);
  console.log(`\nwrote ${file}`);
  return result;
}
