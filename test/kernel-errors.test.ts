/**
 * One bad call, one error on every backend: the reference backend refuses
 * bad kernel arguments with the same kind, code and text as the native
 * backends (whose bindings' words are in native/napi/args.h). test/backend.test.ts
 * compares the cuda bindings with the cpu ones (a CUDA build, device or not);
 * this file compares the reference with cpu (and with cuda where a device is
 * present).
 *
 * The one deliberate difference: an argument of the wrong kind is named by
 * what each backend accepts, "Float32Array" natively and "Float32Array or
 * Float64Array" on the reference; the comparison maps the latter to the
 * former and checks it did so only in such messages.
 *
 * Kernels declared by signatures (kernels/signature.ts) are also probed
 * argument by argument from their declaration: every array too long, of the
 * wrong kind and (outputs) sharing memory with each earlier array; every
 * scalar of the wrong kind or out of range.
 */
import { expect, it } from 'vitest';
import { backendByName } from '../src/backend';
import type { Backend } from '../src/backend/backend';
import { MAX_LEARNING_RATE } from '../src/train/adam';
import { ADAM_LIMITS } from '../src/backend/kernels/adam';
import type { ArgSpec, KernelSignature } from '../src/backend/kernels/signature';
import { FAMILY_NAMES, KERNEL_FAMILIES, type KernelFamily } from '../src/backend/registry';
import { describeBackends } from './helpers';

const reference = backendByName('reference');

interface Refusal {
  kind: string;
  code: string | undefined;
  message: string;
}

function refusal(fn: () => unknown): Refusal | null {
  try {
    fn();
  } catch (e) {
    const err = e as Error & { code?: string };
    return { kind: err.constructor.name, code: err.code, message: err.message };
  }
  return null;
}

/** The reference's words for a wrong-kind array, in the native backends' words. */
function asNative(r: Refusal | null): Refusal | null {
  if (!r) return r;
  return { ...r, message: r.message.replace('Expected Float32Array or Float64Array', 'Expected Float32Array') };
}

function call(backend: Backend, family: KernelFamily, kernel: string, args: unknown[]): Refusal | null {
  const kernels = backend[family] as unknown as Record<string, (...a: unknown[]) => unknown>;
  return refusal(() => kernels[kernel](...args));
}

const FILLS: [string, () => unknown][] = [
  ['0', () => 0],
  ['1', () => 1],
  ['-1', () => -1],
  ['1.5', () => 1.5],
  ['NaN', () => NaN],
  ['"1"', () => '1'],
  ['null', () => null],
  ['Float32Array(1)', () => new Float32Array(1)],
  ['Int32Array(2)', () => new Int32Array(2)],
];

/** The sizes a valid call's scalars give (scalars and derived sizes). */
function sizesOf(signature: KernelSignature, scalars: Record<string, number | boolean>): Record<string, number> {
  const numeric: Record<string, number> = {};
  for (const [k, v] of Object.entries(scalars)) numeric[k] = typeof v === 'boolean' ? Number(v) : v;
  return { ...numeric, ...signature.derive?.(numeric, (name) => numeric[name]) };
}

/** A valid call of a signature-declared kernel over Float32Arrays in separate buffers. */
function validCall(signature: KernelSignature, scalars: Record<string, number | boolean>): unknown[] {
  const sizes = sizesOf(signature, scalars);
  return signature.args.map((spec: ArgSpec) => {
    // A permutation: the reversal.
    if (spec.kind === 'permutation') return Uint32Array.from({ length: spec.length(sizes) }, (_, j) => spec.length(sizes) - 1 - j);
    if ('length' in spec) return new Float32Array(spec.length(sizes)).fill(0.25);
    return scalars[spec.name];
  });
}

/** Families that declare their kernels by signatures, with a valid value for each size they read. */
const DECLARED = FAMILY_NAMES.filter((f) => KERNEL_FAMILIES[f].signatures).map((f) => [f, KERNEL_FAMILIES[f].signatures!] as const);
const VALID_SIZES: Record<string, number> = { batch: 3, dim: 4, layers: 2, offset: 1, width: 2, start: 1, bins: 3, bound: 3 };

