/**
 * Binding fuzzer: calls every function the native addon exports thousands of
 * times with valid, awkward and hostile arguments. Every call must either
 * return (when the arguments happen to be valid) or throw a TypeError or
 * RangeError carrying a `.code` and a message in the binding's format; a
 * crash ends the process, which the caller reports. Valid calls made through
 * unusual views (offsets into a larger buffer, SharedArrayBuffer, resizable
 * buffers) must give the same numbers as the plain call.
 *
 * Seeded and deterministic apart from the time budget, which only cuts a run
 * short. Plain TypeScript with no test framework: `test/fuzz.test.ts` runs it
 * in-process, `scripts/fuzz-asan.sh` runs it against an AddressSanitizer
 * build of the addon under plain node.
 */
import { type AddonFunction, type ValidCall, cloneArgs, exportedFunctions, inferValidCall, isSizeArg, resizeCall, seededRandom } from './calls';

export interface FuzzOptions {
  seed: number;
  /** Calls per exported function (default 3000). */
  callsPerFunction?: number;
  /** Wall-clock budget for the whole run in ms; each function gets an equal share (and at least 300 calls). */
  budgetMs?: number;
  /** Progress lines (function name before its calls, so a crash shows where it happened). */
  log?: (line: string) => void;
}

export interface FunctionReport {
  name: string;
  /** Whether a valid call was inferred (without one, only hostile calls are made). */
  validCall: boolean;
  note: string;
  calls: number;
  /** The time share ran out before callsPerFunction calls. */
  truncated: boolean;
}

export interface FuzzReport {
  functions: FunctionReport[];
  /** Calls by case, then by outcome ('returned', 'TypeError ERR_ARG', 'RangeError ERR_SHAPE', …). */
  outcomes: Record<string, Record<string, number>>;
  /** Calls that broke the contract (first 50). */
  failures: string[];
  failureCount: number;
  totalCalls: number;
  elapsedMs: number;
}

const MESSAGE_FORMATS = [/^Expected .+ for "[^"]+" but received .*$/s, /^\S+ expects \d+ arguments? but received \d+$/, /^Size of "[^"]+" is too large$/];

/** Sizes for valid calls at awkward sizes: zero, one, around SIMD widths (4, 8, 16) and cache-unfriendly odd sizes. */
const AWKWARD_SIZES = [0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33];
/** Leading sizes (batch, rows) large enough to split a kernel over the pool's threads. */
const PARALLEL_SIZES = [257, 1024, 4099];
/** Sizes no array can match: accepted by a size check only when some other size is 0. */
const HUGE_SIZES = [2 ** 31, 2 ** 31 - 1, 2 ** 32, 2 ** 32 - 1, 2 ** 32 + 1];
/** Numbers a size, count, seed or scalar must survive. */
const HOSTILE_NUMBERS = [
  -1,
  -0,
  0,
  0.5,
  -0.5,
  1.5,
  1e-300,
  NaN,
  Infinity,
  -Infinity,
  2 ** 31,
  2 ** 31 - 1,
  2 ** 32,
  2 ** 32 + 1,
  2 ** 53,
  2 ** 53 + 2,
  2 ** 64,
  1e300,
  -1e300,
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  Number.EPSILON,
  1025,
  4097,
  -(2 ** 31),
];

/** Values no size check may accept (sizes are integers in [0, 2^32]). */
const INVALID_SIZES = [
  -1,
  -0.5,
  0.5,
  1.5,
  3.000001,
  NaN,
  Infinity,
  -Infinity,
  2 ** 32 + 1,
  2 ** 53,
  2 ** 64,
  1e300,
  -1e300,
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  Number.EPSILON,
  -(2 ** 31),
];

