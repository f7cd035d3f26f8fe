/**
 * `npm run bench -- spline` (also part of `flows`): forward + backward
 * samples/s of a rational-quadratic neural spline flow, coupling form (D = 40,
 * 4 couplings, K = 8 bins on [−3, 3), each conditioner an MLP
 * 20 → 256 → 256 → 20·23, ReLU, no context) at batch 256 and 4096, on
 * reference, cpu with 1 and 2 threads, and PyTorch CPU with the same model
 * and threads, written as nflows writes it (bench/peers/spline_torch.py).
 * The conditioners' last layers start at 0.01·sin(i) in both, so the splines
 * are not the identity. The loss is Σ y ⊙ wy + Σ logDet ⊙ wl, so backward
 * produces input and every parameter gradient. Also reports, for cpu at one
 * thread, the share of a step spent in the spline kernels and in the
 * conditioners' dense kernels.
 */
import * as os from 'node:os';
import { backendByName, backends, getNumThreads, setNumThreads } from '../src/backend';
import type { Backend } from '../src/backend/backend';
import type { CouplingFlow } from '../src/flows/coupling';
import { SplineCouplingFlow } from '../src/flows/spline';
import { median, printTable, runPython, si, timeIt, writeResults } from './common';

const DIM = 40;
const LAYERS = 4;
const BINS = 8;
const BOUND = 3;
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
  const flow = new SplineCouplingFlow({ dim: DIM, layers: LAYERS, bins: BINS, bound: BOUND, hidden: HIDDEN, activation: 'relu', seed: 1, backend });
  for (const coupling of flow.flows as readonly CouplingFlow[]) {
    const last = coupling.conditioner.layers[coupling.conditioner.layers.length - 1].weight.value;
    for (let i = 0; i < last.length; i++) last[i] = 0.01 * Math.sin(i);
  }
  const x = backend.alloc(batch * DIM);
  for (let i = 0; i < x.length; i++) x[i] = 1.5 * Math.sin(i);
  const wy = backend.alloc(batch * DIM);
  const wl = backend.alloc(batch);
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

/** Seconds per step (cpu) in total, in the spline kernels and in the dense kernels (wrapped and timed). */
function breakdown(batch: number): { total: number; spline: number; dense: number } {
  const cpu = backendByName('cpu');
  const spent = { spline: 0, dense: 0 };
  const timed =
    <A extends unknown[]>(key: keyof typeof spent, f: (...a: A) => void) =>
    (...a: A) => {
      const t0 = process.hrtime.bigint();
      f(...a);
      spent[key] += Number(process.hrtime.bigint() - t0) / 1e9;
    };
  const wrapped: Backend = {
    ...cpu,
    dense: { gemm: timed('dense', cpu.dense.gemm), forward: timed('dense', cpu.dense.forward), backward: timed('dense', cpu.dense.backward) },
    spline: { forward: timed('spline', cpu.spline.forward), backward: timed('spline', cpu.spline.backward), inverse: timed('spline', cpu.spline.inverse) },
  };
  const { step } = setup(wrapped, batch);
  step();
  const calls = batch >= 4096 ? 5 : 40;
  spent.spline = 0;
  spent.dense = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) step();
  const total = Number(process.hrtime.bigint() - t0) / 1e9 / calls;
  return { total, spline: spent.spline / calls, dense: spent.dense / calls };
}

export async function run(): Promise<void> {
  const hasCpu = backends().find((b) => b.name === 'cpu')!.available;
  const before = hasCpu ? getNumThreads() : 1;
  const loadBefore = os.loadavg()[0];
  const reference = backendByName('reference');
  // The float64 TypeScript reference takes about a second per step at batch 256: one short round there, none at 4096.
  const refRate = rate(reference, BATCHES[0], 0.5, 1);
  const rows: (string | number)[][] = [['batch', 'threads', 'reference', 'cpu', 'PyTorch', 'cpu/PyTorch']];
  const results: Record<string, unknown>[] = [];
  let peerReason = '';
  for (const threads of [1, 2]) {
    for (const batch of BATCHES) {
      // Contenders alternate round by round so load on a shared machine hits both alike.
      const cpuRates: number[] = [];
      const torchRates: number[] = [];
      const ratios: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const spec = { threads, dim: DIM, layers: LAYERS, hidden: HIDDEN, bins: BINS, bound: BOUND, batches: [batch], rounds: 3 };
        const peer = runPython<Record<string, number>>('spline_torch.py', spec, threads);
        if (peer.result) torchRates.push(peer.result[String(batch)]);
        else peerReason = peer.reason;
        if (hasCpu) {
          setNumThreads(threads);
          cpuRates.push(rate(backendByName('cpu'), batch, 0.3, 3));
        }
        if (peer.result && hasCpu) ratios.push(cpuRates[cpuRates.length - 1] / torchRates[torchRates.length - 1]);
      }
      const cpu = cpuRates.length ? median(cpuRates) : NaN;
      const torch = torchRates.length ? median(torchRates) : undefined;
      const ref = batch === BATCHES[0] && threads === 1 ? refRate : undefined;
      const ratio = ratios.length ? median(ratios) : undefined;
      rows.push([batch, threads, ref ? si(ref) : '-', si(cpu), torch ? si(torch) : '-', ratio ? ratio.toFixed(2) : '-']);
      results.push({ batch, threads, reference: ref, cpu, torch, ratio, cpuRounds: cpuRates, torchRounds: torchRates, ratioRounds: ratios });
    }
  }
  const shares: Record<string, unknown>[] = [];
  if (hasCpu) {
    setNumThreads(1);
    for (const batch of BATCHES) {
      const b = breakdown(batch);
      shares.push({ batch, threads: 1, secondsPerStep: b.total, splineSeconds: b.spline, denseSeconds: b.dense });
    }
    setNumThreads(before);
  }
  if (peerReason) console.log(`PyTorch peer unavailable: ${peerReason}`);
  console.log(
    `Spline coupling flow forward + backward, samples/s, median of ${ROUNDS} interleaved rounds; cpu/PyTorch is the median of per-round ratios ` +
      `(D = ${DIM}, ${LAYERS} couplings, K = ${BINS} bins on [−${BOUND}, ${BOUND}), conditioner ${DIM / 2} → ${HIDDEN.join(' → ')} → ${(DIM / 2) * (3 * BINS - 1)}, ReLU):`,
  );
  printTable(rows);
  const loadAverage = { before: loadBefore, after: os.loadavg()[0] };
  if (Math.max(loadAverage.before, loadAverage.after) > os.cpus().length) {
    console.log(
      `load average ${loadAverage.before.toFixed(1)} → ${loadAverage.after.toFixed(1)} on ${os.cpus().length} cores: the 2-thread figures are not meaningful`,
    );
  }
  for (const s of shares) {
    const total = s.secondsPerStep as number;
    console.log(
      `cpu 1 thread, batch ${s.batch}: step ${(total * 1e3).toFixed(2)} ms, ` +
        `${((100 * (s.splineSeconds as number)) / total).toFixed(1)}% in the spline kernels, ` +
        `${((100 * (s.denseSeconds as number)) / total).toFixed(1)}% in the dense kernels`,
    );
  }
  console.log(
    `\nwrote ${writeResults('spline', { model: { dim: DIM, layers: LAYERS, bins: BINS, bound: BOUND, hidden: HIDDEN, activation: 'relu' }, results, shares, loadAverage })}`,
  );
}
