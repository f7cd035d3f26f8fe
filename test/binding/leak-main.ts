/**
 * Leak probe, run by test/leak.test.ts in its own process with --expose-gc:
 * repeats a training-step-like sequence of native calls on small reused
 * arrays (noise, sample, KL, likelihood and their backwards every step; every
 * other kernel the addon exports every tenth step, and then also one rejected
 * call per kernel, so the error paths are measured too) and
 * prints the resident set size after warm-up and at intervals, each after a
 * full garbage collection, as one JSON line.
 *
 *   node --expose-gc --import tsx test/binding/leak-main.ts [steps] [warmup]
 */
import { loadNative } from '../../src/backend/native';
import { exportedFunctions, inferValidCall } from './calls';

const steps = Number(process.argv[2] ?? 100_000);
const warmup = Number(process.argv[3] ?? 10_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

const addon = loadNative();
if (!addon) throw new Error('native addon unavailable');

// The forward/backward order of one VAE step where those kernels exist
// (noise, reparametrized sample, KL, likelihood, their backwards), then the rest.
const preferred = [
  'rngNormal',
  'gaussianSampleDiag',
  'gaussianKlStandard',
  'likelihoodBernoulli',
  'likelihoodBernoulliBackward',
  'gaussianKlStandardBackward',
  'gaussianSampleDiagBackward',
];
const functions = exportedFunctions(addon).filter(([name]) => !/^set[A-Z]/.test(name));
functions.sort(([a], [b]) => {
  const ia = preferred.indexOf(a);
  const ib = preferred.indexOf(b);
  return (ia < 0 ? preferred.length : ia) - (ib < 0 ? preferred.length : ib) || a.localeCompare(b);
});

interface Step {
  name: string;
  run: () => void;
  reject: () => void;
}
const sequence: Step[] = functions.map(([name, fn]) => {
  // Sizes of 8 for the step's kernels (batch 8 x dim 8) and 3 for the rest
  // (iterative kernels such as flow inverses cost ~100x more at 8): small
  // enough that call overhead, not arithmetic, dominates.
  const call = inferValidCall(name, fn, { size: preferred.includes(name) ? 8 : 3, seed: 3 });
  if (!call.found) throw new Error(`no valid call for ${name}: ${call.note}`);
  const args = call.args;
  // The first array argument swapped for one of the wrong length (or the last argument for a string).
  const bad = [...args];
  const arrayAt = bad.findIndex((a) => ArrayBuffer.isView(a));
  if (arrayAt >= 0) bad[arrayAt] = new Float32Array((bad[arrayAt] as Float32Array).length + 1);
  else if (bad.length > 0) bad[bad.length - 1] = 'not a value';
  return {
    name,
    run: () => void fn(...args),
    reject: () => {
      if (bad.length === 0) return;
      try {
        fn(...bad);
      } catch {
        return;
      }
      // A rejected call that returns is not what this probe measures; it is harmless here.
    },
  };
});

// The step's kernels run every step; the other exports every tenth step, so
// the probe's time grows slowly as kernel families are added.
const inStep = sequence.filter((s) => preferred.includes(s.name));
const others = sequence.filter((s) => !preferred.includes(s.name));

function runSteps(count: number): void {
  for (let i = 0; i < count; i++) {
    for (const s of inStep) s.run();
    if (i % 10 === 0) for (const s of others) s.run();
    if (i % 10 === 0) for (const s of sequence) s.reject();
  }
}

function rssAfterGc(): number {
  for (let i = 0; i < 3; i++) gc!();
  return process.memoryUsage().rss;
}

const started = Date.now();
runSteps(warmup);
const samples: number[] = [rssAfterGc()];
const intervals = 5;
for (let k = 0; k < intervals; k++) {
  runSteps(steps / intervals);
  samples.push(rssAfterGc());
}
console.log(
  JSON.stringify({
    steps,
    warmup,
    everyStep: inStep.map((s) => s.name),
    everyTenthStep: others.map((s) => s.name),
    rssMiB: samples.map((b) => Math.round((b / 2 ** 20) * 10) / 10),
    elapsedMs: Date.now() - started,
  }),
);
