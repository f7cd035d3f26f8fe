/**
 * Binding fuzz: every function the native addon exports (enumerated, so new
 * kernel families are covered when they land) is called thousands of times
 * with valid, awkward and hostile arguments; see test/binding/fuzz.ts for the
 * cases. The fuzz runs in a child process, so a crash fails this test with
 * the function being fuzzed and the signal instead of taking the test runner
 * down. scripts/fuzz-asan.sh runs the same fuzz against an AddressSanitizer
 * build of the addon.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadNative } from '../src/backend/native';
import { exportedFunctions, inferValidCall } from './binding/calls';
import { type FuzzReport, formatOutcomes } from './binding/fuzz';
import { hasCpu } from './helpers';

const ROOT = path.resolve(__dirname, '..');
const SEED = Number(process.env.FLOWVAE_FUZZ_SEED ?? 20240611);
/** Whole-run budget: a few seconds in CI; FLOWVAE_FUZZ_MS raises it for longer local runs. */
const BUDGET_MS = Number(process.env.FLOWVAE_FUZZ_MS ?? 6000);
const CALLS = Number(process.env.FLOWVAE_FUZZ_CALLS ?? 3000);

describe.skipIf(!hasCpu())('native binding fuzz', () => {
  const addon = loadNative()!;

  it('finds a valid call of every exported function from its error messages', () => {
    const functions = exportedFunctions(addon);
    // The families on main at the time of writing; later ones are covered too, this pins a floor.
    for (const name of ['rngNormal', 'rngUniform', 'gaussianKlStandard', 'likelihoodBernoulliBackward', 'setNumThreads']) {
      expect(functions.map(([n]) => n)).toContain(name);
    }
    const missing = functions
      .map(([name, fn]) => inferValidCall(name, fn, { seed: SEED }))
      .filter((c) => !c.found)
      .map((c) => `${c.fn}: ${c.note}`);
    // Without a valid call a function gets only hostile calls, and the awkward-size
    // and view cases never reach its kernel: the binding's messages must allow inference.
    expect(missing).toEqual([]);
  });

  it('never crashes; every rejection is a TypeError/RangeError with a code and the one message format', () => {
    // The binary the library loads (node-gyp-build: build/Release, else prebuilds/).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const addonPath = (require('node-gyp-build') as { resolve(dir: string): string }).resolve(ROOT);
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'test/binding/fuzz-main.ts', addonPath, String(SEED), String(BUDGET_MS), String(CALLS)], {
      cwd: ROOT,
      encoding: 'utf8',
      maxBuffer: 64 << 20,
      env: { ...process.env, FLOWVAE_FUZZ_JSON: '1' },
    });
    const progress = run.stderr.split('\n').filter((l) => l.startsWith('fuzz '));
    const last = run.stdout.trim().split('\n').pop() ?? '';
    if (!last.startsWith('REPORT ')) {
      expect.fail(
        `the fuzz process died (status ${run.status}, signal ${run.signal}) while fuzzing ` +
          `"${progress.pop()?.slice(5) ?? '?'}"; stderr:\n${run.stderr.slice(-3000)}`,
      );
    }
    const report = JSON.parse(last.slice('REPORT '.length)) as FuzzReport;
    console.log(
      `binding fuzz: ${report.totalCalls} calls over ${report.functions.length} functions in ${report.elapsedMs} ms (seed ${SEED})\n` +
        formatOutcomes(report) +
        '\n' +
        report.functions
          .filter((f) => f.truncated)
          .map((f) => `  time share ran out for ${f.name} after ${f.calls} calls`)
          .join('\n'),
    );
    expect(report.failures, `${report.failureCount} contract breaches`).toEqual([]);
    expect(run.status).toBe(0);
    // The hostile cases were all exercised and rejected; the valid ones all returned.
    const o = report.outcomes;
    for (const kase of [
      'too few arguments',
      'wrong type (not a number or typed array)',
      'wrong array kind, right element count',
      'array too short or too long',
      'invalid size (negative, fractional, NaN, > 2^32)',
    ]) {
      expect(Object.keys(o[kase] ?? {}), kase).not.toContain('returned');
      expect(
        Object.values(o[kase] ?? {}).reduce((s, c) => s + c, 0),
        kase,
      ).toBeGreaterThan(100);
    }
    for (const kase of [
      'valid call, other sizes',
      'valid call, sizes that go parallel',
      'valid call, offset views',
      'valid call, shared views',
      'valid call, resizable views',
    ]) {
      expect(o[kase]?.returned ?? 0, kase).toBeGreaterThan(20);
    }
  });
});
