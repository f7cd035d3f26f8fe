/**
 * What the Glow pieces (ActNorm, ElementwiseAffine, InvertibleLinearLU,
 * Permutation) share: option and call checks for a flow with shared
 * parameters and no context, seeded permutations, and permutations kept as
 * float buffers (so checkpoints store them beside the parameters) but handed
 * to the kernels as validated indices.
 */
import type { Backend } from '../backend/backend';
import type { BackendName, FloatArray } from '../backend/types';
import { expected, rangeError, typeError } from '../errors';
import { checkArray, checkKnownKeys, checkPositiveInt } from '../validate';
import type { FlowCallOptions } from './flow';
import { checkBackend, checkSeed } from './stack';

/** The options every Glow piece takes. */
export interface GlowPieceOptions {
  /** Dimension of x. */
  dim: number;
  /** Backend to run on (default: the current backend). */
  backend?: Backend | BackendName;
}

/** Checks an options object; returns the resolved dim and backend. */
export function resolvePieceOptions(options: unknown, known: readonly string[], family: string): { dim: number; backend: Backend; seed: number } {
  if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
  checkKnownKeys(options, 'options', known);
  const o = options as { dim?: unknown; backend?: unknown; seed?: unknown };
  const dim = checkPositiveInt(o.dim, 'dim');
  const seed = o.seed === undefined ? 0 : checkSeed(o.seed);
  const backend = checkBackend(o.backend, family);
  return { dim, backend, seed };
}

/**
 * Checks the arguments of a forward/inverse call of an unconditional flow
 * with shared parameters: batch, the `[batch, dim]` input, and options that
 * carry neither params nor context.
 */
export function checkUnconditionalCall(
  kind: string,
  backend: Backend,
  input: FloatArray,
  inputName: string,
  batch: number,
  dim: number,
  options: FlowCallOptions | undefined,
): void {
  checkPositiveInt(batch, 'batch');
  checkArray(input, inputName, batch * dim, backend.dtype);
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
  checkKnownKeys(options, 'options', ['params', 'context', 'training']);
  if (options.context !== undefined) {
    throw rangeError(expected(`no context (the ${kind} flow is not conditional)`, 'context', options.context));
  }
  if (options.params !== undefined) {
    throw rangeError(expected(`no params (the ${kind} flow has shared parameters)`, 'params', options.params));
  }
}

/** Checks the arguments of backward: a forward ran, and the gradients have its shapes. */
export function checkBackwardCall(className: string, backend: Backend, batch: number, dim: number, gradOutput: FloatArray, gradLogDet: FloatArray): void {
  if (batch === 0) throw rangeError(`${className}.backward called before forward`);
  checkArray(gradOutput, 'gradOutput', batch * dim, backend.dtype);
  checkArray(gradLogDet, 'gradLogDet', batch, backend.dtype);
}

/**
 * A permutation of 0..dim−1 drawn by Fisher–Yates from the uniform stream
 * (seed, offset 0). The uniforms are float32 values on every backend, so the
 * permutation is the same on every backend.
 */
export function seededPermutation(backend: Backend, dim: number, seed: number): Uint32Array {
  const perm = new Uint32Array(dim).map((_, i) => i);
  const u = backend.alloc(dim);
  backend.rng.uniform(seed, 0, u);
  for (let i = dim - 1; i > 0; i--) {
    const j = Math.min(i, Math.floor(u[i] * (i + 1)));
    const t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  return perm;
}

/**
 * Copies a permutation stored as floats (a buffer, possibly loaded from a
 * checkpoint) into `out` as indices, refusing anything but each of
 * 0..dim−1 exactly once. O(dim), run on every call.
 */
export function readPermutation(values: FloatArray, out: Uint32Array, name: string): Uint32Array {
  const dim = out.length;
  const seen = new Uint8Array(dim);
  for (let j = 0; j < dim; j++) {
    const v = values[j];
    if (!(Number.isInteger(v) && v >= 0 && v < dim) || seen[v]) {
      throw rangeError(expected(`permutation of 0..${dim - 1} (element ${j} is ${v})`, name, values));
    }
    seen[v] = 1;
    out[j] = v;
  }
  return out;
}
