/**
 * Memory: 100,000 training-step-like sequences of native calls (rng noise,
 * reparametrized sample, Gaussian KL and Bernoulli likelihood with their
 * backwards, plus every other addon export and rejected calls on the error
 * paths; see test/binding/leak-main.ts) keep the resident set flat. Runs in a
 * child process with --expose-gc so that each sample follows a full GC and the
 * test runner's own memory stays out of the measurement.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasCpu } from './helpers';

const ROOT = path.resolve(__dirname, '..');
const STEPS = 100_000;

/**
 * Allowed RSS growth after warm-up. Without a leak the samples stay within
 * ~1-4 MiB (allocator and V8 heap noise); a native leak of 100 bytes per step
 * (one small object in one binding per call) adds ~10 MiB over 100,000 steps.
 */
const MAX_GROWTH_MIB = 10;

describe.skipIf(!hasCpu())('native memory', () => {
  it(`keeps RSS flat over ${STEPS} forward/backward steps (growth < ${MAX_GROWTH_MIB} MiB)`, () => {
    const run = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', 'test/binding/leak-main.ts', String(STEPS), '10000'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, FLOWVAE_BACKEND: '' },
    });
    expect(run.status, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout.trim().split('\n').pop()!) as { rssMiB: number[]; everyStep: string[]; elapsedMs: number };
    console.log(`RSS after warm-up and every ${STEPS / 5} steps (MiB): ${result.rssMiB.join(', ')} (${result.elapsedMs} ms)`);
    expect(result.everyStep).toContain('rngNormal');
    const [baseline, ...later] = result.rssMiB;
    expect(Math.max(...later) - baseline).toBeLessThan(MAX_GROWTH_MIB);
  });
});