function hostileObjects(): unknown[] {
  return [
    undefined,
    null,
    true,
    false,
    '',
    '3',
    'Float32Array',
    {},
    { length: 3 },
    { byteLength: 12, buffer: new ArrayBuffer(12) },
    [],
    [1, 2, 3],
    new Array(9).fill(0.5),
    3n,
    -1n,
    2n ** 64n,
    Symbol('flowvae'),
    () => 1,
    new Date(0),
    /x/,
    new Map(),
    Promise.resolve(),
    new Error('not an argument'),
    // Any property read on this throws a plain Error, which would escape as a non-coded error.
    new Proxy(
      {},
      {
        get: () => {
          throw new Error('proxy get trap reached');
        },
        has: () => {
          throw new Error('proxy has trap reached');
        },
      },
    ),
    Object.create(Float32Array.prototype),
  ];
}

/** Typed arrays of the wrong kind but the right element count, and non-array views. */
function wrongKindArrays(n: number): unknown[] {
  return [
    new Float64Array(n),
    new Int32Array(n),
    new Uint32Array(n),
    new Uint8Array(n),
    new Uint8Array(4 * n),
    new Int16Array(n),
    new BigInt64Array(n),
    new DataView(new ArrayBuffer(4 * n)),
    Buffer.alloc(4 * n),
    new ArrayBuffer(4 * n),
    new SharedArrayBuffer(4 * n),
    Array.from({ length: n }, () => 0.5),
  ];
}

/** A Float32Array whose buffer has been detached (transferred away). */
function detached(n: number, Kind: Float32ArrayConstructor = Float32Array): Float32Array {
  const a = new Kind(n);
  structuredClone(a.buffer, { transfer: [a.buffer] });
  return a;
}

type Outcome = { kind: 'returned' } | { kind: 'threw'; label: string; problem: string };

function classify(call: () => unknown): Outcome {
  try {
    call();
    return { kind: 'returned' };
  } catch (e) {
    if (!(e instanceof TypeError) && !(e instanceof RangeError)) {
      const what = e instanceof Error ? `${e.constructor.name}: ${e.message}` : `non-Error ${String(e)}`;
      return { kind: 'threw', label: 'other', problem: `threw ${what}` };
    }
    const code = (e as { code?: unknown }).code;
    const label = `${e.constructor.name} ${String(code)}`;
    if (code !== 'ERR_ARG' && code !== 'ERR_SHAPE') return { kind: 'threw', label, problem: `threw ${label} without ERR_ARG/ERR_SHAPE code: ${e.message}` };
    if (!MESSAGE_FORMATS.some((f) => f.test(e.message))) return { kind: 'threw', label, problem: `message not in the binding format: ${e.message}` };
    return { kind: 'threw', label, problem: '' };
  }
}

function brief(v: unknown): string {
  if (ArrayBuffer.isView(v)) {
    const a = v as Float32Array;
    const detachedNow = a.buffer.byteLength === 0 && a.byteLength === 0;
    return `${v.constructor.name}(${v instanceof DataView ? v.byteLength + 'B' : a.length}${a.byteOffset ? ' @' + a.byteOffset : ''}${detachedNow ? ' detached' : ''})`;
  }
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'symbol') return 'Symbol';
  if (typeof v === 'function') return 'function';
  if (Array.isArray(v)) return `Array(${v.length})`;
  if (v instanceof ArrayBuffer) return `ArrayBuffer(${v.byteLength})`;
  if (typeof v === 'object' && v !== null) return 'object';
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

function isFloatArray(v: unknown): v is Float32Array {
  return v instanceof Float32Array;
}

/** Largest |a − b| allowed between a plain call and the same call through unusual views. */
function sameNumbers(a: Float32Array, b: Float32Array): boolean {
  // Kernels may take a different SIMD peel when an array is not 32-byte
  // aligned, which can reorder a short float32 sum (≤ 33 terms of size ≤ ~10
  // here: a few ulps). A view bug (ignored byteOffset, wrong buffer) gives
  // unrelated numbers, far outside 1e-4·(1 + |b|).
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) && Number.isNaN(b[i])) continue;
    if (!(Math.abs(a[i] - b[i]) <= 1e-4 * (1 + Math.abs(b[i])))) return false;
  }
  return true;
}

