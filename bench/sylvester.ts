/**
 * Sylvester flow throughput: forward + backward (Q orthogonalization and its
 * backward included) of a stack of K = 16 layers with M = D = 40, at batch 256
 * and 4096, for each variant with shared and with amortized parameters, in
 * samples per second: the reference backend, the cpu backend at 1 and 2
 * threads, and PyTorch CPU (bench/peers/sylvester_torch.py, written as the
 * paper's reference code writes it) at 1 and 2 threads, with ratios.
 *
 * Shared parameters are SylvesterFlow's initialization (raw Q with orthonormal
 * columns); amortized ones are what an encoder head emits at the start of
 * training: R, R̃ and b within ±0.01 and Gaussian raw Q / Householder vectors
 * (Björck then needs 15–35 steps per matrix, on both sides). Householder
 * variant: 8 reflections (the paper's default). Björck tolerance 1e-5.
 *
 * Slow contenders are measured on fewer rows: a short probe predicts the call
 * time, and a contender whose call would exceed FLOWVAE_BENCH_BUDGET seconds
 * (default 0.5; half that for the reference) is measured at the largest
 * batch (halving from the target) that fits; the
 * table marks such figures with the batch used (per-row cost is what is
 * compared; with amortized parameters the work is exactly linear in rows).
 * The cpu contenders are interleaved round by round; the peer runs in its own
 * process.
 *
 * Environment: FLOWVAE_BENCH_BUDGET, FLOWVAE_BENCH_CASES (only cases whose
 * name contains this text), FLOWVAE_BENCH_SECONDS (time per round, default 0.1).
 */
import { backendByName, backends, getNumThreads, setNumThreads } from '../src/backend';
import type { Backend } from '../src/backend/backend';
import { SYLVESTER_VARIANTS, type SylvesterVariant } from '../src/backend/kernels/sylvester';
import { SylvesterFlow } from '../src/flows/sylvester';
import { median, printTable, runPython, si, timeInterleaved, writeResults } from './common';

const DIM = 40;
const LAYERS = 16;
const HOUSEHOLDERS = 8;
const BATCHES = [256, 4096];
const BUDGET = Number(process.env.FLOWVAE_BENCH_BUDGET ?? 0.5);
const MIN_SECONDS = Number(process.env.FLOWVAE_BENCH_SECONDS ?? 0.1);
const ROUNDS = 3;
/** The pure-TypeScript reference is measured on fewer rows still (its rate is what matters). */
const REFERENCE_BUDGET = BUDGET / 2;
const TOLERANCE = 1e-5;
const MAX_STEPS = 100;

interface Measured {
  seconds: number;
  batch: number;
}

interface Case {
  name: string;
  variant: SylvesterVariant;
  amortized: boolean;
  batch: number;
}

/** Deterministic normal generator (Box–Muller over a small LCG), independent of the library. */
function normalStream(seed: number): () => number {
  let s = seed >>> 0 || 1;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next());
}

function filled(backend: Backend, n: number, seed: number): ReturnType<Backend['alloc']> {
  const a = backend.alloc(n);
  const z = normalStream(seed);
  for (let i = 0; i < n; i++) a[i] = z();
  return a;
}

/** One forward + backward call of the case on `backend` with `batch` rows. */
function setup(backend: Backend, c: Case, batch: number): () => void {
  const flow = new SylvesterFlow({
    dim: DIM,
    layers: LAYERS,
    variant: c.variant,
    householders: c.variant === 'householder' ? HOUSEHOLDERS : undefined,
    amortized: c.amortized,
    seed: 1,
    backend,
    bjorckTolerance: TOLERANCE,
    bjorckSteps: MAX_STEPS,
  });
  let params: ReturnType<Backend['alloc']> | undefined;
  if (c.amortized) {
    const { size, q } = flow.layout;
    params = backend.alloc(batch * size);
    const z = normalStream(3);
    for (let r = 0; r < batch; r++) for (let i = 0; i < size; i++) params[r * size + i] = i < q ? 0.005 * z() : z();
  }
  const x = filled(backend, batch * DIM, 5);
  const gy = filled(backend, batch * DIM, 6);
  const gl = filled(backend, batch, 7);
  return () => {
    flow.forward(x, batch, { params });
    flow.backward(gy, gl);
  };
}

