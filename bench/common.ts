/**
 * Benchmark helpers. Benchmarks measure throughput; they are never timed
 * tests. Contenders run in one process, interleaved round by round so a
 * noisy machine shifts them alike, and we quote medians and ratios.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const RESULTS_DIR = path.resolve(__dirname, 'results');

/** A contender of timeInterleaved; `prepare` (untimed) runs before each of its rounds, e.g. to set the thread count. */
export interface Timed {
  fn: () => void;
  prepare?: () => void;
}

/**
 * Median seconds per call of each contender. Each is warmed up and its calls
 * per round calibrated to last ~minSeconds; then every round times each
 * contender once, so a noisy machine shifts them alike.
 */
export function timeInterleaved(contenders: Timed[], opts: { minSeconds?: number; rounds?: number } = {}): number[] {
  const minSeconds = opts.minSeconds ?? 0.2;
  const rounds = opts.rounds ?? 5;
  const calls = contenders.map(({ fn, prepare }) => {
    prepare?.();
    fn();
    for (let k = 1; ; k *= 4) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < k; i++) fn();
      const dt = Number(process.hrtime.bigint() - t0) / 1e9;
      if (dt >= minSeconds / 4 || k > 1 << 20) return Math.max(1, Math.ceil((k * minSeconds) / Math.max(dt, 1e-9)));
    }
  });
  const samples: number[][] = contenders.map(() => []);
  for (let r = 0; r < rounds; r++) {
    contenders.forEach(({ fn, prepare }, c) => {
      prepare?.();
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < calls[c]; i++) fn();
      samples[c].push(Number(process.hrtime.bigint() - t0) / 1e9 / calls[c]);
    });
  }
  return samples.map(median);
}

/** Median seconds per call of fn, after warm-up, over `rounds` rounds of enough calls to last ~minSeconds. */
export function timeIt(fn: () => void, opts: { minSeconds?: number; rounds?: number } = {}): number {
  return timeInterleaved([{ fn }], opts)[0];
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Formats a number with 3 significant digits and a k/M/G suffix. */
export function si(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const units: [number, string][] = [
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k'],
  ];
  for (const [scale, suffix] of units) if (Math.abs(x) >= scale) return `${(x / scale).toPrecision(3)}${suffix}`;
  return x.toPrecision(3);
}

/** Prints rows as an aligned text table (first row is the header). */
export function printTable(rows: (string | number)[][]): void {
  const cells = rows.map((r) => r.map(String));
  const widths = cells[0].map((_, c) => Math.max(...cells.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(line(cells[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of cells.slice(1)) console.log(line(r));
}

/** Debian's python3 (with numpy/torch), per the design notes; not the first python3 on PATH. */
export const PYTHON = process.env.FLOWVAE_BENCH_PYTHON ?? '/usr/bin/python3';

/** Environment that lets PyTorch/numpy run at their best on these machines (see DESIGN §10). */
export function peerEnv(threads: number): NodeJS.ProcessEnv {
  return {
    ...process.env,
    OMP_NUM_THREADS: String(threads),
    OPENBLAS_NUM_THREADS: String(threads),
    MKL_NUM_THREADS: String(threads),
    MALLOC_MMAP_THRESHOLD_: '1073741824',
    MALLOC_TRIM_THRESHOLD_: '1073741824',
    MALLOC_TOP_PAD_: '268435456',
  };
}

/**
 * Runs a Python peer script (bench/peers/<script>) with a JSON spec on argv,
 * returning its JSON stdout, or null with a reason when the peer is missing.
 */
export function runPython<T>(script: string, spec: unknown, threads: number): { result: T | null; reason: string } {
  if (!fs.existsSync(PYTHON)) return { result: null, reason: `${PYTHON} not found` };
  const file = path.resolve(__dirname, 'peers', script);
  const out = spawnSync(PYTHON, [file, JSON.stringify(spec)], {
    env: peerEnv(threads),
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (out.status !== 0) {
    const msg = (out.stderr || out.error?.message || 'failed').trim().split('\n').slice(-1)[0];
    return { result: null, reason: msg };
  }
  return { result: JSON.parse(out.stdout) as T, reason: '' };
}

/** Machine description stored with every result file. */
export function machineInfo(): Record<string, unknown> {
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    date: new Date().toISOString(),
  };
}

/** Writes bench/results/<name>.json. */
export function writeResults(name: string, data: unknown): string {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify({ machine: machineInfo(), ...((data as object) ?? {}) }, null, 2) + '\n');
  return file;
}

/** Measured single-thread memory copy bandwidth in bytes/s (large Float64Array.set), used for bandwidth bounds. */
export function copyBandwidth(bytes = 256 << 20): number {
  const n = bytes / 8;
  const src = new Float64Array(n).fill(1);
  const dst = new Float64Array(n);
  const t = timeIt(() => dst.set(src), { minSeconds: 0.3, rounds: 5 });
  return (2 * bytes) / t; // read + write
}
