/**
 * Value parsers for command-line options (commander calls them with the raw
 * string) and the CLI's error type. A parser throws commander's
 * InvalidArgumentError, which commander turns into one line:
 *
 *     error: option '--epochs <n>' argument '0' is invalid. Expected a positive integer.
 */
import { InvalidArgumentError } from 'commander';
import { MAX_THREADS } from '../backend/types';
import { MAX_LEARNING_RATE } from '../train/adam';

/**
 * Exit codes: 0 success, 1 failure while running, 2 bad command line, and
 * 128 + the signal's number when interrupted: 130 for Ctrl-C (SIGINT), 143
 * for SIGTERM.
 */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERRUPTED = 130;
export const EXIT_TERMINATED = 143;

/** An error the CLI reports as one line and a given exit code (no stack trace). */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number = EXIT_USAGE) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

const INTEGER = /^\d+$/;
// Decimal or scientific notation, as users type learning rates (1e-3, .001).
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!INTEGER.test(value) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('Expected a positive integer.');
  return n;
}

/** Native threads: 1 to MAX_THREADS (the pool's limit). */
export function threadNumber(value: string): number {
  const n = Number(value);
  if (!INTEGER.test(value) || n < 1 || n > MAX_THREADS) throw new InvalidArgumentError(`Expected an integer from 1 to ${MAX_THREADS}.`);
  return n;
}

export function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!INTEGER.test(value) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('Expected a non-negative integer.');
  return n;
}

export function positiveNumber(value: string): number {
  const n = Number(value);
  if (!NUMBER.test(value) || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('Expected a positive number.');
  return n;
}

/** A learning rate: a number in (0, 10], the library's limit. */
export function learningRate(value: string): number {
  const n = Number(value);
  if (!NUMBER.test(value) || !(n > 0 && n <= MAX_LEARNING_RATE)) throw new InvalidArgumentError(`Expected a number in (0, ${MAX_LEARNING_RATE}].`);
  return n;
}

/** A file name for a PNG picture: it must end in .png (the bytes written are PNG whatever the name). */
export function pngFile(value: string): string {
  if (!/\.png$/i.test(value)) throw new InvalidArgumentError('Expected a file name ending in .png (pictures are written as PNG).');
  return value;
}

export function nonNegativeNumber(value: string): number {
  const n = Number(value);
  if (!NUMBER.test(value) || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('Expected a non-negative number.');
  return n;
}

/** A fraction in [0, 1). */
export function fraction(value: string): number {
  const n = Number(value);
  if (!NUMBER.test(value) || !(n >= 0 && n < 1)) throw new InvalidArgumentError('Expected a number in [0, 1).');
  return n;
}

/** Comma-separated layer widths, e.g. "300,300"; "" or "none" for no hidden layer. */
export function widthList(value: string): number[] {
  const trimmed = value.trim();
  if (trimmed === '' || trimmed === 'none') return [];
  const parts = trimmed.split(',').map((s) => s.trim());
  if (parts.some((p) => !INTEGER.test(p) || Number(p) < 1 || !Number.isSafeInteger(Number(p)))) {
    throw new InvalidArgumentError('Expected comma-separated positive integers, e.g. 300,300.');
  }
  return parts.map(Number);
}

/** Formats seconds as 1h02m, 3m05s or 4.2s. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  if (seconds < 10) return `${seconds.toFixed(1)}s`;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(r).padStart(2, '0')}s`;
  return `${r}s`;
}

/** 12345 -> "12.3k". */
export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return '--';
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)}M`;
  if (perSecond >= 1e4) return `${(perSecond / 1e3).toFixed(1)}k`;
  return perSecond.toFixed(0);
}
