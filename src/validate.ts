/**
 * Argument checks used at every public entry point (backend kernels included).
 * Each throws TypeError for a value of the wrong kind and RangeError for a
 * value of the right kind but out of range, naming the argument.
 */
import { expected, rangeError, typeError } from './errors';
import type { FloatArray } from './backend/types';

/** Sizes above this are refused: the native side indexes with 64-bit integers but caps each dimension at 2^32. */
export const MAX_SIZE = 2 ** 32;

export function checkSize(value: unknown, name: string): number {
  if (typeof value !== 'number') throw typeError(expected('non-negative integer', name, value));
  if (!Number.isInteger(value) || value < 0 || value > MAX_SIZE) {
    throw rangeError(expected('non-negative integer', name, value));
  }
  return value;
}

export function checkPositiveInt(value: unknown, name: string): number {
  if (typeof value !== 'number') throw typeError(expected('positive integer', name, value));
  if (!Number.isInteger(value) || value < 1 || value > MAX_SIZE) {
    throw rangeError(expected('positive integer', name, value));
  }
  return value;
}

/** A seed or stream offset: an integer in [0, 2^53) (the kernels' counters split it into two 32-bit words). */
export function checkSeed(value: unknown, name = 'seed'): number {
  const what = 'integer in [0, 2^53)';
  if (typeof value !== 'number') throw typeError(expected(what, name, value));
  if (!Number.isSafeInteger(value) || value < 0) throw rangeError(expected(what, name, value));
  return value;
}

/** An integer in [lo, hi] (a budget or count with a hard ceiling). */
export function checkIntegerBetween(value: unknown, name: string, lo: number, hi: number): number {
  const what = `integer between ${lo} and ${hi}`;
  if (typeof value !== 'number') throw typeError(expected(what, name, value));
  if (!Number.isInteger(value) || value < lo || value > hi) throw rangeError(expected(what, name, value));
  return value;
}

export function checkFinite(value: unknown, name: string): number {
  if (typeof value !== 'number') throw typeError(expected('finite number', name, value));
  if (!Number.isFinite(value)) throw rangeError(expected('finite number', name, value));
  return value;
}

/** A finite number in [lo, hi] (inclusive unless `open` says otherwise). */
export function checkInRange(value: unknown, name: string, lo: number, hi: number, open: { lo?: boolean; hi?: boolean } = {}): number {
  const what = `number in ${open.lo ? '(' : '['}${lo}, ${hi}${open.hi ? ')' : ']'}`;
  if (typeof value !== 'number') throw typeError(expected(what, name, value));
  const tooLow = open.lo ? !(value > lo) : !(value >= lo);
  const tooHigh = open.hi ? !(value < hi) : !(value <= hi);
  if (tooLow || tooHigh || Number.isNaN(value)) throw rangeError(expected(what, name, value));
  return value;
}

export function checkBoolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw typeError(expected('boolean', name, value));
  return value;
}

export function checkOneOf<T extends string>(value: unknown, name: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    const what = `one of ${allowed.map((a) => `"${a}"`).join(', ')}`;
    if (typeof value !== 'string') throw typeError(expected(what, name, value));
    throw rangeError(expected(what, name, value));
  }
  return value as T;
}

/** Product of sizes, refused when it leaves the exactly representable range. */
export function sizeProduct(...sizes: number[]): number {
  let p = 1;
  for (const s of sizes) p *= s;
  if (p > Number.MAX_SAFE_INTEGER) throw rangeError(`Size product ${sizes.join('*')} is too large`);
  return p;
}

/**
 * A Float32Array or Float64Array with exactly `length` elements. `dtype`
 * restricts the kind (the cpu backend takes Float32Array only).
 */
export function checkArray(value: unknown, name: string, length: number, dtype?: 'float32' | 'float64'): FloatArray {
  const ok =
    dtype === 'float32'
      ? value instanceof Float32Array
      : dtype === 'float64'
        ? value instanceof Float64Array
        : value instanceof Float32Array || value instanceof Float64Array;
  if (!ok) {
    const what = dtype === 'float32' ? 'Float32Array' : dtype === 'float64' ? 'Float64Array' : 'Float32Array or Float64Array';
    throw typeError(expected(what, name, value));
  }
  const arr = value as FloatArray;
  if (arr.length !== length) {
    const kind = arr instanceof Float32Array ? 'Float32Array' : 'Float64Array';
    throw rangeError(expected(`${kind} of length ${length}`, name, value), 'ERR_SHAPE');
  }
  return arr;
}

/** Like checkArray, but null/undefined are allowed and returned as null. */
export function checkOptionalArray(value: unknown, name: string, length: number, dtype?: 'float32' | 'float64'): FloatArray | null {
  if (value === null || value === undefined) return null;
  return checkArray(value, name, length, dtype);
}

/** Refuses unknown keys in an options object, naming the first one. */
export function checkKnownKeys(options: object, name: string, known: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw rangeError(`Unknown option "${key}" in "${name}"; expected one of ${known.map((k) => `"${k}"`).join(', ')}`);
    }
  }
}

/** Index of the first non-finite element, or -1. */
export function firstNonFinite(a: ArrayLike<number>): number {
  for (let i = 0; i < a.length; i++) {
    const v = a[i];
    if (!(v - v === 0)) return i;
  }
  return -1;
}

/** A finite number > 0 (learning rates, epsilons). */
export function checkPositiveNumber(value: unknown, name: string): number {
  if (typeof value !== 'number') throw typeError(expected('positive finite number', name, value));
  if (!(value > 0) || !Number.isFinite(value)) throw rangeError(expected('positive finite number', name, value));
  return value;
}

/** A finite number ≥ 0 (decay rates, clipping norms where 0 disables). */
export function checkNonNegativeNumber(value: unknown, name: string): number {
  if (typeof value !== 'number') throw typeError(expected('non-negative finite number', name, value));
  if (!(value >= 0) || !Number.isFinite(value)) throw rangeError(expected('non-negative finite number', name, value));
  return value;
}

/** A plain options object (not null, not an array) whose keys are all in `known`. */
export function checkOptions(value: unknown, name: string, known: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw typeError(expected('options object', name, value));
  checkKnownKeys(value, name, known);
  return value as Record<string, unknown>;
}

/**
 * True when two arrays share bytes of one buffer. An empty array shares
 * nothing (the native bindings see no data pointer for it). The one overlap
 * test every backend's argument checks use.
 */
export function sharesMemory(a: ArrayBufferView, b: ArrayBufferView): boolean {
  if (a.byteLength === 0 || b.byteLength === 0 || a.buffer !== b.buffer) return false;
  return a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

/**
 * Refuses an output array that shares memory with another argument (same
 * buffer, overlapping bytes): kernels read their inputs while writing outputs.
 */
export function checkDisjoint(out: FloatArray | null, name: string, others: Record<string, FloatArray | null>): void {
  if (!out) return;
  for (const [otherName, other] of Object.entries(others)) {
    if (other && sharesMemory(out, other)) {
      const kind = out instanceof Float32Array ? 'Float32Array' : 'Float64Array';
      throw rangeError(expected(`${kind} not overlapping "${otherName}"`, name, out));
    }
  }
}
