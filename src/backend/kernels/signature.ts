/**
 * Kernel signatures, declared once per kernel: each argument's name, what it
 * is (a size, a flag, a number, an input or output array), the length an
 * array must have as an expression of the sizes, and which earlier arguments
 * an output may share memory with. From one declaration follow
 *
 * - the TypeScript parameter list of the kernel (`KernelFunction`), and
 * - the argument checks every TypeScript-side backend runs (`checkKernelArgs`),
 *   in the order and with the words of the native binding's readers
 *   (native/napi/args.h, flow_args.h): the arity, then every scalar in
 *   argument order, then the derived sizes, then every array in argument
 *   order, each output checked against every earlier array it may not alias.
 *
 * So one bad call gets the same error (kind, code, text) from the reference
 * backend as from the cpu and cuda bindings, except that an array of the
 * wrong kind is named by what each backend accepts ("Float32Array" natively,
 * "Float32Array or Float64Array" on the reference).
 */
import { expected, rangeError, typeError } from '../../errors';
import {
  checkBoolean,
  checkFinite,
  checkInRange,
  checkIntegerBetween,
  checkNonNegativeNumber,
  checkPositiveInt,
  checkPositiveNumber,
  checkSize,
  sharesMemory,
} from '../../validate';
import type { FloatArray } from '../types';

/**
 * Values of the scalar arguments by name (booleans as 1/0), plus the sizes a
 * signature derives from them: what array-length expressions read.
 */
export type Sizes = Readonly<Record<string, number>>;

/** An array's required length as a function of the sizes. */
export type LengthExpression = (sizes: Sizes) => number;

export type ScalarKind = 'size' | 'positive' | 'bool' | 'finite' | 'positiveNumber' | 'nonNegativeNumber';

export interface ScalarArg<N extends string = string, K extends ScalarKind = ScalarKind> {
  readonly name: N;
  readonly kind: K;
  /**
   * Read after the signature's `derive` has checked the sizes before it (or
   * when `derive` reads it, through its second argument): where the binding
   * reads this scalar only after those checks (coupling's contextDim).
   */
  readonly late?: true;
}

/** A number in [lo, hi] (exclusive at an end when `open` says so). */
export interface RangeArg<N extends string = string> {
  readonly name: N;
  readonly kind: 'range';
  readonly lo: number;
  readonly hi: number;
  readonly open: { readonly lo?: boolean; readonly hi?: boolean };
  readonly late?: true;
}

export type ArrayKind = 'in' | 'out' | 'optionalIn' | 'optionalOut';

export interface ArrayArg<N extends string = string, K extends ArrayKind = ArrayKind> {
  readonly name: N;
  readonly kind: K;
  readonly length: LengthExpression;
  /** Earlier arguments this output may share memory with (in-place use). */
  readonly mayAlias: readonly string[];
  /** For an optional array: the sizes under which it is required after all (coupling's context when contextDim > 0). */
  readonly requiredWhen?: (sizes: Sizes) => boolean;
}

/** An integer in [lo, hi], hi possibly a function of the sizes read before it (a window's start). */
export interface BetweenArg<N extends string = string> {
  readonly name: N;
  readonly kind: 'between';
  readonly lo: number;
  readonly hi: number | ((sizes: Sizes) => number);
  readonly late?: true;
}

/** A Uint32Array holding each of 0..length−1 exactly once (column permutations). */
export interface PermutationArg<N extends string = string> {
  readonly name: N;
  readonly kind: 'permutation';
  readonly length: LengthExpression;
}

export type ArgSpec = ScalarArg | RangeArg | BetweenArg | ArrayArg | PermutationArg;

/** What a kernel returns: nothing, a count of bad rows, or a number (a norm). */
export type ReturnKind = 'void' | 'count' | 'number';

