/**
 * Throughput of the memory-bound kernels: elementwise activations (forward
 * and backward) and the fused Adam step, at n = 1e6 (about the parameter
 * count of an MNIST VAE), on the reference backend, the cpu backend at 1 and
 * 2 threads, and PyTorch (bench/peers/kernels_torch.py) at 1 and 2 threads.
 *
 * Each case is one entry of CASES: how to run it on a backend, how many
 * arrays it streams (for GB/s), and the peer's version of it. The node
 * contenders are interleaved round by round; the peer runs in its own process.
 * GB/s counts the bytes each contender moves at its own element size (8 for
 * the reference, 4 for float32), so ratios are of elements per second.
 *
 * Environment: FLOWVAE_BENCH_SECONDS (time per contender per round, default
 * 0.3), FLOWVAE_BENCH_CASES (only cases whose name contains this text).
 */
import { backendByName, backends, getNumThreads, setNumThreads } from '../src/backend';
import type { Backend } from '../src/backend/backend';
import type { Activation } from '../src/backend/kernels/elementwise';
import type { AdamStepOptions } from '../src/backend/kernels/adam';
import type { FloatArray } from '../src/backend/types';
import { printTable, runPython, si, timeInterleaved, writeResults } from './common';

const N = 1_000_000;
const MIN_SECONDS = Number(process.env.FLOWVAE_BENCH_SECONDS ?? 0.3);
const ROUNDS = 5;

/** What a case asks of the PyTorch peer (see bench/peers/kernels_torch.py). */
interface PeerCase {
  op: 'forward' | 'backward' | 'adam';
  activation?: Activation;
  alpha?: number;
  options?: AdamStepOptions;
}

interface KernelCase {
  name: string;
  n: number;
  /** Arrays read or written once per call (x and y for a forward, …). */
  streams: number;
  /** Allocates inputs on the backend and returns one call of the kernel. */
  setup(backend: Backend, n: number): () => void;
  peer: PeerCase | null;
}

/** Inputs spread over the interesting range of the activations. */
function activationInputs(backend: Backend, n: number): FloatArray {
  const x = backend.alloc(n);
  for (let i = 0; i < n; i++) x[i] = 8 * Math.sin(i * 0.618);
  return x;
}

function forwardCase(activation: Activation): KernelCase {
  return {
    name: `${activation} forward`,
    n: N,
    streams: 2, // read x, write y
    setup(b, n) {
      const x = activationInputs(b, n);
      const y = b.alloc(n);
      return () => b.elementwise.forward(activation, x, y, n, 1);
    },
    peer: { op: 'forward', activation, alpha: 1 },
  };
}

function backwardCase(activation: Activation): KernelCase {
  return {
    name: `${activation} backward`,
    n: N,
    streams: 3, // read x or y, read dy, write dx
    setup(b, n) {
      const x = activationInputs(b, n);
      const y = b.alloc(n);
      b.elementwise.forward(activation, x, y, n, 1);
      const dy = b.alloc(n).fill(0.5);
      const dx = b.alloc(n);
      return () => b.elementwise.backward(activation, x, y, dy, dx, n, 1);
    },
    peer: { op: 'backward', activation, alpha: 1 },
  };
}

function adamCase(label: string, options: Omit<AdamStepOptions, 'step'>): KernelCase {
  return {
    name: `adam ${label}`,
    n: N,
    streams: 7, // read params, grads, m, v; write params, m, v
    setup(b, n) {
      const params = activationInputs(b, n);
      const grads = b.alloc(n);
      for (let i = 0; i < n; i++) grads[i] = Math.cos(i * 0.37);
      const m = b.alloc(n);
      const v = b.alloc(n);
      let step = 0;
      return () => void b.adam.step(params, grads, m, v, n, { ...options, step: ++step });
    },
    peer: { op: 'adam', options: { ...options, step: 1 } },
  };
}

/** Philox streams: normals (Box–Muller, portable log/sin/cos) or uniforms; no peer (PyTorch's generator differs). */
function rngCase(kind: 'normal' | 'uniform'): KernelCase {
  return {
    name: `rng ${kind}`,
    n: N,
    streams: 1, // write out
    setup(b, n) {
      const out = b.alloc(n);
      let offset = 0;
      return () => {
        b.rng[kind](42, offset, out);
        offset += n;
      };
    },
    peer: null,
  };
}

const ADAM: Omit<AdamStepOptions, 'step'> = {
  lr: 1e-3,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  decoupled: false,
  maxGradNorm: 0,
};