function seconds(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/**
 * The largest batch ≤ target (halving) whose predicted call time fits the
 * budget. Two probes fit time = fixed + perRow·rows (shared parameters have a
 * fixed orthogonalization cost per call).
 */
function chooseBatch(backend: Backend, c: Case, threads: number, budget: number, probeRows: [number, number]): Measured | number {
  setNumThreads(threads);
  const probes: { b: number; t: number }[] = [];
  for (const b of [...new Set(probeRows.map((r) => Math.min(c.batch, r)))]) {
    const fn = setup(backend, c, b);
    fn();
    probes.push({ b, t: seconds(fn) });
    // Even a few rows exceed the budget: the probe is the measurement.
    if (probes[probes.length - 1].t > budget) return { seconds: probes[probes.length - 1].t, batch: b };
  }
  const first = probes[0];
  const last = probes[probes.length - 1];
  const perRow = last.b > first.b ? Math.max(last.t - first.t, 0) / (last.b - first.b) : first.t / first.b;
  let batch = c.batch;
  while (batch > first.b && first.t + perRow * (batch - first.b) > budget) batch /= 2;
  return batch;
}

/** Median seconds per call of several contenders at one batch, interleaved; few single calls when slow. */
function measure(contenders: { fn: () => void; threads: number }[]): number[] {
  const prepared = contenders.map(({ fn, threads }) => ({ fn, prepare: () => setNumThreads(threads) }));
  prepared.forEach((p) => p.prepare());
  const estimate = Math.max(...prepared.map((p) => (p.prepare(), p.fn(), seconds(p.fn))));
  if (estimate < MIN_SECONDS) return timeInterleaved(prepared, { minSeconds: MIN_SECONDS, rounds: ROUNDS });
  const samples: number[][] = prepared.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    prepared.forEach((p, i) => {
      p.prepare();
      samples[i].push(seconds(p.fn));
    });
  }
  return samples.map(median);
}

interface PeerResult {
  seconds: number;
  batch: number;
  steps: number;
}

