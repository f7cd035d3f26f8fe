/**
 * Pieces every subcommand shares: choosing the backend and thread count,
 * the package version, Ctrl-C handling.
 */
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { backendByName, backends, getBackend, setNumThreads } from '../backend';
import type { Backend } from '../backend/backend';
import type { BackendName } from '../backend/types';
import { CliError, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_TERMINATED } from './args';

export const BACKEND_CHOICES = ['auto', 'cpu', 'cuda', 'reference'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

/** The package root: this file is src/cli/ (sources) or dist/cli/ (package), two levels down. */
export const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');

export function packageVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/**
 * The backend for `--backend` (auto: cpu when the native addon loads, else
 * reference) after `--threads`; unavailable backends fail with the reason.
 */
export function selectBackend(choice: BackendChoice, threads: number | undefined): Backend {
  // The thread count of the native pool (no effect on the reference backend).
  // More threads than cores only adds contention (1000 threads on 2 cores ran
  // 30× slower than 1): use the cores, and say so.
  if (threads !== undefined) {
    const cores = os.availableParallelism();
    if (threads > cores) process.stderr.write(`flowvae: --threads ${threads} is more than the ${cores} cores here; using ${cores}\n`);
    setNumThreads(Math.min(threads, cores));
  }
  if (choice === 'auto') return getBackend();
  try {
    return backendByName(choice as BackendName);
  } catch (err) {
    throw new CliError(`error: ${(err as Error).message}`, EXIT_FAILURE);
  }
}

/** Native threads in use (1 for the reference backend). */
export function threadCount(backend: Backend): number {
  if (backend.name !== 'cpu') return 1;
  return backends().find((b) => b.name === 'cpu')?.threads ?? 1;
}

/**
 * Ctrl-C handling for long commands: the first SIGINT (or SIGTERM) aborts
 * `signal` so the command stops after the current step and saves; a second
 * one exits at once (the last checkpoint on disk is intact: files are written
 * to a temporary name and renamed).
 */
export function interruptible(onFirst: () => void): { signal: AbortSignal; dispose: () => void; readonly exitCode: number } {
  const controller = new AbortController();
  // The exit code of an interrupted command: 128 + the signal's number.
  let exitCode = EXIT_INTERRUPTED;
  const handler = (name: NodeJS.Signals): void => {
    const code = name === 'SIGTERM' ? EXIT_TERMINATED : EXIT_INTERRUPTED;
    if (controller.signal.aborted) {
      process.stderr.write('\nflowvae: stopped\n');
      process.exit(code);
    }
    exitCode = code;
    controller.abort();
    onFirst();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
    get exitCode() {
      return exitCode;
    },
  };
}

/**
 * Keeps the command running when a reader closes its output (`flowvae train
 * | head -1`): a write to a closed pipe fails with EPIPE, which Node raises
 * as an 'error' event that would kill the process mid-training. Once a
 * stream has failed, further writes to it are dropped; the run goes on and
 * saves its model and metrics as usual.
 */
export function surviveClosedOutput(stream: NodeJS.WriteStream): void {
  let closed = false;
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  stream.write = ((...args: unknown[]): boolean => {
    if (!closed) return write(...args);
    const callback = args.find((a) => typeof a === 'function') as (() => void) | undefined;
    if (callback) process.nextTick(callback);
    return true;
  }) as typeof stream.write;
  stream.on('error', () => {
    closed = true;
  });
}
