/**
 * Glow step without its coupling: ActNorm then the invertible linear map in
 * LU form (InvertibleLinearLU), D = 40, in samples per second for forward +
 * log-det and forward + backward (input and every parameter gradient): the
 * reference backend, the cpu backend at 1 and 2 threads, and PyTorch CPU
 * (bench/peers/glow_torch.py, written as Glow ports write it) at 1 and 2
 * threads. The cpu contenders are interleaved round by round; the peer runs in
 * its own process; we quote medians and ratios.
 *
 * Per call the LU module assembles W from its factors (one D×D GEMM, O(D³))
 * and maps ∂W back to them (two more), beside the batch GEMMs (O(B·D²)).
 *
 * Environment: FLOWVAE_BENCH_ROUNDS (default 3), FLOWVAE_BENCH_SECONDS
 * (seconds per measurement, default 0.1).
 */
import type { Backend } from '../src/backend/backend';
import { backendByName, backends, setNumThreads } from '../src/backend';
import { ActNorm, FlowSequence, InvertibleLinearLU } from '../src/flows';
import { median, printTable, runPython, si, timeInterleaved, writeResults } from './common';

const DIM = 40;
const BATCHES = [256, 4096];
type Mode = 'forward' | 'backward';

interface Case {
  batch: number;
  mode: Mode;
}

function prepare(backend: Backend, c: Case): () => void {
  const step = new FlowSequence([new ActNorm({ dim: DIM, backend }), new InvertibleLinearLU({ dim: DIM, seed: 1, backend })]);
  const fill = (n: number, seed: number): ReturnType<Backend['alloc']> => {
    const a = backend.alloc(n);
    backend.rng.normal(seed, 0, a);
    return a;
  };
  const x = fill(c.batch * DIM, 1);
  const gy = fill(c.batch * DIM, 2);
  const gl = fill(c.batch, 3);
  step.forward(x, c.batch); // ActNorm's data-dependent initialization happens here, outside the timing
  const params = step.parameters();
  if (c.mode === 'forward') return () => void step.forward(x, c.batch);
  return () => {
    step.forward(x, c.batch);
    for (const p of params) p.grad.fill(0);
    step.backward(gy, gl);
  };
}

interface TorchResult {
  torch: string;
  results: number[];
}

export async function run(): Promise<void> {
  const rounds = Number(process.env.FLOWVAE_BENCH_ROUNDS ?? 3);
  const seconds = Number(process.env.FLOWVAE_BENCH_SECONDS ?? 0.1);
  const cases: Case[] = BATCHES.flatMap((batch) => (['forward', 'backward'] as Mode[]).map((mode) => ({ batch, mode })));
  const cpuInfo = backends().find((b) => b.name === 'cpu')!;
  const cpu = cpuInfo.available ? backendByName('cpu') : null;
  const reference = backendByName('reference');
  console.log(`Glow step (ActNorm + LU linear), D = ${DIM}; cpu backend: ${cpu ? `simd ${cpuInfo.simd}` : cpuInfo.reason}`);

  const times = cases.map(() => ({ reference: NaN, cpu1: NaN, cpu2: NaN, torch1: [] as number[], torch2: [] as number[] }));
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
      const out = runPython<TorchResult>('glow_torch.py', { threads, minSeconds: seconds, rounds: 1, cases: cases.map((c) => ({ ...c, dim: DIM })) }, threads);
      if (!out.result) {
        torchReason = out.reason;
        continue;
      }
      torchVersion = out.result.torch;
      out.result.results.forEach((t, i) => times[i][`torch${threads}`].push(t));
    }
  }

  const fmt = (v: number) => (Number.isFinite(v) ? si(v) : '—');
  const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) ? `${(a / b).toFixed(1)}×` : '—');
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
      `actnorm+linear-lu B=${c.batch} D=${DIM}`,
      c.mode === 'forward' ? 'fwd+logdet' : 'fwd+bwd',
      fmt(r.reference),
      fmt(r.cpu1),
      fmt(r.cpu2),
      fmt(r.torch1),
      fmt(r.torch2),
      ratio(r.cpu1, r.torch1),
      ratio(r.cpu2, r.torch2),
      ratio(r.cpu1, r.reference),
    ]);
    records.push({ case: 'actnorm+linear-lu', batch: c.batch, dim: DIM, mode: c.mode, samplesPerSecond: r });
  });
  console.log('samples/s (medians); ratios of samples/s');
  printTable(rows);
  if (torchReason) console.log(`PyTorch peer unavailable in some rounds: ${torchReason}`);
  const file = writeResults('glow', { simd: cpuInfo.simd ?? null, torch: torchVersion || null, rounds, secondsPerMeasurement: seconds, cases: records });
  console.log(`wrote ${file}`);
}