export async function run(): Promise<void> {
  const savedThreads = getNumThreads();
  const filter = process.env.FLOWVAE_BENCH_CASES ?? '';
  const cases: Case[] = [];
  for (const amortized of [false, true]) {
    for (const variant of SYLVESTER_VARIANTS) {
      for (const batch of BATCHES) {
        const name = `${variant} ${amortized ? 'amortized' : 'shared'} B=${batch}`;
        if (name.includes(filter)) cases.push({ name, variant, amortized, batch });
      }
    }
  }
  const reference = backendByName('reference');
  const cpuInfo = backends().find((b) => b.name === 'cpu')!;
  const cpu = cpuInfo.available ? backendByName('cpu') : null;
  if (!cpu) console.log(`cpu backend unavailable (${cpuInfo.reason}): only the reference and the peer are measured`);
  console.log(
    `Sylvester flows, D = M = ${DIM}, K = ${LAYERS}, Householder reflections ${HOUSEHOLDERS}; forward + backward; ` +
      `samples/s (figures marked @B were measured on B rows; budget ${BUDGET} s per call)\n`,
  );

  const ours: Record<string, { reference: Measured; cpu1?: Measured; cpu2?: Measured }> = {};
  for (const c of cases) {
    const refChoice = chooseBatch(reference, c, 1, REFERENCE_BUDGET, [1, 4]);
    const entry: (typeof ours)[string] = {
      reference: typeof refChoice === 'number' ? { seconds: measure([{ fn: setup(reference, c, refChoice), threads: 1 }])[0], batch: refChoice } : refChoice,
    };
    if (cpu) {
      const choice = chooseBatch(cpu, c, 1, BUDGET, [32, 256]);
      const b = typeof choice === 'number' ? choice : choice.batch;
      const fn = setup(cpu, c, b);
      const [s1, s2] = measure([
        { fn, threads: 1 },
        { fn, threads: 2 },
      ]);
      entry.cpu1 = { seconds: s1, batch: b };
      entry.cpu2 = { seconds: s2, batch: b };
    }
    ours[c.name] = entry;
    process.stdout.write('.');
  }
  setNumThreads(savedThreads);
  process.stdout.write('\n');

  const peerSpec = (threads: number) => ({
    threads,
    budget: BUDGET,
    minSeconds: MIN_SECONDS,
    rounds: ROUNDS,
    cases: cases.map((c) => ({
      name: c.name,
      variant: c.variant,
      dim: DIM,
      m: DIM,
      layers: LAYERS,
      householders: c.variant === 'householder' ? HOUSEHOLDERS : 0,
      batch: c.batch,
      amortized: c.amortized,
      tolerance: TOLERANCE,
      maxSteps: MAX_STEPS,
    })),
  });
  const peer1 = runPython<Record<string, PeerResult>>('sylvester_torch.py', peerSpec(1), 1);
  const peer2 = runPython<Record<string, PeerResult>>('sylvester_torch.py', peerSpec(2), 2);
  if (!peer1.result) console.log(`PyTorch peer unavailable: ${peer1.reason}`);

  const rate = (m: Measured | PeerResult | undefined) => (m ? m.batch / m.seconds : NaN);
  const cell = (m: Measured | PeerResult | undefined, target: number) => (m ? `${si(rate(m))}${m.batch < target ? ` @${m.batch}` : ''}` : '—');
  const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) ? `${(a / b).toFixed(1)}×` : '—');
  const rows: (string | number)[][] = [
    ['case', 'reference', 'cpu 1t', 'cpu 2t', 'torch 1t', 'torch 2t', 'cpu/torch 1t', 'cpu/torch 2t', 'cpu 1t/ref', 'torch Björck steps'],
  ];
  const json: Record<string, unknown>[] = [];
  for (const c of cases) {
    const o = ours[c.name];
    const t1 = peer1.result?.[c.name];
    const t2 = peer2.result?.[c.name];
    rows.push([
      c.name,
      cell(o.reference, c.batch),
      cell(o.cpu1, c.batch),
      cell(o.cpu2, c.batch),
      cell(t1, c.batch),
      cell(t2, c.batch),
      ratio(rate(o.cpu1), rate(t1)),
      ratio(rate(o.cpu2), rate(t2)),
      ratio(rate(o.cpu1), rate(o.reference)),
      c.variant === 'orthogonal' && t1 ? t1.steps : '',
    ]);
    json.push({
      case: c.name,
      variant: c.variant,
      amortized: c.amortized,
      batch: c.batch,
      samplesPerSecond: {
        reference: rate(o.reference),
        cpu1: rate(o.cpu1),
        cpu2: rate(o.cpu2),
        torch1: rate(t1),
        torch2: rate(t2),
      },
      measuredBatch: {
        reference: o.reference.batch,
        cpu: o.cpu1?.batch ?? null,
        torch1: t1?.batch ?? null,
        torch2: t2?.batch ?? null,
      },
      torchBjorckSteps: t1?.steps ?? null,
    });
  }
  printTable(rows);
  const file = writeResults('sylvester', {
    dim: DIM,
    m: DIM,
    layers: LAYERS,
    householders: HOUSEHOLDERS,
    bjorckTolerance: TOLERANCE,
    budgetSeconds: BUDGET,
    simd: cpuInfo.simd ?? null,
    peer: { threads1: peer1.reason || 'ok', threads2: peer2.reason || 'ok' },
    results: json,
  });
  console.log(`\nwritten ${file}`);
}
