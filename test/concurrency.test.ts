/**
 * The native addon under concurrency: it loads in worker_threads (it is
 * context-aware), kernels called from several workers at once (and from the
 * main thread at the same time) give the numbers the main thread gets alone,
 * and the shared thread pool keeps working after a worker is terminated in
 * the middle of a kernel loop.
 *
 * The kernels are every function the addon exports (valid calls inferred from
 * the binding's error messages, test/binding/calls.ts), so families that land
 * later are covered without editing this file. Comparisons are bitwise: the
 * same binary on the same inputs, and the pool's contract is that results
 * never depend on how many threads run a kernel (a busy pool makes a second
 * caller run inline; native/include/flowvae/parallel.h).
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { loadNative } from '../src/backend/native';
import { type ValidCall, cloneArgs, exportedFunctions, inferValidCall, resizeCall } from './binding/calls';
import { hasCpu } from './helpers';

const ROOT = path.resolve(__dirname, '..');

interface Job {
  fn: string;
  args: unknown[];
  /** Every argument after the call on the main thread alone. */
  expected: unknown[];
}

/**
 * Worker body (plain CommonJS, evaluated): loads the addon the way the
 * library does (node-gyp-build on the package root), then runs the jobs
 * `reps` times, comparing every argument with the main thread's result after
 * each call. `reps: -1` loops until terminated.
 */
const WORKER_CODE = `
const { parentPort, workerData } = require('node:worker_threads');
const addon = require(workerData.nodeGypBuild)(workerData.root);
function same(a, b) {
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]));
  if (!ArrayBuffer.isView(a)) return Object.is(a, b) || (a === b);
  if (a.length !== b.length) return false;
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
const mismatches = [];
let calls = 0;
parentPort.postMessage({ loaded: true, abiVersion: addon.abiVersion });
for (let rep = 0; workerData.reps < 0 || rep < workerData.reps; rep++) {
  for (const job of workerData.jobs) {
    const copy = (a) => (ArrayBuffer.isView(a) ? a.slice() : a);
    const args = job.args.map((a) => (Array.isArray(a) ? a.map(copy) : copy(a)));
    addon[job.fn](...args);
    calls++;
    for (let i = 0; i < args.length; i++) {
      if (!same(args[i], job.expected[i]) && mismatches.length < 20) mismatches.push(job.fn + ' argument ' + i + ' rep ' + rep);
    }
  }
  if (rep === 0) parentPort.postMessage({ firstRepDone: true });
}
parentPort.postMessage({ done: true, calls, mismatches });
`;

/** A typed array, or a list of them (adamStepTensors) joined into one, for element-wise comparison. */
function joined(a: unknown): unknown {
  if (!Array.isArray(a) || !a.every((x) => x instanceof Float32Array)) return a;
  const out = new Float32Array(a.reduce((n: number, x: Float32Array) => n + x.length, 0));
  let offset = 0;
  for (const x of a as Float32Array[]) {
    out.set(x, offset);
    offset += x.length;
  }
  return out;
}

