/**
 * Binding fuzz: every function the native addon exports (enumerated, so new
 * kernel families are covered when they land) is called thousands of times
 * with valid, awkward and hostile arguments; see test/binding/fuzz.ts for the
 * cases. A crash kills the test process, which vitest reports as a failed
 * file. The same fuzz runs against an AddressSanitizer build in
 * scripts/fuzz-asan.sh.
 */
import { describe, expect, it } from 'vitest';
import { loadNative } from '../src/backend/native';
import { exportedFunctions, inferValidCall } from './binding/calls';
import { formatOutcomes, fuzzAddon } from './binding/fuzz';
import { hasCpu } from './helpers';

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
    const report = fuzzAddon(addon, { seed: SEED, callsPerFunction: CALLS, budgetMs: BUDGET_MS });
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
    // Each function got a real share of calls, or the budget is too small to mean anything.
    for (const f of report.functions) expect(f.calls, f.name).toBeGreaterThanOrEqual(Math.min(CALLS, 300));
    // The hostile cases were all exercised and rejected; the valid ones all returned.
    const o = report.outcomes;
    for (const kase of ['too few arguments', 'wrong type (not a number or typed array)', 'wrong array kind, right element count', 'array too short or too long', 'invalid size (negative, fractional, NaN, > 2^32)']) {
      expect(Object.keys(o[kase] ?? {}), kase).not.toContain('returned');
      expect(Object.values(o[kase] ?? {}).reduce((s, c) => s + c, 0), kase).toBeGreaterThan(100);
    }
    for (const kase of ['valid call, other sizes', 'valid call, offset views', 'valid call, shared views', 'valid call, resizable views']) {
      expect(o[kase]?.returned ?? 0, kase).toBeGreaterThan(20);
    }
  });
});
