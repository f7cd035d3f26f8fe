/**
 * Residual-flow throughput (samples/s): a stack of K residual blocks x + g(x)
 * (spectral-normalized MLP g, 5 power-iteration steps per training forward),
 * forward + log-det + backward to the input and every parameter, on the
 * reference backend, the cpu backend at 1 and 2 threads, and PyTorch CPU
 * (bench/peers/residual_torch.py, the residual-flows way: autograd Jacobian
 * + slogdet for the exact log-det, the Neumann-series surrogate for the
 * estimator) at 1 and 2 threads. Contenders are interleaved round by round;
 * we quote medians, ratios per median.
 *
 * Environment: FLOWVAE_BENCH_ROUNDS (default 3), FLOWVAE_BENCH_SECONDS
 * (seconds per measurement, default 0.2).
 */
import type { Backend } from '../src/backend/backend';
import { backendByName, backends, setNumThreads } from '../src/backend';
import type { FloatArray } from '../src/backend/types';
import { FlowSequence } from '../src/flows/sequence';
import { ResidualBlock, type ResidualLogDet } from '../src/flows/residual';
import { median, printTable, runPython, si, timeIt, writeResults } from './common';

interface Case {
  batch: number;
  dim: number;
  hidden: number[];
  blocks: number;
  logDet: ResidualLogDet;
  activation: 'lipswish' | 'elu';
}

const CASES: Case[] = [
  { batch: 256, dim: 2, hidden: [64, 64], blocks: 4, logDet: 'exact', activation: 'lipswish' },
  { batch: 256, dim: 16, hidden: [64, 64], blocks: 4, logDet: 'exact', activation: 'lipswish' },
  { batch: 256, dim: 40, hidden: [128, 128], blocks: 4, logDet: 'estimator', activation: 'lipswish' },
];

function caseName(c: Case): string {
  return `B=${c.batch} D=${c.dim} hidden=[${c.hidden}] K=${c.blocks} ${c.logDet}`;
}

function prepare(backend: Backend, c: Case): () => void {
  const flow = new FlowSequence(
    Array.from(
      { length: c.blocks },
      (_, k) => new ResidualBlock({ dim: c.dim, hidden: c.hidden, activation: c.activation, logDet: c.logDet, seed: 1 + k, backend }),
    ),
  );
  const fill = (n: number, seed: number): FloatArray => {
    const a = backend.alloc(n);
    let s = seed;
    for (let i = 0; i < n; i++) {
      s = (s * 1103515245 + 12345) % 2147483648;
      a[i] = 2 * (s / 2147483648) - 1;
    }
    return a;
  };
  const x = fill(c.batch * c.dim, 1);
  const gy = fill(c.batch * c.dim, 3);
  const gl = fill(c.batch, 4);
  const params = flow.parameters();
  return () => {
    flow.forward(x, c.batch, { training: true });
    for (const p of params) p.grad.fill(0);
    flow.backward(gy, gl);
  };
}

interface TorchResult {
  torch: string;
  results: number[];
}

export async function run(): Promise<void> {
  const rounds = Number(process.env.FLOWVAE_BENCH_ROUNDS ?? 3);
  const seconds = Number(process.env.FLOWVAE_BENCH_SECONDS ?? 0.2);
  const cpuInfo = backends().find((b) => b.name === 'cpu')!;
  const cpu = cpuInfo.available ? backendByName('cpu') : null;
  const reference = backendByName('reference');
  console.log(`cpu backend: ${cpu ? `simd ${cpuInfo.simd}` : cpuInfo.reason}; ${rounds} rounds, ${seconds} s per measurement`);
  const runs = CASES.map((c) => ({ reference: prepare(reference, c), cpu: cpu ? prepare(cpu, c) : null }));
  const times: Record<string, number[][]> = { reference: [], cpu1: [], cpu2: [], torch1: [], torch2: [] };
  for (const k of Object.keys(times)) times[k] = CASES.map(() => []);
  let torchVersion = '';
  let torchReason = '';
  const spec = (threads: number) => ({ threads, minSeconds: seconds, rounds: 1, cases: CASES });
  for (let round = 0; round < rounds; round++) {
    CASES.forEach((_, i) => {
      if (round === 0) times.reference[i].push(timeIt(runs[i].reference, { minSeconds: seconds, rounds: 1 }));
      const c = runs[i].cpu;
      if (c) {
        setNumThreads(1);
        times.cpu1[i].push(timeIt(c, { minSeconds: seconds, rounds: 1 }));
        setNumThreads(2);
        times.cpu2[i].push(timeIt(c, { minSeconds: seconds, rounds: 1 }));
      }
    });
    for (const threads of [1, 2]) {
      const out = runPython<TorchResult>('residual_torch.py', spec(threads), threads);
      if (!out.result) {
        torchReason = out.reason;
        continue;
      }
      torchVersion = out.result.torch;
      out.result.results.forEach((t, i) => times[`torch${threads}`][i].push(t));
    }
  }
  const rate = (ts: number[], batch: number) => (ts.length ? batch / median(ts) : NaN);
  const fmt = (v: number) => (Number.isFinite(v) ? si(v) : '—');
  const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) ? `${(a / b).toFixed(1)}×` : '—');
  const rows: (string | number)[][] = [
    ['residual stack, fwd+logdet+bwd', 'reference', 'cpu 1T', 'cpu 2T', 'torch 1T', 'torch 2T', 'cpu/torch 1T', 'cpu/torch 2T', 'cpu 1T/ref'],
  ];
  const records: Record<string, unknown>[] = [];
  CASES.forEach((c, i) => {
    const r = {
      reference: rate(times.reference[i], c.batch),
      cpu1: rate(times.cpu1[i], c.batch),
      cpu2: rate(times.cpu2[i], c.batch),
      torch1: rate(times.torch1[i], c.batch),
      torch2: rate(times.torch2[i], c.batch),
    };
    rows.push([
      caseName(c),
      fmt(r.reference),
      fmt(r.cpu1),
      fmt(r.cpu2),
      fmt(r.torch1),
      fmt(r.torch2),
      ratio(r.cpu1, r.torch1),
      ratio(r.cpu2, r.torch2),
      ratio(r.cpu1, r.reference),
    ]);
    records.push({ ...c, samplesPerSecond: r });
  });
  console.log('samples/s (medians over rounds); ratios of samples/s');
  printTable(rows);
  if (torchReason) console.log(`PyTorch peer unavailable in some rounds: ${torchReason}`);
  const file = writeResults('residual', { simd: cpuInfo.simd ?? null, torch: torchVersion || null, rounds, secondsPerMeasurement: seconds, cases: records });
  console.log(`wrote ${file}`);
}

if (require.main === module) void run();
