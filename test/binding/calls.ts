/**
 * Finds a valid call of every function the native addon exports, without a
 * hand-written table of signatures, so that the binding fuzz, concurrency and
 * leak tests cover each kernel family the moment its binding lands.
 *
 * It works from the binding's own error messages (native/napi/args.h):
 *   - `f()` throws `<fn> expects N arguments but received 0`, giving the arity;
 *   - every argument starts as a distinct sentinel number (-1000.25, -1001.25,
 *     …); a check that rejects it says `Expected <what> for "<name>" but
 *     received -1002.25 (number)`, which names the position (2) and the kind
 *     of value wanted there;
 *   - the position then gets a value of that kind (`Float32Array of length 12`
 *     gives exactly that array) and the call is retried, until it returns.
 * Checks that accept any finite number keep the sentinel, which is a finite
 * number. Nothing here imports vitest: the ASan driver runs it under plain node.
 */

/** A seeded generator (mulberry32) for argument values: the same calls on every run. */
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

export type AddonFunction = (...args: unknown[]) => unknown;

/** The addon's functions by name, in a stable order (non-function exports such as abiVersion left out). */
export function exportedFunctions(addon: object): [string, AddonFunction][] {
  return Object.keys(addon)
    .sort()
    .filter((name) => typeof (addon as Record<string, unknown>)[name] === 'function')
    .map((name) => [name, (addon as Record<string, AddonFunction>)[name]]);
}

/** What one argument position turned out to be. */
export interface ArgInfo {
  /** The argument's name in the binding's messages ('' when no check ever named it). */
  name: string;
  /** The binding's description of a valid value, e.g. 'Float32Array of length 12', 'non-negative integer'. */
  expects: string;
}

export interface ValidCall {
  fn: string;
  /** Arguments of a call that returns normally, as they were before it (or the last attempt, when `found` is false). */
  args: unknown[];
  info: ArgInfo[];
  found: boolean;
  /** Why no valid call was found. */
  note: string;
}

const EXPECTED = /^Expected (.+) for "([^"]+)" but received (.*)$/s;
const ARITY = /^\S+ expects (\d+) arguments? but received \d+$/;

/** Sentinel for position i: a finite non-integer no size or array check accepts, unique per position. */
export function sentinel(i: number): number {
  return -(1000 + i) - 0.25;
}

function sentinelPosition(received: string): number | undefined {
  const m = /^(-\d+\.25) \(number\)$/.exec(received);
  if (!m) return undefined;
  const i = -Number(m[1]) - 1000.25;
  return Number.isInteger(i) && i >= 0 ? i : undefined;
}

export const TYPED_ARRAYS = {
  Float32Array,
  Float64Array,
  Int32Array,
  Uint32Array,
  Uint8Array,
  Int8Array,
  Int16Array,
  Uint16Array,
} as const;

/** Longest array inference will allocate for one argument (keeps tests small and fast). */
const MAX_INFERRED_LENGTH = 1 << 22;

/** Fills a typed array with small values: floats in [-1, 1), integers in [0, 4). */
function fill(array: ArrayBufferView & ArrayLike<number>, rand: () => number): void {
  const target = array as unknown as { [i: number]: number; length: number };
  const isFloat = array instanceof Float32Array || array instanceof Float64Array;
  for (let i = 0; i < target.length; i++) target[i] = isFloat ? 2 * rand() - 1 : Math.floor(4 * rand());
}

/**
 * A value matching the binding's description `expects`, or undefined when the
 * description is not understood. `attempt` walks through alternatives when a
 * first choice is rejected by a further check; `size` is the value preferred
 * for dimensions.
 */