type ViewKind = 'offset' | 'shared' | 'resizable';

/**
 * Copies of the Float32Array arguments placed in unusual but valid memory.
 * Offset views sit inside a larger buffer whose other elements are guards
 * (a NaN payload no kernel produces), checked after the call by `guardsIntact`.
 */
function throughViews(args: unknown[], kind: ViewKind, rand: () => number): { args: unknown[]; guarded: Float32Array[] } {
  const guarded: Float32Array[] = [];
  const out = args.map((a) => {
    if (!isFloatArray(a)) return a;
    let view: Float32Array;
    if (kind === 'offset') {
      const before = 1 + Math.floor(rand() * 7);
      const big = new Float32Array(a.length + before + 5);
      new Uint32Array(big.buffer).fill(GUARD_BITS);
      view = big.subarray(before, before + a.length);
      guarded.push(view);
    } else if (kind === 'shared') {
      view = new Float32Array(new SharedArrayBuffer(4 * a.length));
    } else {
      const Ctor = ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer;
      view = new Float32Array(new Ctor(4 * a.length, { maxByteLength: 4 * a.length + 64 }));
    }
    view.set(a);
    return view;
  });
  return { args: out, guarded };
}

/** A quiet NaN with a payload: kernels write their own NaNs with the default payload, never this one. */
const GUARD_BITS = 0x7fc0beef;

/** True when nothing outside the view was written in its enclosing buffer. */
function guardsIntact(view: Float32Array): boolean {
  const words = new Uint32Array(view.buffer);
  const begin = view.byteOffset / 4;
  for (let i = 0; i < words.length; i++) {
    if ((i < begin || i >= begin + view.length) && words[i] !== GUARD_BITS) return false;
  }
  return true;
}

/**
 * Fuzzes every exported function of `addon`. Never throws for contract
 * breaches: they are listed in the report's `failures`.
 */
