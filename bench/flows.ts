/**
 * Flow-stack throughput (samples/s): forward + log-det, and forward +
 * backward (input and every parameter gradient), for each registered case
 * (family × shape × shared/amortized) on the reference backend, the cpu
 * backend at 1 and 2 threads, and PyTorch CPU (bench/peers/flows_torch.py)
 * at 1 and 2 threads. Contenders are interleaved round by round and we quote
 * medians; ratios are per round-median.
 *
 * Amortized cases are mostly memory traffic (K·P parameters per example read
 * twice and their gradients written), so they also report the bandwidth
 * bound: bytes that must move ÷ measured copy bandwidth, and the fraction of
 * it the 1-thread cpu kernel reaches.
 *
 * Add a family by appending to FAMILIES (and to FAMILIES in the peer script).
 *
 * Environment: FLOWVAE_BENCH_ROUNDS (default 3), FLOWVAE_BENCH_SECONDS
 * (seconds per measurement, default 0.08), FLOWVAE_BENCH_QUICK=1 (only
 * B = 4096, D = 40, K = 16).
 */
import type { Backend } from '../src/backend/backend';
import { backendByName, backends, setNumThreads } from '../src/backend';
import type { FloatArray } from '../src/backend/types';
import type { Flow } from '../src/flows/flow';
import { PlanarFlow } from '../src/flows/planar';
import { RadialFlow } from '../src/flows/radial';
import { copyBandwidth, median, printTable, runPython, si, timeIt, writeResults } from './common';

interface FlowFamilyBench {
  /** Family name, also the peer's name for it. */
  name: string;
  /** Values per layer. */
  paramSize(dim: number): number;
  create(backend: Backend, dim: number, layers: number, amortized: boolean): Flow;
}

const FAMILIES: FlowFamilyBench[] = [
  {
    name: 'planar',
    paramSize: (d) => 2 * d + 1,
    create: (backend, dim, layers, amortized) => new PlanarFlow({ dim, layers, amortized, seed: 1, backend }),
  },
  {
    name: 'radial',
    paramSize: (d) => d + 2,
    create: (backend, dim, layers, amortized) => new RadialFlow({ dim, layers, amortized, seed: 1, backend }),
  },
];

type Mode = 'forward' | 'backward';

interface Case {
  family: FlowFamilyBench;
  batch: number;
  dim: number;
  layers: number;
  amortized: boolean;
  mode: Mode;
}

function caseName(c: Case): string {
  return `${c.family.name} ${c.amortized ? 'amort' : 'shared'} B=${c.batch} D=${c.dim} K=${c.layers}`;
}

function cases(): Case[] {
  const quick = process.env.FLOWVAE_BENCH_QUICK === '1';
  const list: Case[] = [];
  for (const family of FAMILIES) {
    for (const amortized of [false, true]) {
      for (const batch of quick ? [4096] : [256, 4096]) {
        for (const dim of quick ? [40] : [2, 40]) {
          for (const layers of quick ? [16] : [16, 32]) {
            for (const mode of ['forward', 'backward'] as Mode[]) list.push({ family, batch, dim, layers, amortized, mode });
          }
        }
      }
    }
  }
  return list;
}

/** Bytes a fused kernel must move per call (float32): inputs read once, outputs written once. */
function bytesMoved(c: Case): number {
  const { batch: B, dim: D, layers: K } = c;
  const P = c.family.paramSize(D);
  const params = c.amortized ? B * K * P : 0;
  // forward: x, params in; y, logDet, stash out.
  const forward = B * D + params + B * D + B + B * K;
  // backward: saved x or y, stash, params, dy, dLogDet in; dx, dParams out.
  const backward = B * D + B * K + params + B * D + B + B * D + params;
  return 4 * (c.mode === 'forward' ? forward : forward + backward);
}

/** The reference backend is slow; it runs at B = 256 and at the headline shape only. */
function referenceRuns(c: Case): boolean {
  return c.batch === 256 || (c.dim === 40 && c.layers === 16);
}

interface Prepared {
  run: () => void;
}

function prepare(backend: Backend, c: Case): Prepared {
  const flow = c.family.create(backend, c.dim, c.layers, c.amortized);
  const fill = (n: number, seed: number, scale: number): FloatArray => {
    const a = backend.alloc(n);
    let s = seed;
    for (let i = 0; i < n; i++) {
      s = (s * 1103515245 + 12345) % 2147483648;
      a[i] = scale * (2 * (s / 2147483648) - 1);
    }
    return a;
  };
  const x = fill(c.batch * c.dim, 1, 1.5);
  const options = c.amortized ? { params: fill(c.batch * flow.amortizedSize, 2, 1 / Math.sqrt(c.dim)) } : undefined;
  const gy = fill(c.batch * c.dim, 3, 1);
  const gl = fill(c.batch, 4, 1);
  const params = flow.parameters();
  const run =
    c.mode === 'forward'
      ? () => {
          flow.forward(x, c.batch, options);
        }
      : () => {
          flow.forward(x, c.batch, options);
          for (const p of params) p.grad.fill(0);
          flow.backward(gy, gl);
        };
  return { run };
}