const CASES: KernelCase[] = [
  forwardCase('relu'),
  forwardCase('tanh'),
  forwardCase('sigmoid'),
  forwardCase('softplus'),
  backwardCase('tanh'),
  backwardCase('softplus'),
  adamCase('(Adam)', ADAM),
  adamCase('(AdamW, clip 1.0)', { ...ADAM, weightDecay: 0.01, decoupled: true, maxGradNorm: 1 }),
  rngCase('normal'),
  rngCase('uniform'),
  // Other memory-bound kernel families add their cases here.
];

interface Contender {
  name: string;
  backend: Backend;
  threads: number;
}

interface Row {
  kernel: string;
  contender: string;
  seconds: number;
  elementsPerSecond: number;
  gigabytesPerSecond: number;
  vsReference: number;
  note?: string;
}

export async function run(): Promise<void> {
  const savedThreads = getNumThreads();
  const cpuInfo = backends().find((b) => b.name === 'cpu')!;
  const contenders: Contender[] = [{ name: 'reference', backend: backendByName('reference'), threads: 1 }];
  if (cpuInfo.available) {
    const cpu = backendByName('cpu');
    contenders.push({ name: 'cpu 1 thread', backend: cpu, threads: 1 }, { name: 'cpu 2 threads', backend: cpu, threads: 2 });
  } else {
    console.log(`cpu backend unavailable (${cpuInfo.reason}): only the reference and the peer are measured`);
  }

  const filter = process.env.FLOWVAE_BENCH_CASES ?? '';
  const cases = CASES.filter((c) => c.name.includes(filter));
  const rows: Row[] = [];
  const addRow = (c: KernelCase, contender: string, seconds: number, bytesPerElement: number, reference: number, note?: string) =>
    rows.push({
      kernel: c.name,
      contender,
      seconds,
      elementsPerSecond: c.n / seconds,
      gigabytesPerSecond: (c.streams * bytesPerElement * c.n) / seconds / 1e9,
      vsReference: reference / seconds,
      ...(note ? { note } : {}),
    });

  const referenceSeconds = new Map<string, number>();
  for (const c of cases) {
    const timed = contenders.map((contender) => ({
      prepare: () => setNumThreads(contender.threads),
      fn: c.setup(contender.backend, c.n),
    }));
    const seconds = timeInterleaved(timed, { minSeconds: MIN_SECONDS, rounds: ROUNDS });
    referenceSeconds.set(c.name, seconds[0]);
    contenders.forEach((contender, i) => addRow(c, contender.name, seconds[i], contender.backend.dtype === 'float64' ? 8 : 4, seconds[0]));
  }
  setNumThreads(savedThreads);

  const peerCases = cases.filter((c) => c.peer).map((c) => ({ name: c.name, n: c.n, ...c.peer }));
  const peerReasons: string[] = [];
  for (const threads of [1, 2]) {
    const spec = { threads, minSeconds: MIN_SECONDS, rounds: ROUNDS, cases: peerCases };
    const { result, reason } = runPython<{ seconds: Record<string, number>; notes: Record<string, string> }>('kernels_torch.py', spec, threads);
    if (!result) {
      peerReasons.push(`torch ${threads} thread(s): ${reason}`);
      continue;
    }
    for (const c of cases) {
      const seconds = result.seconds[c.name];
      if (seconds !== undefined) {
        addRow(c, `torch ${threads} thread${threads > 1 ? 's' : ''}`, seconds, 4, referenceSeconds.get(c.name)!, result.notes[c.name]);
      }
    }
  }
  for (const reason of peerReasons) console.log(`peer skipped: ${reason}`);

  const order = (r: Row) => cases.findIndex((c) => c.name === r.kernel);
  rows.sort((a, b) => order(a) - order(b));
  printTable([
    ['kernel (n = 1e6)', 'contender', 'time', 'elements/s', 'GB/s', 'vs reference'],
    ...rows.map((r) => [
      r.kernel,
      r.contender,
      `${(r.seconds * 1e3).toFixed(3)} ms`,
      si(r.elementsPerSecond),
      r.gigabytesPerSecond.toFixed(1),
      `${r.vsReference.toFixed(1)}x`,
    ]),
  ]);
  const file = writeResults('kernels', {
    n: N,
    simd: cpuInfo.simd ?? 'unavailable',
    minSecondsPerRound: MIN_SECONDS,
    rounds: ROUNDS,
    peerSkipped: peerReasons,
    rows,
  });
  console.log(`\nwrote ${file}`);
}