describeBackends(['cpu', 'cuda'], 'kernel argument errors: reference vs', (native: Backend) => {
  const expectSame = (family: KernelFamily, kernel: string, args: () => unknown[], label: string) => {
    const fromReference = call(reference, family, kernel, args());
    const fromNative = call(native, family, kernel, args());
    expect(fromNative, `${family}.${kernel} ${label}: ${native.name} must refuse it`).not.toBeNull();
    expect(asNative(fromReference), `${family}.${kernel} ${label}`).toEqual(fromNative);
  };

  for (const family of FAMILY_NAMES) {
    it(`${family}: every kernel with too few arguments, and with every argument of one wrong kind or value`, () => {
      for (const [kernel, arity] of Object.entries(KERNEL_FAMILIES[family].kernels as Record<string, number>)) {
        expectSame(family, kernel, () => [], 'with no arguments');
        expectSame(family, kernel, () => new Array(arity - 1).fill(0), `with ${arity - 1} arguments`);
        for (const [label, value] of FILLS) expectSame(family, kernel, () => Array.from({ length: arity }, value), `with every argument ${label}`);
      }
    });
  }

  it('the families declared by signatures: the flow stacks, gaussian, likelihood, glow, coupling, spline', () => {
    expect(DECLARED.map(([f]) => f)).toEqual(expect.arrayContaining(['planar', 'radial', 'gaussian', 'likelihood', 'glow', 'coupling', 'spline']));
  });

  for (const [family, signatures] of DECLARED) {
    for (const [kernel, signature] of Object.entries(signatures) as [string, KernelSignature][]) {
      it(`${family}.${kernel}: each argument wrong in turn, as its signature declares it`, () => {
        // Each flag both ways; a context both present (contextDim 2) and absent (0).
        const flags = signature.args.filter((a) => a.kind === 'bool').map((a) => a.name);
        const hasContextDim = signature.args.some((a) => a.name === 'contextDim');
        const variants = (flags.length > 0 ? [false, true] : [false]).flatMap((flag) =>
          (hasContextDim ? [2, 0] : [2]).map((contextDim) => ({ flag, contextDim })),
        );
        for (const { flag: flagValue, contextDim } of variants) {
          const scalars: Record<string, number | boolean> = {};
          for (const a of signature.args) {
            if (a.kind === 'bool') scalars[a.name] = flagValue;
            else if (a.name === 'contextDim') scalars[a.name] = contextDim;
            else if (!('length' in a)) scalars[a.name] = VALID_SIZES[a.name] ?? 2;
          }
          const good = () => validCall(signature, scalars);
          expect(call(reference, family, kernel, good()), 'the valid call').toBeNull();
          expect(call(native, family, kernel, good()), 'the valid call').toBeNull();
          signature.args.forEach((spec, i) => {
            const mutate = (value: (args: unknown[]) => unknown) => () => {
              const args = good();
              args[i] = value(args);
              return args;
            };
            if (spec.kind === 'permutation') {
              const length = (good()[i] as Uint32Array).length;
              expectSame(
                family,
                kernel,
                mutate(() => new Uint32Array(length + 1)),
                `${spec.name} one too long`,
              );
              expectSame(
                family,
                kernel,
                mutate(() => new Float32Array(length)),
                `${spec.name} a Float32Array`,
              );
              expectSame(
                family,
                kernel,
                mutate(() => new Uint32Array(length)),
                `${spec.name} with a repeated index`,
              );
              expectSame(
                family,
                kernel,
                mutate(() => Uint32Array.from({ length }, (_, j) => j + 1)),
                `${spec.name} with an index out of range`,
              );
            } else if ('length' in spec) {
              const length = (good()[i] as Float32Array).length;
              expectSame(
                family,
                kernel,
                mutate(() => new Float32Array(length + 1)),
                `${spec.name} one too long`,
              );
              expectSame(
                family,
                kernel,
                mutate(() => new Int32Array(length)),
                `${spec.name} an Int32Array`,
              );
              // null: refused alike where the array is required, accepted by both where it is optional.
              const fromNative = call(native, family, kernel, mutate(() => null)());
              expect(asNative(call(reference, family, kernel, mutate(() => null)())), `${family}.${kernel} ${spec.name} null`).toEqual(fromNative);
              const optional = (spec.kind === 'optionalIn' || spec.kind === 'optionalOut') && !spec.requiredWhen?.(sizesOf(signature, scalars));
              expect(fromNative === null, `${family}.${kernel} ${spec.name} null accepted`).toBe(optional);
              if (spec.kind === 'out' || spec.kind === 'optionalOut') {
                for (let j = 0; j < i; j++) {
                  const other = signature.args[j];
                  if (!('length' in other) || other.kind === 'permutation') continue;
                  // The earlier array and the output as views of one buffer, sharing one element.
                  const aliased = () => {
                    const args = good();
                    const earlier = args[j] as Float32Array;
                    const shared = new Float32Array(earlier.length - 1 + length);
                    args[j] = shared.subarray(0, earlier.length);
                    args[i] = shared.subarray(earlier.length - 1);
                    return args;
                  };
                  if (length === 0 || (good()[j] as Float32Array).length === 0) continue;
                  const label = `${spec.name} overlapping ${other.name}`;
                  if (spec.mayAlias.includes(other.name)) {
                    // Declared as allowed: every backend accepts it.
                    expect(call(native, family, kernel, aliased()), `${family}.${kernel} ${label}`).toBeNull();
                    expect(call(reference, family, kernel, aliased()), `${family}.${kernel} ${label}`).toBeNull();
                  } else {
                    expectSame(family, kernel, aliased, label);
                  }
                }
              }
            } else {
              for (const [label, value] of [
                ['-1', -1],
                ['0.5', 0.5],
                ['NaN', NaN],
                ['2^40', 2 ** 40],
                ['"2"', '2'],
                ['1 (for a flag)', 1],
              ] as [string, unknown][]) {
                const r = call(native, family, kernel, mutate(() => value)());
                if (r)
                  expectSame(
                    family,
                    kernel,
                    mutate(() => value),
                    `${spec.name} = ${label}`,
                  );
                else expect(call(reference, family, kernel, mutate(() => value)()), `${spec.name} = ${label} accepted natively`).toBeNull();
              }
            }
          });
        }
      });
    }
  }

  it(`adam: the learning-rate bound the training API checks (${MAX_LEARNING_RATE}) is the one every backend's kernel checks`, () => {
    expect(ADAM_LIMITS.lr.hi).toBe(MAX_LEARNING_RATE);
    const n = 4;
    const options = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: false, step: 1, maxGradNorm: 0 };
    const args = (lr: number) => [new Float32Array(n), new Float32Array(n), new Float32Array(n), new Float32Array(n), n, { ...options, lr }];
    for (const lr of [0, -1, MAX_LEARNING_RATE * 1.01, Infinity, NaN]) {
      const r = call(native, 'adam', 'step', args(lr));
      expect(r, `lr = ${lr}`).toEqual({
        kind: 'RangeError',
        code: 'ERR_ARG',
        message: `Expected number in (0, ${MAX_LEARNING_RATE}] for "lr" but received ${lr} (number)`,
      });
      expect(asNative(call(reference, 'adam', 'step', args(lr))), `lr = ${lr}`).toEqual(r);
    }
    for (const lr of [1e-6, MAX_LEARNING_RATE]) {
      expect(call(native, 'adam', 'step', args(lr)), `lr = ${lr}`).toBeNull();
      expect(call(reference, 'adam', 'step', args(lr)), `lr = ${lr}`).toBeNull();
    }
  });
});