export interface KernelSignature<A extends readonly ArgSpec[] = readonly ArgSpec[], R extends ReturnKind = ReturnKind, B extends string = string> {
  /** The kernel's name in the native binding (and in arity errors), e.g. `planarForward`. */
  readonly binding: B;
  readonly args: A;
  readonly returns: R;
  /**
   * Sizes computed from the scalars before any array is read, in the binding's
   * order (so an overflowing product or a size constraint is refused as it is
   * natively). `readLate` reads a `late` scalar at the point the binding does.
   */
  readonly derive?: Derive;
}

export type Derive = (scalars: Sizes, readLate: (name: string) => number) => Sizes;

type ArgType<A> = A extends PermutationArg
  ? Uint32Array
  : A extends ArrayArg<string, 'in' | 'out'>
    ? FloatArray
    : A extends ArrayArg<string, 'optionalIn' | 'optionalOut'>
      ? FloatArray | null
      : A extends ScalarArg<string, 'bool'>
        ? boolean
        : number;

type ReturnType_<R extends ReturnKind> = R extends 'void' ? void : number;

/** The parameter list a signature declares. */
export type KernelArgs<S extends KernelSignature> = S extends KernelSignature<infer A, ReturnKind, string> ? ArgTypes<A> : never;

type ArgTypes<A extends readonly ArgSpec[]> = { -readonly [K in keyof A]: ArgType<A[K]> };

/** The TypeScript type of the kernel a signature declares. */
export type KernelFunction<S extends KernelSignature> = (...args: KernelArgs<S>) => ReturnType_<S['returns']>;

// The same call as the native addon exports it: float arrays are Float32Array.
type NativeArgType<A> = A extends PermutationArg
  ? Uint32Array
  : A extends ArrayArg<string, 'in' | 'out'>
    ? Float32Array
    : A extends ArrayArg<string, 'optionalIn' | 'optionalOut'>
      ? Float32Array | null
      : A extends ScalarArg<string, 'bool'>
        ? boolean
        : number;
type NativeArgTypes<A extends readonly ArgSpec[]> = { -readonly [K in keyof A]: NativeArgType<A[K]> };

/** The addon function a signature declares (native/napi/<family>.cc), by its binding name. */
export type BindingFunctions<T extends Record<string, KernelSignature>> = {
  [K in keyof T as T[K]['binding']]: T[K] extends KernelSignature<infer A, infer R, string> ? (...args: NativeArgTypes<A>) => ReturnType_<R> : never;
};

// ---- declaring -------------------------------------------------------------

export function kernel<const B extends string, const A extends readonly ArgSpec[], const R extends ReturnKind>(
  binding: B,
  args: A,
  returns: R,
  derive?: Derive,
): KernelSignature<A, R, B> {
  return { binding, args, returns, ...(derive ? { derive } : {}) };
}

