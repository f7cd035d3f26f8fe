/**
 * The `lstm` layer (src/nn/lstm.ts) forward, and forward + backward (input,
 * h0, c0 and every weight gradient), over full-length batch-first sequences:
 * the reference backend, the cpu backend at 1 and 2 threads, and
 * torch.nn.LSTM on the CPU (bench/peers/lstm_torch.py) at 1 and 2 threads,
 * the latter in its best pool configuration. The cpu contenders are
 * interleaved round by round; the peer runs in its own process, once per
 * round; we quote medians and ratios, in sequences per second.
 *
 * Environment: FLOWVAE_BENCH_ROUNDS (default 3), FLOWVAE_BENCH_SECONDS
 * (seconds per measurement, default 0.2).
 */
import type { Backend } from '../src/backend/backend';
import { backendByName, backends, setNumThreads } from '../src/backend';
import { Lstm } from '../src/nn/lstm';
import { median, printTable, runPython, si, timeInterleaved, writeResults } from './common';

type Mode = 'forward' | 'backward';

interface Case {
  batch: number;
  steps: number;
  inDim: number;
  hidden: number;
  mode: Mode;
}

const SHAPES = [
  { batch: 100, steps: 20, inDim: 10, hidden: 64 },
  { batch: 100, steps: 20, inDim: 10, hidden: 256 },
  { batch: 100, steps: 32, inDim: 32, hidden: 256 },
];

function prepare(backend: Backend, c: Case): () => void {
  const layer = new Lstm(backend, { inDim: c.inDim, hidden: c.hidden, seed: 1 });
  const fill = (n: number, seed: number) => {
    const a = backend.alloc(n);
    backend.rng.normal(seed, 0, a);
    return a;
  };
  const x = fill(c.batch * c.steps * c.inDim, 1);
  const h0 = fill(c.batch * c.hidden, 2);
  const c0 = fill(c.batch * c.hidden, 3);
  const dy = fill(c.batch * c.steps * c.hidden, 4);
  const dhn = fill(c.batch * c.hidden, 5);
  const dcn = fill(c.batch * c.hidden, 6);
  if (c.mode === 'forward') return () => void layer.forward(x, c.batch, c.steps, { h0, c0 });
  return () => {
    layer.forward(x, c.batch, c.steps, { h0, c0 });
    layer.backward({ dy, dhn, dcn });
  };
}

interface TorchResult {
  torch: string;
  results: number[];
  configs: string[];
}

export async function run(): Promise<void> {
  const rounds = Number(process.env.FLOWVAE_BENCH_ROUNDS ?? 3);
  const seconds = Number(process.env.FLOWVAE_BENCH_SECONDS ?? 0.2);
  const cases: Case[] = SHAPES.flatMap((s) => (['forward', 'backward'] as Mode[]).map((mode) => ({ ...s, mode })));
  const cpuInfo = backends().find((b) => b.name === 'cpu')!;
  const cpu = cpuInfo.available ? backendByName('cpu') : null;
  const reference = backendByName('reference');
  console.log(`LSTM layer, batch-first, full length; cpu backend: ${cpu ? `simd ${cpuInfo.simd}` : cpuInfo.reason}`);

  const times = cases.map(() => ({ reference: NaN, cpu1: NaN, cpu2: NaN, torch1: [] as number[], torch2: [] as number[] }));
  const torchConfigs: string[][] = cases.map(() => []);
  let torchVersion = '';
  let torchReason = '';
  cases.forEach((c, i) => {
    times[i].reference = timeInterleaved([{ fn: prepare(reference, c) }], { minSeconds: seconds / 2, rounds: 1 })[0];
    if (cpu) {
      const fn = prepare(cpu, c);
      [times[i].cpu1, times[i].cpu2] = timeInterleaved(
        [
          { fn, prepare: () => setNumThreads(1) },
          { fn, prepare: () => setNumThreads(2) },
        ],
        { minSeconds: seconds, rounds },
      );
    }
  });
  for (let round = 0; round < rounds; round++) {
    for (const threads of [1, 2] as const) {
      const out = runPython<TorchResult>('lstm_torch.py', { threads, minSeconds: seconds, rounds: 1, cases }, threads);
      if (!out.result) {
        torchReason = out.reason;
        continue;
      }
      torchVersion = out.result.torch;
      out.result.results.forEach((t, i) => times[i][`torch${threads}`].push(t));
      if (threads === 2) out.result.configs.forEach((cfg, i) => torchConfigs[i].push(cfg));
    }
  }

  const fmt = (v: number) => (Number.isFinite(v) ? si(v) : '—');
  const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) ? `${(a / b).toFixed(2)}×` : '—');
  const rows: (string | number)[][] = [['case', 'mode', 'reference', 'cpu 1T', 'cpu 2T', 'torch 1T', 'torch 2T', 'cpu/torch 1T', 'cpu/torch 2T', 'cpu 1T/ref']];
  const records: Record<string, unknown>[] = [];
  cases.forEach((c, i) => {
    const t = times[i];
    const rate = (s: number) => c.batch / s;
    const r = {
      reference: rate(t.reference),
      cpu1: rate(t.cpu1),
      cpu2: rate(t.cpu2),
      torch1: t.torch1.length ? rate(median(t.torch1)) : NaN,
      torch2: t.torch2.length ? rate(median(t.torch2)) : NaN,
    };
    rows.push([
      `lstm B=${c.batch} T=${c.steps} in=${c.inDim} H=${c.hidden}`,
      c.mode === 'forward' ? 'fwd' : 'fwd+bwd',
      fmt(r.reference),
      fmt(r.cpu1),
      fmt(r.cpu2),
      fmt(r.torch1),
      fmt(r.torch2),
      ratio(r.cpu1, r.torch1),
      ratio(r.cpu2, r.torch2),
      ratio(r.cpu1, r.reference),
    ]);
    records.push({ case: 'lstm', ...c, sequencesPerSecond: r, torch2Configs: torchConfigs[i] });
  });
  console.log('sequences/s (medians); ratios of sequences/s; torch 2T is its best of the pool configurations torch/OpenBLAS 2/2, 2/1, 1/2');
  printTable(rows);
  if (torchReason) console.log(`PyTorch peer unavailable in some rounds: ${torchReason}`);
  const file = writeResults('lstm', { simd: cpuInfo.simd ?? null, torch: torchVersion || null, rounds, secondsPerMeasurement: seconds, cases: records });
  console.log(`wrote ${file}`);
}
