/**
 * `npm run bench -- coupling` (also part of `flows`): forward + backward
 * samples/s of a RealNVP stack (D = 40, K = 8 affine couplings, each with a
 * conditioner MLP 20 → 256 → 256 → 40, ReLU, no context) at batch 256 and
 * 4096, on reference, cpu with 1 and 2 threads, and PyTorch CPU with the same
 * model and threads (bench/peers/realnvp_torch.py). The loss is
 * Σ y ⊙ wy + Σ logDet ⊙ wl, so backward produces input and every parameter
 * gradient. Also reports the share of a cpu step spent outside the
 * conditioner's matrix products (the coupling glue).
 */
import * as os from 'node:os';
import { backendByName, backends, getNumThreads, setNumThreads } from '../src/backend';
import type { Backend } from '../src/backend/backend';
import { RealNVPFlow } from '../src/flows/realnvp';
import { median, printTable, runPython, si, timeIt, writeResults } from './common';

const DIM = 40;
const LAYERS = 8;
const HIDDEN = [256, 256];
const BATCHES = [256, 4096];
const ROUNDS = 3;

function fill(a: Float32Array | Float64Array, seed: number): void {
  let s = seed >>> 0;
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    a[i] = s / 4294967296 - 0.5;
  }
}

function setup(backend: Backend, batch: number) {
  const flow = new RealNVPFlow({ dim: DIM, layers: LAYERS, hidden: HIDDEN, activation: 'relu', seed: 1, backend });
  const x = backend.alloc(batch * DIM);
  const wy = backend.alloc(batch * DIM);
  const wl = backend.alloc(batch);
  fill(x, 1);
  fill(wy, 3);
  fill(wl, 4);
  const params = flow.parameters();
  const step = () => {
    for (const p of params) p.grad.fill(0);
    flow.forward(x, batch);
    flow.backward(wy, wl);
  };
  return { flow, step };
}

/** Samples/s of forward + backward at this batch. */
function rate(backend: Backend, batch: number, minSeconds: number, rounds: number): number {
  return batch / timeIt(setup(backend, batch).step, { minSeconds, rounds });
}

/**
 * Seconds per step spent in the conditioners' dense kernels vs the whole step
 * (cpu): the dense calls are timed by wrapping the backend's dense family.
 */
function glueShare(batch: number): { total: number; dense: number } {
  const cpu = backendByName('cpu');
  let dense = 0;
  const timed =
    <A extends unknown[]>(f: (...a: A) => void) =>
    (...a: A) => {
      const t0 = process.hrtime.bigint();
      f(...a);
      dense += Number(process.hrtime.bigint() - t0) / 1e9;
    };
  const wrapped: Backend = { ...cpu, dense: { gemm: timed(cpu.dense.gemm), forward: timed(cpu.dense.forward), backward: timed(cpu.dense.backward) } };
  const { step } = setup(wrapped, batch);
  step();
  const calls = batch >= 4096 ? 5 : 40;
  dense = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) step();
  const total = Number(process.hrtime.bigint() - t0) / 1e9 / calls;
  return { total, dense: dense / calls };
}

export async function run(): Promise<void> {
  const hasCpu = backends().find((b) => b.name === 'cpu')!.available;
  const loadBefore = os.loadavg()[0];
  const before = hasCpu ? getNumThreads() : 1;
  const reference = backendByName('reference');
  // The float64 TypeScript reference takes about a second per step at batch
  // 256 (~1 GFLOP): one short round there, none at 4096.
  const refRate = rate(reference, BATCHES[0], 0.5, 1);
  const rows: (string | number)[][] = [['batch', 'threads', 'reference', 'cpu', 'PyTorch', 'cpu/PyTorch']];
  const results: Record<string, unknown>[] = [];
  let peerReason = '';
  for (const threads of [1, 2]) {
    for (const batch of BATCHES) {
      // Contenders alternate round by round so load on a shared machine hits both alike.
      const cpuRates: number[] = [];
      const torchRates: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const spec = { threads, dim: DIM, layers: LAYERS, hidden: HIDDEN, batches: [batch], rounds: 3 };
        const peer = runPython<Record<string, number>>('realnvp_torch.py', spec, threads);
        if (peer.result) torchRates.push(peer.result[String(batch)]);
        else peerReason = peer.reason;
        if (hasCpu) {
          setNumThreads(threads);
          cpuRates.push(rate(backendByName('cpu'), batch, 0.3, 3));
        }
      }
      const cpu = cpuRates.length ? median(cpuRates) : NaN;
      const torch = torchRates.length ? median(torchRates) : undefined;
      const ref = batch === BATCHES[0] && threads === 1 ? refRate : undefined;
      rows.push([batch, threads, ref ? si(ref) : '-', si(cpu), torch ? si(torch) : '-', torch ? (cpu / torch).toFixed(2) : '-']);
      results.push({ batch, threads, reference: ref, cpu, torch, cpuRounds: cpuRates, torchRounds: torchRates });
    }
  }
  const glue: Record<string, unknown>[] = [];
  if (hasCpu) {
    setNumThreads(1);
    for (const batch of BATCHES) {
      const g = glueShare(batch);
      glue.push({ batch, threads: 1, secondsPerStep: g.total, denseSeconds: g.dense, glueShare: 1 - g.dense / g.total });
    }
    setNumThreads(before);
  }
  if (peerReason) console.log(`PyTorch peer unavailable: ${peerReason}`);
  console.log(
    `RealNVP forward + backward, samples/s, median of ${ROUNDS} interleaved rounds ` +
      `(D = ${DIM}, K = ${LAYERS} affine couplings, conditioner ${DIM / 2} → ${HIDDEN.join(' → ')} → ${DIM}, ReLU):`,
  );
  printTable(rows);
  for (const g of glue) {
    console.log(
      `cpu 1 thread, batch ${g.batch}: ${((g.glueShare as number) * 100).toFixed(1)}% of a step outside the dense kernels ` +
        `(step ${((g.secondsPerStep as number) * 1e3).toFixed(2)} ms)`,
    );
  }
  console.log(
    `\nwrote ${writeResults('coupling', {
      model: { dim: DIM, layers: LAYERS, hidden: HIDDEN, activation: 'relu' },
      // A busy machine (load above the core count) makes the 2-thread figures meaningless.
      loadAverage: { before: loadBefore, after: os.loadavg()[0] },
      results,
      glue,
    })}`,
  );
}