/** A non-negative integer size (≤ 2^32). */
export const size = <const N extends string>(name: N): ScalarArg<N, 'size'> => ({ name, kind: 'size' });
/** A size the binding reads after the checks of `derive` (see ScalarArg.late). */
export const lateSize = <const N extends string>(name: N): ScalarArg<N, 'size'> => ({ name, kind: 'size', late: true });
/** A positive integer size (≤ 2^32). */
export const positive = <const N extends string>(name: N): ScalarArg<N, 'positive'> => ({ name, kind: 'positive' });
export const flag = <const N extends string>(name: N): ScalarArg<N, 'bool'> => ({ name, kind: 'bool' });
export const finite = <const N extends string>(name: N): ScalarArg<N, 'finite'> => ({ name, kind: 'finite' });
export const positiveNumber = <const N extends string>(name: N): ScalarArg<N, 'positiveNumber'> => ({ name, kind: 'positiveNumber' });
export const nonNegativeNumber = <const N extends string>(name: N): ScalarArg<N, 'nonNegativeNumber'> => ({ name, kind: 'nonNegativeNumber' });
export const range = <const N extends string>(name: N, lo: number, hi: number, open: RangeArg['open'] = {}): RangeArg<N> => ({
  name,
  kind: 'range',
  lo,
  hi,
  open,
});
/** A `range` the binding reads after the checks of `derive`. */
export const lateRange = <const N extends string>(name: N, lo: number, hi: number, open: RangeArg['open'] = {}): RangeArg<N> => ({
  ...range(name, lo, hi, open),
  late: true,
});
/** An integer in [lo, hi] read after the checks of `derive` (hi may depend on the sizes read before it). */
export const lateIntegerBetween = <const N extends string>(name: N, lo: number, hi: BetweenArg['hi']): BetweenArg<N> => ({
  name,
  kind: 'between',
  lo,
  hi,
  late: true,
});
export const input = <const N extends string>(name: N, length: LengthExpression): ArrayArg<N, 'in'> => ({ name, kind: 'in', length, mayAlias: [] });
export const optionalInput = <const N extends string>(
  name: N,
  length: LengthExpression,
  requiredWhen?: (sizes: Sizes) => boolean,
): ArrayArg<N, 'optionalIn'> => ({ name, kind: 'optionalIn', length, mayAlias: [], ...(requiredWhen ? { requiredWhen } : {}) });
export const output = <const N extends string>(name: N, length: LengthExpression, mayAlias: readonly string[] = []): ArrayArg<N, 'out'> => ({
  name,
  kind: 'out',
  length,
  mayAlias,
});
export const optionalOutput = <const N extends string>(
  name: N,
  length: LengthExpression,
  mayAlias: readonly string[] = [],
  requiredWhen?: (sizes: Sizes) => boolean,
): ArrayArg<N, 'optionalOut'> => ({ name, kind: 'optionalOut', length, mayAlias, ...(requiredWhen ? { requiredWhen } : {}) });

export const permutation = <const N extends string>(name: N, length: LengthExpression): PermutationArg<N> => ({ name, kind: 'permutation', length });

/**
 * a·b, refused as the binding refuses it (`Product` in native/napi/args.h:
 * b > ⌊2^36 / a⌋), naming the size being computed.
 */
export function sizeProduct(a: number, b: number, what: string): number {
  if (a !== 0 && b > Math.floor(2 ** 36 / a)) throw rangeError(`Size of "${what}" is too large`);
  return a * b;
}

// ---- checking ----------------------------------------------------------------

function isArray(a: ArgSpec): a is ArrayArg {
  return a.kind === 'in' || a.kind === 'out' || a.kind === 'optionalIn' || a.kind === 'optionalOut';
}

/** The binding's permutation check (native/napi/glow.cc) and words. */
export function checkPermutation(value: unknown, name: string, dim: number): Uint32Array {
  if (!(value instanceof Uint32Array)) throw typeError(expected('Uint32Array', name, value));
  if (value.length !== dim) throw rangeError(expected(`Uint32Array of length ${dim}`, name, value), 'ERR_SHAPE');
  const seen = new Uint8Array(dim);
  for (let j = 0; j < dim; j++) {
    const k = value[j];
    if (k >= dim || seen[k]) throw rangeError(expected(`permutation of 0..${dim - 1} as a Uint32Array of length ${dim}`, name, value));
    seen[k] = 1;
  }
  return value;
}

function checkScalar(spec: ScalarArg | RangeArg | BetweenArg, value: unknown, sizes: Sizes): number {
  switch (spec.kind) {
    case 'between':
      return checkIntegerBetween(value, spec.name, spec.lo, typeof spec.hi === 'function' ? spec.hi(sizes) : spec.hi);
    case 'size':
      return checkSize(value, spec.name);
    case 'positive':
      return checkPositiveInt(value, spec.name);
    case 'bool':
      return checkBoolean(value, spec.name) ? 1 : 0;
    case 'finite':
      return checkFinite(value, spec.name);
    case 'positiveNumber':
      return checkPositiveNumber(value, spec.name);
    case 'nonNegativeNumber':
      return checkNonNegativeNumber(value, spec.name);
    case 'range':
      return checkInRange(value, spec.name, spec.lo, spec.hi, spec.open);
  }
}

