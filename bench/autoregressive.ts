/**
 * `npm run bench -- autoregressive`: forward + backward samples/s of an IAF
 * stack (D = 40, MADE hidden [320], K = 4, context of width 40, as in a VAE
 * posterior) at batch 256 and 4096, on reference, cpu with 1 and 2 threads,
 * and PyTorch CPU with the same model and threads (bench/peers/iaf_torch.py).
 * The loss is Σ y ⊙ wy + Σ logDet ⊙ wl, so backward produces input, context
 * and every parameter gradient.
 */
import { backendByName, backends, getNumThreads, setNumThreads } from '../src/backend';
import type { Backend } from '../src/backend/backend';
import { IAFFlow } from '../src/flows/iaf';
import { median, printTable, runPython, si, timeIt, writeResults } from './common';

const DIM = 40;
const HIDDEN = [320];
const LAYERS = 4;
const CONTEXT = 40;
const BATCHES = [256, 4096];
const ROUNDS = 3;

function fill(a: Float32Array | Float64Array, seed: number): void {
  let s = seed >>> 0;
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    a[i] = s / 4294967296 - 0.5;
  }
}

/** Samples/s of forward + backward at this batch. */
function rate(backend: Backend, batch: number, minSeconds: number, rounds: number): number {
  const flow = new IAFFlow({ dim: DIM, layers: LAYERS, hidden: HIDDEN, contextDim: CONTEXT, seed: 1, backend });
  const z = backend.alloc(batch * DIM);
  const context = backend.alloc(batch * CONTEXT);
  const wy = backend.alloc(batch * DIM);
  const wl = backend.alloc(batch);
  fill(z, 1);
  fill(context, 2);
  fill(wy, 3);
  fill(wl, 4);
  const params = flow.parameters();
  const step = () => {
    for (const p of params) p.grad.fill(0);
    flow.forward(z, batch, { context });
    flow.backward(wy, wl);
  };
  return batch / timeIt(step, { minSeconds, rounds });
}

export async function run(): Promise<void> {
  const hasCpu = backends().find((b) => b.name === 'cpu')!.available;
  const before = hasCpu ? getNumThreads() : 1;
  const reference = backendByName('reference');
  // The float64 TypeScript reference is only timed at the small batch (seconds per call at 4096).
  const refRate = rate(reference, BATCHES[0], 0.5, 3);
  const rows: (string | number)[][] = [['batch', 'threads', 'reference', 'cpu', 'PyTorch', 'cpu/PyTorch']];
  const results: Record<string, unknown>[] = [];
  let peerReason = '';
  for (const threads of [1, 2]) {
    for (const batch of BATCHES) {
      // Contenders alternate round by round so load on a shared machine hits both alike.
      const cpuRates: number[] = [];
      const torchRates: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const spec = { threads, dim: DIM, layers: LAYERS, hidden: HIDDEN, contextDim: CONTEXT, batches: [batch], rounds: 3 };
        const peer = runPython<Record<string, number>>('iaf_torch.py', spec, threads);
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
  if (hasCpu) setNumThreads(before);
  if (peerReason) console.log(`PyTorch peer unavailable: ${peerReason}`);
  console.log(
    `IAF forward + backward, samples/s, median of ${ROUNDS} interleaved rounds (D = ${DIM}, MADE hidden [${HIDDEN}], K = ${LAYERS}, context ${CONTEXT}):`,
  );
  printTable(rows);
  console.log(`\nwrote ${writeResults('autoregressive', { model: { dim: DIM, hidden: HIDDEN, layers: LAYERS, contextDim: CONTEXT }, results })}`);
}
