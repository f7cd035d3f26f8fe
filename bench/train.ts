/**
 * `npm run bench -- train`: examples/s of a VAE training epoch (MLP
 * 784-300-300-40, ReLU, Bernoulli likelihood, batch 100) for several
 * posteriors on cpu (1 and 2 threads) and reference, beside PyTorch CPU with
 * the same model and threads, and the epoch's matrix products alone through
 * numpy/OpenBLAS (the GEMM-only ceiling). Synthetic binary data: throughput
 * does not depend on the pixel values.
 */
import { backends, getNumThreads, setNumThreads } from '../src/backend';
import { VAE, type PosteriorSpec } from '../src/vae/vae';
import { printTable, runPython, si, writeResults } from './common';

interface Model {
  name: string;
  posterior: PosteriorSpec;
  /** Name of the same model in bench/peers/train_torch.py. */
  peer: string;
  /** Skip the reference backend (too slow to time in a benchmark run). */
  skipReference?: boolean;
}

const MODELS: Model[] = [
  { name: 'diagonal', posterior: 'diagonal', peer: 'diagonal' },
  { name: 'planar K=16 (amortized)', posterior: { flow: 'planar', layers: 16, amortized: true }, peer: 'planar' },
  { name: 'IAF K=4 (MADE 320)', posterior: { flow: 'iaf', layers: 4, hidden: [320] }, peer: 'iaf' },
  {
    name: 'Sylvester orthogonal K=16 (amortized)',
    posterior: { flow: 'sylvester-orthogonal', layers: 16, amortized: true },
    peer: 'sylvester',
    skipReference: true,
  },
];

function data(n: number): Float32Array {
  const x = new Float32Array(n * 784);
  let s = 12345;
  for (let i = 0; i < x.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    x[i] = s / 4294967296 < 0.13 ? 1 : 0;
  }
  return x;
}

// Examples/s of an epoch in steady state, as a training script sees it: one
// model and one `fit` over several epochs (the peer likewise keeps its model
// and optimizer across the epochs it times), median of the epochs after the
// first, each timed by `fit` itself from its first batch to its last.
async function epochRate(model: Model, backend: 'cpu' | 'reference', x: Float32Array, n: number): Promise<number> {
  const vae = new VAE({ inputDim: 784, latentDim: 40, encoder: { hidden: [300, 300] }, decoder: { hidden: [300, 300] }, posterior: model.posterior, backend });
  const input = backend === 'reference' ? Float64Array.from(x.subarray(0, n * 784)) : x.subarray(0, n * 784);
  const rates: number[] = [];
  await vae.fit(input, { epochs: 4, batchSize: 100, onEpoch: (m) => void rates.push(m.examplesPerSecond) });
  return rates.slice(1).sort((a, b) => a - b)[1];
}

export async function run(): Promise<void> {
  const available = backends();
  const hasCpu = available.find((b) => b.name === 'cpu')!.available;
  const n = 2000;
  const x = data(n);
  const before = hasCpu ? getNumThreads() : 1;
  const rows: (string | number)[][] = [['model', 'threads', 'reference', 'cpu', 'PyTorch', 'PyTorch pools', 'GEMM ceiling', 'cpu/PyTorch', 'cpu/ceiling']];
  const results: Record<string, unknown>[] = [];
  const refRates = new Map<string, number>();
  for (const model of MODELS) if (!model.skipReference) refRates.set(model.name, await epochRate(model, 'reference', x, 200));
  for (const threads of [1, 2]) {
    for (const model of MODELS) {
      // The peer runs right before flowvae, model by model: the machine's speed drifts over
      // minutes on a shared VM, so both sides of a ratio are measured as close together as possible.
      const peer = runPython<Record<string, { torch: number; torchConfig: string; gemm: number }>>(
        'train_torch.py',
        { threads, n, batch: 100, models: [model.peer], reps: 3 },
        threads,
      );
      if (!peer.result) console.log(`PyTorch peer unavailable: ${peer.reason}`);
      let cpu = NaN;
      if (hasCpu) {
        setNumThreads(threads);
        cpu = await epochRate(model, 'cpu', x, n);
      }
      const p = peer.result?.[model.peer];
      rows.push([
        model.name,
        threads,
        refRates.has(model.name) ? si(refRates.get(model.name)!) : '-',
        si(cpu),
        p ? si(p.torch) : '-',
        p ? p.torchConfig : '-',
        p ? si(p.gemm) : '-',
        p ? (cpu / p.torch).toFixed(2) : '-',
        p ? (cpu / p.gemm).toFixed(2) : '-',
      ]);
      results.push({
        model: model.name,
        threads,
        reference: refRates.get(model.name),
        cpu,
        torch: p?.torch,
        torchConfig: p?.torchConfig,
        gemmCeiling: p?.gemm,
      });
    }
  }
  if (hasCpu) setNumThreads(before);
  console.log('Training throughput, examples/s (MLP 784-300-300-40, batch 100):');
  printTable(rows);
  console.log(`\nwrote ${writeResults('train', { results })}`);
}