const overlaps = sharesMemory;

function arrayKindName(a: FloatArray): string {
  return a instanceof Float32Array ? 'Float32Array' : 'Float64Array';
}

/**
 * Checks one call against its signature, in the native binding's order and
 * words, and returns the sizes (scalars and derived sizes by name).
 * `dtype` restricts the element type (a native-backed wrapper passes
 * 'float32'); without it both float types pass.
 */
export function checkKernelArgs(signature: KernelSignature, args: ArrayLike<unknown>, dtype?: 'float32'): Sizes {
  const specs = signature.args;
  if (args.length < specs.length) {
    throw typeError(`${signature.binding} expects ${specs.length} arguments but received ${args.length}`);
  }
  const scalars: Record<string, number> = {};
  const isScalar = (spec: ArgSpec): spec is ScalarArg | RangeArg | BetweenArg => !isArray(spec) && spec.kind !== 'permutation';
  const readLate = (name: string): number => {
    if (!(name in scalars)) {
      const i = specs.findIndex((spec) => spec.name === name);
      scalars[name] = checkScalar(specs[i] as ScalarArg, args[i], scalars);
    }
    return scalars[name];
  };
  specs.forEach((spec, i) => {
    if (isScalar(spec) && !('late' in spec && spec.late)) scalars[spec.name] = checkScalar(spec, args[i], scalars);
  });
  const derived = signature.derive ? signature.derive(scalars, readLate) : {};
  for (const spec of specs) if (isScalar(spec)) readLate(spec.name);
  const sizes: Sizes = { ...scalars, ...derived };
  const seen: { name: string; array: FloatArray }[] = [];
  specs.forEach((spec, i) => {
    // A permutation is read in its place but takes no part in overlap checks (the bindings compare float arrays only).
    if (spec.kind === 'permutation') checkPermutation(args[i], spec.name, spec.length(sizes));
    if (!isArray(spec)) return;
    const value = args[i];
    const optional = (spec.kind === 'optionalIn' || spec.kind === 'optionalOut') && !spec.requiredWhen?.(sizes);
    if (optional && (value === null || value === undefined)) return;
    const ok = dtype === 'float32' ? value instanceof Float32Array : value instanceof Float32Array || value instanceof Float64Array;
    if (!ok) {
      const what = dtype === 'float32' ? 'Float32Array' : 'Float32Array or Float64Array';
      throw typeError(expected(optional ? `${what} or null` : what, spec.name, value));
    }
    const array = value as FloatArray;
    const length = spec.length(sizes);
    if (array.length !== length) throw rangeError(expected(`${arrayKindName(array)} of length ${length}`, spec.name, value), 'ERR_SHAPE');
    if (spec.kind === 'out' || spec.kind === 'optionalOut') {
      for (const other of seen) {
        if (!spec.mayAlias.includes(other.name) && overlaps(array, other.array)) {
          throw rangeError(expected(`${arrayKindName(array)} not overlapping "${other.name}"`, spec.name, value));
        }
      }
    }
    seen.push({ name: spec.name, array });
  });
  return sizes;
}

/** The number of arguments a signature declares. */
export function arity(signature: KernelSignature): number {
  return signature.args.length;
}

/** The sizes every row-wise kernel reads last, `(batch, dim)`, and `values` = batch·dim as the binding names it. */
export const rowScalars = [size('batch'), size('dim')] as const;
export function rowSizes(s: Sizes): Sizes {
  return { values: sizeProduct(s.batch, s.dim, 'batch * dim') };
}
/** Length expressions of the row-wise kernels. */
export const perValue = (s: Sizes): number => s.values;
export const perRow = (s: Sizes): number => s.batch;
export const perColumn = (s: Sizes): number => s.dim;