interface TorchResult {
  torch: string;
  results: (number | null)[];
}

export async function run(): Promise<void> {
  const rounds = Number(process.env.FLOWVAE_BENCH_ROUNDS ?? 3);
  const seconds = Number(process.env.FLOWVAE_BENCH_SECONDS ?? 0.08);
  const all = cases();
  const cpuInfo = backends().find((b) => b.name === 'cpu')!;
  const cpu = cpuInfo.available ? backendByName('cpu') : null;
  const reference = backendByName('reference');
  const bandwidth = copyBandwidth();
  console.log(
    `copy bandwidth ${si(bandwidth)}B/s (1 thread); cpu backend: ${cpu ? `simd ${cpuInfo.simd}` : cpuInfo.reason}; ${rounds} rounds, ${seconds} s per measurement`,
  );

  const prepared = all.map((c) => ({
    reference: referenceRuns(c) ? prepare(reference, c) : null,
    cpu: cpu ? prepare(cpu, c) : null,
  }));
  const times: Record<string, number[][]> = { reference: [], cpu1: [], cpu2: [], torch1: [], torch2: [] };
  for (const k of Object.keys(times)) times[k] = all.map(() => []);
  let torchVersion = '';
  let torchReason = '';
  const spec = (threads: number) => ({
    threads,
    minSeconds: seconds,
    rounds: 1,
    // Keeps the default run short when the peer is slow (a loaded machine).
    budgetSeconds: 30,
    cases: all.map((c) => ({ family: c.family.name, batch: c.batch, dim: c.dim, layers: c.layers, amortized: c.amortized, mode: c.mode })),
  });

  for (let round = 0; round < rounds; round++) {
    all.forEach((_c, i) => {
      const p = prepared[i];
      if (p.reference && round === 0) times.reference[i].push(timeIt(p.reference.run, { minSeconds: seconds / 2, rounds: 1 }));
      if (p.cpu) {
        setNumThreads(1);
        times.cpu1[i].push(timeIt(p.cpu.run, { minSeconds: seconds, rounds: 1 }));
        setNumThreads(2);
        times.cpu2[i].push(timeIt(p.cpu.run, { minSeconds: seconds, rounds: 1 }));
      }
    });
    for (const threads of [1, 2]) {
      const out = runPython<TorchResult>('flows_torch.py', spec(threads), threads);
      if (!out.result) {
        torchReason = out.reason;
        continue;
      }
      torchVersion = out.result.torch;
      out.result.results.forEach((t, i) => {
        if (t !== null) times[`torch${threads}`][i].push(t);
      });
    }
  }

  const rate = (ts: number[], batch: number) => (ts.length ? batch / median(ts) : NaN);
  const fmt = (v: number) => (Number.isFinite(v) ? si(v) : '—');
  const ratio = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) ? `${(a / b).toFixed(1)}×` : '—');
  const rows: (string | number)[][] = [
    ['case', 'mode', 'reference', 'cpu 1T', 'cpu 2T', 'torch 1T', 'torch 2T', 'cpu/torch 1T', 'cpu/torch 2T', 'cpu 1T/ref', 'bw bound', 'cpu 1T of bound'],
  ];
  const records: Record<string, unknown>[] = [];
  all.forEach((c, i) => {
    const r = {
      reference: rate(times.reference[i], c.batch),
      cpu1: rate(times.cpu1[i], c.batch),
      cpu2: rate(times.cpu2[i], c.batch),
      torch1: rate(times.torch1[i], c.batch),
      torch2: rate(times.torch2[i], c.batch),
    };
    // Samples/s if the kernel only had to stream its bytes at copy bandwidth.
    const bound = c.amortized ? (bandwidth / bytesMoved(c)) * c.batch : NaN;
    rows.push([
      caseName(c),
      c.mode === 'forward' ? 'fwd+logdet' : 'fwd+bwd',
      fmt(r.reference),
      fmt(r.cpu1),
      fmt(r.cpu2),
      fmt(r.torch1),
      fmt(r.torch2),
      ratio(r.cpu1, r.torch1),
      ratio(r.cpu2, r.torch2),
      ratio(r.cpu1, r.reference),
      fmt(bound),
      Number.isFinite(bound) && Number.isFinite(r.cpu1) ? `${((100 * r.cpu1) / bound).toFixed(0)}%` : '—',
    ]);
    records.push({
      family: c.family.name,
      amortized: c.amortized,
      batch: c.batch,
      dim: c.dim,
      layers: c.layers,
      mode: c.mode,
      samplesPerSecond: r,
      bytesPerCall: bytesMoved(c),
      bandwidthBoundSamplesPerSecond: Number.isFinite(bound) ? bound : null,
    });
  });
  console.log('samples/s (medians over rounds); ratios of samples/s');
  printTable(rows);
  if (torchReason) console.log(`PyTorch peer unavailable in some rounds: ${torchReason}`);
  const file = writeResults('flows', {
    copyBandwidthBytesPerSecond: bandwidth,
    simd: cpuInfo.simd ?? null,
    torch: torchVersion || null,
    rounds,
    secondsPerMeasurement: seconds,
    cases: records,
  });
  console.log(`wrote ${file}`);
}
