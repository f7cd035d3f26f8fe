/**
 * Shared test helpers: run a suite on every backend that is available here
 * (and say visibly why one is skipped), deterministic test data, closeness
 * checks with stated tolerances, and central finite differences.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect } from 'vitest';
import { backendByName, backends } from '../src/backend';
import type { Backend } from '../src/backend/backend';
import type { BackendName, FloatArray } from '../src/backend/types';

/**
 * Runs `suite` once per named backend that is available; an unavailable one
 * gets a skipped suite whose title carries the reason. A skipped suite is
 * still collected (so its tests are counted as skipped), with the reference
 * backend standing in: `name` says which backend the suite is for.
 */
export function describeBackends(names: BackendName[], title: string, suite: (backend: Backend, name: BackendName) => void): void {
  const info = backends();
  for (const name of names) {
    const entry = info.find((b) => b.name === name)!;
    if (entry.available) {
      describe(`${title} [${name}]`, () => suite(backendByName(name), name));
    } else {
      describe.skip(`${title} [${name}] skipped: ${entry.reason}`, () => {
        suite(backendByName('reference'), name);
      });
    }
  }
}

/** True when the cpu backend is available (native addon built and loadable). */
export function hasCpu(): boolean {
  return backends().find((b) => b.name === 'cpu')!.available;
}

/** mulberry32: a tiny seeded generator for test data, independent of the library's RNG. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Float64Array of uniforms on [lo, hi). */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  const rand = seededRandom(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * rand();
  return out;
}

/** Float64Array of approximately standard normals (Box–Muller over mulberry32). */
export function randomNormal(n: number, seed: number, std = 1): Float64Array {
  const rand = seededRandom(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u = 1 - rand();
    out[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  }
  return out;
}

/** A copy of `data` rounded to float32 and widened back, so both backends see identical inputs. */
export function asFloat32Values(data: ArrayLike<number>): Float64Array {
  return Float64Array.from(Float32Array.from(data));
}

export interface Tolerance {
  /** Absolute tolerance. */
  atol: number;
  /** Relative tolerance, applied to |expected|. */
  rtol: number;
}

/**
 * Asserts |actual − expected| ≤ atol + rtol·|expected| elementwise, reporting
 * the worst element. NaN anywhere fails.
 */
export function expectClose(actual: ArrayLike<number>, expectedValues: ArrayLike<number>, tol: Tolerance, label = ''): void {
  expect(actual.length, `${label} length`).toBe(expectedValues.length);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expectedValues[i];
    const bound = tol.atol + tol.rtol * Math.abs(e);
    const err = Math.abs(a - e);
    if (!(err <= bound)) {
      const excess = Number.isNaN(err) ? Infinity : err / bound;
      if (worst < 0 || excess > worstExcess) {
        worst = i;
        worstExcess = excess;
      }
    }
  }
  if (worst >= 0) {
    expect.fail(
      `${label}: element ${worst} is ${actual[worst]} but expected ${expectedValues[worst]} ` +
        `(tolerance atol ${tol.atol} + rtol ${tol.rtol}; ${actual.length} elements)`,
    );
  }
}

/**
 * Central finite difference of a scalar function with respect to each
 * element of `x` (perturbed in place and restored): (f(x+h) − f(x−h)) / 2h.
 */
export function numericalGradient(f: () => number, x: FloatArray, h = 1e-6): Float64Array {
  const grad = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const saved = x[i];
    x[i] = saved + h;
    const up = f();
    x[i] = saved - h;
    const down = f();
    x[i] = saved;
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}

/** Σ a_i b_i: used to turn an array-valued function into a scalar for gradient checks. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Asserts two float arrays hold the same bits (NaN payloads and −0 included), naming the first difference. */
export function expectSameBits(actual: FloatArray, expectedValues: FloatArray, label = ''): void {
  expect(actual.constructor, `${label} type`).toBe(expectedValues.constructor);
  expect(actual.length, `${label} length`).toBe(expectedValues.length);
  const a = new Uint8Array(actual.buffer, actual.byteOffset, actual.byteLength);
  const b = new Uint8Array(expectedValues.buffer, expectedValues.byteOffset, expectedValues.byteLength);
  if (Buffer.compare(a, b) === 0) return;
  const width = actual.BYTES_PER_ELEMENT;
  let i = 0;
  while (a[i] === b[i]) i++;
  const k = Math.floor(i / width);
  expect.fail(`${label}: element ${k} is ${actual[k]} but expected the same bits as ${expectedValues[k]}`);
}

/**
 * Runs test/<script> in a child process with extra environment variables
 * (settings the addon reads once per process), checks that it exited cleanly,
 * and returns the JSON report it printed.
 */
export function runChild<T>(script: string, env: Record<string, string>): T {
  const out = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, script)], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    cwd: path.join(__dirname, '..'),
  });
  expect(
    out.stderr
      .split('\n')
      .filter((l) => l && !l.includes('Unknown user config'))
      .join('\n'),
  ).toBe('');
  expect(out.status).toBe(0);
  return JSON.parse(out.stdout) as T;
}

/** runChild with the addon's SIMD path capped by FLOWVAE_SIMD; checks the child ran on that path. */
export function runCappedSimd<T extends { simd: string }>(script: string, level: string): T {
  const report = runChild<T>(script, { FLOWVAE_SIMD: level });
  expect(report.simd).toBe(level);
  return report;
}