export function valueFor(expects: string, attempt: number, size: number, rand: () => number): unknown {
  // A column permutation (glow): each of 0..n−1 once, shuffled.
  const permutation = /^permutation of 0\.\.(\d+) as a Uint32Array/.exec(expects);
  if (permutation) {
    const n = Number(permutation[1]) + 1;
    if (n > MAX_INFERRED_LENGTH) return undefined;
    const perm = new Uint32Array(n).map((_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    return perm;
  }
  // The layer widths of a residual network: [D, H, D].
  if (/^layer widths \[D, H\.\.\., D\] as a Uint32Array/.test(expects)) return Uint32Array.from([size, size + 2, size]);
  // A list of tensors (Adam's params and grads): N arrays of `size` elements each, 1 when N is not given.
  const list = /^array of (?:(\d+) )?Float32Array/.exec(expects);
  if (list) {
    const n = list[1] === undefined ? 1 : Number(list[1]);
    return Array.from({ length: n }, () => {
      const array = new Float32Array(size);
      fill(array, rand);
      return array;
    });
  }
  const typed = /^(Float32Array|Float64Array|Int32Array|Uint32Array|Uint8Array|Int8Array|Int16Array|Uint16Array)(?: of length (\d+))?/.exec(expects);
  if (typed) {
    // An array whose length the binding leaves free (e.g. rng's `out`) gets a few elements to work on.
    const length = typed[2] === undefined ? 2 * size + 7 : Number(typed[2]);
    if (length > MAX_INFERRED_LENGTH) return undefined;
    const array = new TYPED_ARRAYS[typed[1] as keyof typeof TYPED_ARRAYS](length);
    fill(array, rand);
    return array;
  }
  if (/^boolean/.test(expects)) return attempt % 2 === 1;
  // Ranges written as [a, b], (a, b), [a, b) …; integers take the smallest allowed value above the bottom.
  const range = /([[(])\s*(-?[\d.e+]+|-?\d+\^\d+)\s*,\s*(-?[\d.e+]+|-?\d+\^\d+)\s*([\])])/.exec(expects);
  if (range) {
    const num = (s: string) => (s.includes('^') ? Math.pow(Number(s.split('^')[0]), Number(s.split('^')[1])) : Number(s));
    const lo = num(range[2]);
    const hi = num(range[3]);
    if (/integer/.test(expects)) {
      const first = range[1] === '[' ? Math.ceil(lo) : Math.floor(lo) + 1;
      const last = range[4] === ']' ? Math.floor(hi) : Math.ceil(hi) - 1;
      return Math.min(first + attempt, last);
    }
    const t = [0.5, 0.25, 0.75][attempt % 3];
    return lo + t * (hi - lo);
  }
  if (/^integer between (\d+) and (\d+)/.test(expects)) {
    const [, lo, hi] = /^integer between (\d+) and (\d+)/.exec(expects)!.map(Number);
    return Math.min(lo + 1 + attempt, hi);
  }
  if (/^(non-negative|positive) integer/.test(expects)) return [size, 1, 2, 4, 8][attempt % 5];
  if (/integer/.test(expects)) return [size, 1, 0, 2][attempt % 4];
  if (/^positive/.test(expects)) return [0.5, 1, 2][attempt % 3];
  if (/number/.test(expects)) return [0.5, 0, 1, 0.9][attempt % 4];
  return undefined;
}

/** Values tried, in turn, at a position whose description `valueFor` does not understand. */
function fallback(attempt: number): unknown {
  const choices = [1, 0, 2, 0.5, true, false, null, new Float32Array(0), new Uint32Array(0)];
  return choices[attempt % choices.length];
}

/** Deep-enough copy of call arguments: typed arrays copied, everything else shared. */
export function cloneArgs(args: readonly unknown[]): unknown[] {
  const copy = (a: unknown): unknown => (ArrayBuffer.isView(a) && !(a instanceof DataView) ? (a as Float32Array).slice() : a);
  return args.map((a) => (Array.isArray(a) ? a.map(copy) : copy(a)));
}

/** Arity from the binding's arity message, 0 when a call without arguments returns. */
export function inferArity(fn: AddonFunction): number | undefined {
  try {
    fn();
    return 0;
  } catch (e) {
    const m = ARITY.exec(e instanceof Error ? e.message : '');
    return m ? Number(m[1]) : undefined;
  }
}

export interface InferOptions {
  /** Preferred value for size arguments (default 3). */
  size?: number;
  /** Seed for array contents. */
  seed?: number;
  /** Start from these arguments instead of sentinels (used to re-fit array lengths after changing sizes). */
  start?: unknown[];
  /** Positions whose values must be kept (inference gives up rather than change them). */
  keep?: ReadonlySet<number>;
  /** Known positions from an earlier inference (lets `start` values be repaired by name). */
  known?: ArgInfo[];
  /** Most calls to try (default 200). */
  maxCalls?: number;
}

/**
 * Finds arguments for which `fn` returns normally, guided by its error
 * messages. Never throws; `found` says whether it succeeded.
 */
export function inferValidCall(fnName: string, fn: AddonFunction, options: InferOptions = {}): ValidCall {
  const rand = seededRandom(options.seed ?? 12345);
  const size = options.size ?? 3;
  let arity = options.start ? options.start.length : inferArity(fn);
  // A binding without an arity check: start from more sentinels than any
  // kernel takes, and cut the surplus once a call succeeds.
  const trimAfter = arity === undefined;
  if (arity === undefined) arity = MAX_ARITY;
  const args = options.start ? [...options.start] : Array.from({ length: arity }, (_, i) => sentinel(i));
  const info: ArgInfo[] = Array.from({ length: arity }, (_, i) => options.known?.[i] ?? { name: '', expects: '' });
  const attempts = new Array<number>(arity).fill(0);
  const maxCalls = options.maxCalls ?? 200;
  let note = '';
  for (let call = 0; call < maxCalls; call++) {
    let error: unknown;
    // The returned arguments are those from before the successful call (which
    // writes its outputs): a later call that fails to write an output must not
    // find the right numbers already there.
    const before = cloneArgs(args);
    try {
      fn(...args);
      if (trimAfter) return trimmed(fnName, fn, before, info);
      return { fn: fnName, args: before, info, found: true, note: '' };
    } catch (e) {
      error = e;
    }
    const message = error instanceof Error ? error.message : String(error);
    const m = EXPECTED.exec(message);
    if (!m) {
      note = `stopped at: ${message}`;
      break;
    }
    const [, expects, name, received] = m;
    let position = info.findIndex((a) => a.name === name);
    if (position < 0) position = sentinelPosition(received) ?? -1;
    if (position < 0 || position >= arity) {
      note = `could not tell which argument is "${name}" (received ${received})`;
      break;
    }
    if (options.keep?.has(position)) {
      note = `argument "${name}" is fixed but rejected: ${message}`;
      break;
    }
    if (info[position].expects !== expects) attempts[position] = 0;
    info[position] = { name, expects };
    let value = valueFor(expects, attempts[position], size, rand);
    if (value === undefined) {
      if (/Array of length/.test(expects)) {
        note = `array too long to allocate for "${name}": ${expects}`;
        break;
      }
      value = fallback(attempts[position]);
    }
    attempts[position]++;
    if (attempts[position] > 12) {
      note = `no accepted value for "${name}": ${message}`;
      break;
    }
    args[position] = value;
    if (call === maxCalls - 1) note = `no valid call within ${maxCalls} attempts`;
  }
  return { fn: fnName, args, info, found: false, note };
}

/** Sentinels passed to a function whose binding does not state its arity. */
const MAX_ARITY = 32;

/** The shortest prefix of a valid call that is still valid (drops surplus sentinels). */
function trimmed(fnName: string, fn: AddonFunction, args: unknown[], info: ArgInfo[]): ValidCall {
  const named = info.reduce((last, a, i) => (a.name ? i : last), -1);
  for (let k = named + 1; k < args.length; k++) {
    try {
      fn(...cloneArgs(args.slice(0, k)));
      return { fn: fnName, args: args.slice(0, k), info: info.slice(0, k), found: true, note: '' };
    } catch {
      // a later argument is needed
    }
  }
  return { fn: fnName, args, info, found: true, note: '' };
}

/** True when a position holds a size (a dimension or count), per the binding's description. */
export function isSizeArg(a: ArgInfo): boolean {
  return /^(non-negative|positive) integer/.test(a.expects);
}

/** True when a position holds a typed array whose length the binding leaves free (its length is a size). */
export function isFreeLengthArray(a: ArgInfo): boolean {
  return /^(Float32Array|Float64Array|Int32Array|Uint32Array)$/.test(a.expects);
}

/**
 * A valid call of the same function with other sizes: sets the size
 * arguments to `sizes` (cycled) and refits the arrays to them. Returns
 * undefined when the binding rejects those sizes (e.g. a dimension bound).
 */
export function resizeCall(call: ValidCall, fn: AddonFunction, sizes: readonly number[], seed: number): ValidCall | undefined {
  if (call.info.some(isFreeLengthArray) && sizes.some((n) => n > MAX_INFERRED_LENGTH)) return undefined;
  const start = [...call.args];
  const keep = new Set<number>();
  let k = 0;
  call.info.forEach((a, i) => {
    if (isSizeArg(a)) {
      start[i] = sizes[k++ % sizes.length];
      keep.add(i);
    } else if (isFreeLengthArray(a)) {
      const array = new TYPED_ARRAYS[a.expects as keyof typeof TYPED_ARRAYS](sizes[k++ % sizes.length]);
      fill(array, seededRandom(seed));
      start[i] = array;
      keep.add(i);
    }
  });
  const result = inferValidCall(call.fn, fn, { start, keep, known: call.info, seed, maxCalls: 4 * start.length + 8 });
  return result.found ? result : undefined;
}