export function fuzzAddon(addon: object, options: FuzzOptions): FuzzReport {
  const started = Date.now();
  const callsPerFunction = options.callsPerFunction ?? 3000;
  const budgetMs = options.budgetMs ?? 10_000;
  const log = options.log ?? (() => {});
  const rand = seededRandom(options.seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rand() * list.length)];
  const outcomes: Record<string, Record<string, number>> = {};
  const failures: string[] = [];
  let failureCount = 0;
  let totalCalls = 0;
  const functions: FunctionReport[] = [];
  const settings = addon as { getNumThreads?: () => number; setNumThreads?: (n: number) => void };
  const threadsBefore = settings.getNumThreads?.();

  const record = (fnName: string, kase: string, args: unknown[], outcome: Outcome, expectReturn: boolean) => {
    totalCalls++;
    const label = outcome.kind === 'returned' ? 'returned' : outcome.label;
    outcomes[kase] ??= {};
    outcomes[kase][label] = (outcomes[kase][label] ?? 0) + 1;
    let problem = outcome.kind === 'threw' ? outcome.problem : '';
    if (!problem && expectReturn && outcome.kind === 'threw') problem = `a valid call threw ${outcome.label}`;
    if (problem) {
      failureCount++;
      if (failures.length < 50) failures.push(`${fnName}(${args.map(brief).join(', ')}) [${kase}]: ${problem}`);
    }
  };

  const list = exportedFunctions(addon);
  // Every function gets an equal share of the budget from its own start, and
  // at least minCalls calls however slow the machine is.
  const minCalls = Math.min(callsPerFunction, 300);
  list.forEach(([name, fn], index) => {
    const deadline = Date.now() + budgetMs / list.length;
    log(`fuzz ${name}`);
    const template: ValidCall = inferValidCall(name, fn, { seed: options.seed + index });
    const report: FunctionReport = { name, validCall: template.found, note: template.note, calls: 0, truncated: false };
    functions.push(report);
    // Settings functions (setNumThreads) only get small valid values: a valid
    // setNumThreads(33) would grow the shared pool for the rest of the run.
    const isSetting = /^set[A-Z]/.test(name);
    const arity = template.args.length;
    const call = (kase: string, args: unknown[], expectReturn = false) => {
      report.calls++;
      record(
        name,
        kase,
        args,
        classify(() => (fn as AddonFunction)(...args)),
        expectReturn,
      );
    };
    const arrayPositions = template.info.map((_a, i) => (ArrayBuffer.isView(template.args[i]) ? i : -1)).filter((i) => i >= 0);
    // Arrays whose length the sizes fix (rng's `out` takes any length).
    const fixedLengthPositions = arrayPositions.filter((p) => /of length/.test(template.info[p].expects));
    const sizePositions = template.info.map((a, p) => (isSizeArg(a) ? p : -1)).filter((p) => p >= 0);
    const numberPositions = template.args.map((a, i) => (typeof a === 'number' ? i : -1)).filter((i) => i >= 0);

    for (let i = 0; i < callsPerFunction; i++) {
      if (i >= minCalls && Date.now() > deadline) {
        report.truncated = true;
        break;
      }
      const args = cloneArgs(template.args);
      const r = rand();
      if (r < 0.06) {
        call('valid call', args, template.found);
      } else if (r < 0.16 && template.found) {
        // Valid calls at awkward sizes (and, now and then, a huge size beside a
        // zero one), or with one large size so that kernels take their
        // multi-threaded paths (row kernels split above ~16k elements).
        const parallel = !isSetting && rand() < 0.25;
        const sizes = parallel
          ? [pick(PARALLEL_SIZES), pick([40, 24, 19]), pick([19, 5, 3]), pick([5, 3, 2])]
          : Array.from({ length: 4 }, () => (isSetting ? 1 + Math.floor(rand() * 4) : rand() < 0.15 ? pick(HUGE_SIZES) : pick(AWKWARD_SIZES)));
        const resized = resizeCall(template, fn, sizes, options.seed + i);
        if (resized) call(parallel ? 'valid call, sizes that go parallel' : 'valid call, other sizes', resized.args, true);
        else {
          // The binding rejected these sizes during the refit: the call with the old arrays must throw cleanly.
          const start = cloneArgs(template.args);
          let k = 0;
          template.info.forEach((a, p) => {
            if (/integer/.test(a.expects) && typeof start[p] === 'number') start[p] = sizes[k++ % sizes.length];
          });
          call('sizes that no array fits', start);
        }
      } else if (r < 0.22 && template.found && arrayPositions.length > 0) {
        // The same valid call through unusual views must give the same numbers.
        const kind = pick<ViewKind>(['offset', 'shared', 'resizable']);
        const plain = cloneArgs(template.args);
        const { args: viewed, guarded } = throughViews(cloneArgs(template.args), kind, rand);
        const a = classify(() => (fn as AddonFunction)(...plain));
        const b = classify(() => (fn as AddonFunction)(...viewed));
        report.calls += 2;
        record(name, 'valid call', plain, a, true);
        record(name, `valid call, ${kind} views`, viewed, b, true);
        for (const g of guarded) {
          if (!guardsIntact(g)) {
            failureCount++;
            if (failures.length < 50) failures.push(`${name} [offset views]: wrote outside an argument's view`);
          }
        }
        if (a.kind === 'returned' && b.kind === 'returned') {
          plain.forEach((p, j) => {
            if (isFloatArray(p) && !sameNumbers(viewed[j] as Float32Array, p)) {
              failureCount++;
              if (failures.length < 50) failures.push(`${name} [${kind} views]: argument ${j} differs from the plain call`);
            }
          });
        }
      } else if (r < 0.3 && arity > 0) {
        call('too few arguments', args.slice(0, Math.floor(rand() * arity)));
      } else if (r < 0.34) {
        call('extra arguments', [...args, ...hostileObjects().slice(0, 1 + Math.floor(rand() * 4))], template.found);
      } else if (r < 0.42 && arity > 0) {
        // A value of another type than the valid one (null and undefined apart: optional arrays take them).
        const p = Math.floor(rand() * arity);
        args[p] = pick(hostileObjects().filter((v) => v != null && typeof v !== typeof template.args[p]));
        call('wrong type (not a number or typed array)', args);
      } else if (r < 0.46 && arity > 0) {
        args[Math.floor(rand() * arity)] = rand() < 0.5 ? null : undefined;
        call('null or undefined argument', args);
      } else if (r < 0.56 && arrayPositions.length > 0) {
        const p = pick(arrayPositions);
        const valid = template.args[p] as Float32Array;
        args[p] = pick(wrongKindArrays(valid.length).filter((a) => (a as object).constructor !== valid.constructor));
        call('wrong array kind, right element count', args);
      } else if (r < 0.62 && arrayPositions.length > 0) {
        const p = pick(arrayPositions);
        const valid = template.args[p] as Float32Array;
        args[p] = detached(valid.length, valid.constructor as Float32ArrayConstructor);
        call('detached buffer', args, false);
      } else if (r < 0.72 && fixedLengthPositions.length > 0) {
        const p = pick(fixedLengthPositions);
        const valid = template.args[p] as Float32Array;
        const n = valid.length;
        // Same kind of array as the valid one (Float32Array, or Uint32Array for masks and orderings).
        const Kind = valid.constructor as Float32ArrayConstructor;
        const length = pick([0, n - 1, n + 1, 2 * n, n + 4096, 1 << 16].filter((x) => x >= 0 && x !== n));
        if (rand() < 0.5) args[p] = new Kind(length);
        else {
          // A view into a larger buffer: right-looking memory around it, wrong length.
          const big = new Kind(length + 8);
          args[p] = big.subarray(3, 3 + length);
        }
        call('array too short or too long', args);
      } else if (r < 0.79 && sizePositions.length > 0) {
        args[pick(sizePositions)] = pick(INVALID_SIZES);
        call('invalid size (negative, fractional, NaN, > 2^32)', args);
      } else if (r < 0.86 && numberPositions.length > 0) {
        const p = pick(numberPositions);
        args[p] = pick(HOSTILE_NUMBERS);
        if (isSetting && typeof args[p] === 'number' && (args[p] as number) > 4 && (args[p] as number) <= 1024) args[p] = 1025;
        call('bad number (size, seed or scalar)', args);
      } else {
        // Several positions at once, anything goes.
        const all = [...hostileObjects(), ...HOSTILE_NUMBERS, ...HUGE_SIZES, ...wrongKindArrays(3), detached(3), new Float32Array(0)];
        for (let p = 0; p < arity; p++) if (rand() < 0.5) args[p] = pick(all);
        if (isSetting) for (let p = 0; p < arity; p++) if (typeof args[p] === 'number' && (args[p] as number) > 4 && (args[p] as number) <= 1024) args[p] = 1;
        call('random mix', args);
      }
    }
    if (threadsBefore !== undefined) settings.setNumThreads?.(threadsBefore);
  });
  if (threadsBefore !== undefined) settings.setNumThreads?.(threadsBefore);
  return { functions, outcomes, failures, failureCount, totalCalls, elapsedMs: Date.now() - started };
}

/** The outcome table as text, one line per case. */
export function formatOutcomes(report: FuzzReport): string {
  const lines = Object.entries(report.outcomes)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([kase, counts]) => {
      const total = Object.values(counts).reduce((s, c) => s + c, 0);
      const parts = Object.entries(counts)
        .sort(([, a], [, b]) => b - a)
        .map(([label, c]) => `${label} ${c}`);
      return `  ${kase.padEnd(42)} ${String(total).padStart(6)}  ${parts.join(', ')}`;
    });
  return lines.join('\n');
}