function bitwiseEqual(a: unknown, b: unknown): boolean {
  a = joined(a);
  b = joined(b);
  if (!ArrayBuffer.isView(a) || !ArrayBuffer.isView(b)) return Object.is(a, b);
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function startWorker(jobs: Job[], reps: number): { worker: Worker; messages: Record<string, unknown>[]; exited: Promise<number> } {
  const worker = new Worker(WORKER_CODE, {
    eval: true,
    workerData: { jobs, reps, root: ROOT, nodeGypBuild: require.resolve('node-gyp-build') },
  });
  const messages: Record<string, unknown>[] = [];
  worker.on('message', (m) => messages.push(m));
  const exited = new Promise<number>((resolve, reject) => {
    worker.on('error', reject);
    worker.on('exit', resolve);
  });
  return { worker, messages, exited };
}

async function until(condition: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error('timed out waiting for a worker');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe.skipIf(!hasCpu())('native addon under concurrency', () => {
  const addon = loadNative()!;
  const threadsBefore = addon.getNumThreads();
  afterAll(() => addon.setNumThreads(threadsBefore));

  /** Elements in the typed-array arguments of a call. */
  const elements = (c: ValidCall) =>
    c.args.reduce<number>((s, a) => {
      const flat = joined(a);
      return s + (ArrayBuffer.isView(flat) ? (flat as Float32Array).length : 0);
    }, 0);

  /**
   * One valid call per kernel, at sizes large enough that parallel_for splits
   * the work (the cheap row kernels only split above ~16k elements per task,
   * rng above 4096 blocks of 4), yet small enough to copy to every worker:
   * the first size set whose arrays hold 30k to 2M elements. Settings
   * (setNumThreads) are left out: they are process-wide by design.
   */
  function kernelJobs(): Job[] {
    const jobs: Job[] = [];
    for (const [name, fn] of exportedFunctions(addon)) {
      if (/^set[A-Z]/.test(name)) continue;
      const small: ValidCall = inferValidCall(name, fn, { seed: 7 });
      expect(small.found, `${name}: ${small.note}`).toBe(true);
      const call =
        [
          [1024, 40, 19, 5],
          [40000, 24, 19, 5],
          [257, 37, 19, 5],
        ]
          .map((sizes) => resizeCall(small, fn, sizes, 11))
          .find((c) => c !== undefined && elements(c) >= 3e4 && elements(c) <= 2e6) ?? small;
      const args = cloneArgs(call.args);
      fn(...args);
      jobs.push({ fn: name, args: call.args, expected: args });
    }
    return jobs;
  }

  /** Runs every job once on this thread; returns the names whose results differ from `expected`. */
  function checkOnMain(jobs: Job[]): string[] {
    const bad: string[] = [];
    for (const job of jobs) {
      const args = cloneArgs(job.args);
      (addon as unknown as Record<string, (...a: unknown[]) => void>)[job.fn](...args);
      if (!args.every((a, i) => bitwiseEqual(a, job.expected[i]))) bad.push(job.fn);
    }
    return bad;
  }

  it('loads in several workers at once and in a second generation after they exit', async () => {
    for (let generation = 0; generation < 2; generation++) {
      const workers = Array.from({ length: 3 }, () => startWorker([], 1));
      const codes = await Promise.all(workers.map((w) => w.exited));
      expect(codes).toEqual([0, 0, 0]);
      for (const w of workers) expect(w.messages[0]).toEqual({ loaded: true, abiVersion: addon.abiVersion });
    }
  });

  it('loads through the library in a worker and picks the cpu backend', async () => {
    const code = `
      require(${JSON.stringify(require.resolve('tsx/cjs/api'))}).register();
      const b = require(${JSON.stringify(path.join(ROOT, 'src', 'backend'))});
      const backend = b.getBackend();
      const z = backend.alloc(1000);
      backend.rng.normal(5, 0, z);
      require('node:worker_threads').parentPort.postMessage({ name: backend.name, z });`;
    const worker = new Worker(code, { eval: true, env: { ...process.env, FLOWVAE_BACKEND: '' } });
    const message = await new Promise<{ name: string; z: Float32Array }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    expect(message.name).toBe('cpu');
    const z = new Float32Array(1000);
    addon.rngNormal(5, 0, z);
    expect(bitwiseEqual(message.z, z)).toBe(true);
  });

  it('gives the same bits at 1, 2 and 3 threads for every kernel (the pool contract behind the comparisons below)', () => {
    // A kernel whose result depends on how many tasks ran (e.g. per-task
    // partial sums combined afterwards) also differs when another thread holds
    // the pool and the call runs inline; this names such a kernel directly.
    addon.setNumThreads(1);
    const jobs = kernelJobs();
    const differing: string[] = [];
    for (const threads of [2, 3]) {
      addon.setNumThreads(threads);
      for (const job of jobs) {
        const args = cloneArgs(job.args);
        (addon as unknown as Record<string, (...a: unknown[]) => void>)[job.fn](...args);
        args.forEach((a, i) => {
          if (bitwiseEqual(a, job.expected[i])) return;
          const got = joined(a) as Float32Array;
          const want = joined(job.expected[i]) as Float32Array;
          let count = 0;
          let worst = 0;
          for (let k = 0; k < got.length; k++) {
            if (Object.is(got[k], want[k])) continue;
            count++;
            const relative = Math.abs(got[k] - want[k]) / (1e-30 + Math.abs(want[k]));
            worst = Number.isNaN(relative) ? Infinity : Math.max(worst, relative);
          }
          differing.push(
            `${job.fn} argument ${i} at ${threads} threads: ${count} of ${got.length} elements differ from 1 thread (max relative ${worst.toExponential(1)})`,
          );
        });
      }
    }
    expect(differing).toEqual([]);
  });

  it('gives the main thread’s results when 4 workers and the main thread call every kernel at once', async () => {
    addon.setNumThreads(2);
    const jobs = kernelJobs();
    expect(jobs.map((j) => j.fn)).toContain('rngNormal');
    const reps = 6;
    const workers = Array.from({ length: 4 }, () => startWorker(jobs, reps));
    // The main thread competes for the pool meanwhile.
    await until(() => workers.every((w) => w.messages.length > 0), 20_000);
    const mainMismatches: string[] = [];
    while (!workers.every((w) => w.messages.some((m) => m.done))) {
      mainMismatches.push(...checkOnMain(jobs));
      await new Promise((r) => setImmediate(r));
    }
    expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0, 0, 0]);
    for (const w of workers) {
      const done = w.messages.find((m) => m.done)!;
      expect(done.calls).toBe(reps * jobs.length);
      expect(done.mismatches).toEqual([]);
    }
    expect(mainMismatches).toEqual([]);
  });

  it('keeps working after a worker is terminated in the middle of a kernel loop', async () => {
    addon.setNumThreads(2);
    const jobs = kernelJobs();
    // A big rng call keeps the worker inside the pool most of the time.
    const big = new Float32Array(1 << 18);
    const bigExpected = new Float32Array(big.length);
    addon.rngNormal(99, 0, bigExpected);
    const heavy: Job[] = [{ fn: 'rngNormal', args: [99, 0, big], expected: [99, 0, bigExpected] }, ...jobs];
    for (let round = 0; round < 3; round++) {
      const w = startWorker(heavy, -1);
      await until(() => w.messages.some((m) => m.firstRepDone), 20_000);
      await new Promise((r) => setTimeout(r, 20 + 15 * round));
      await w.worker.terminate();
      expect(await w.exited).toBe(1);
      // The pool and every kernel still work on the main thread…
      expect(checkOnMain(heavy)).toEqual([]);
    }
    // …and in a fresh worker.
    const fresh = startWorker(heavy, 2);
    expect(await fresh.exited).toBe(0);
    expect(fresh.messages.find((m) => m.done)).toMatchObject({ mismatches: [] });
  });
});
