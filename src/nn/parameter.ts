/**
 * Named parameters: what optimizers and checkpoints see. A parameter's value
 * and gradient are arrays of the owning module's backend, row-major, with
 * PyTorch's layouts (dense weights `[out, in]`).
 */
import type { Backend } from '../backend/backend';
import type { FloatArray } from '../backend/types';

export interface Parameter {
  /** Dotted name, e.g. `encoder.0.weight`, `flow.3.u`. */
  readonly name: string;
  readonly shape: readonly number[];
  readonly value: FloatArray;
  /** Gradient of the loss; backward passes accumulate into it. */
  readonly grad: FloatArray;
}

export function createParameter(backend: Backend, name: string, shape: readonly number[]): Parameter {
  const size = shape.reduce((a, b) => a * b, 1);
  return { name, shape: [...shape], value: backend.alloc(size), grad: backend.alloc(size) };
}

/**
 * A named tensor saved with a model but not trained (PyTorch's buffers): e.g.
 * ActNorm's `initialized` flag or a flow's fixed permutation. Optimizers never
 * see it; checkpoints store it beside the parameters.
 */
export interface NamedBuffer {
  readonly name: string;
  readonly shape: readonly number[];
  readonly value: FloatArray;
}

/** The same buffers (same arrays) under `prefix.name`. */
export function prefixBuffers(prefix: string, buffers: readonly NamedBuffer[]): NamedBuffer[] {
  return buffers.map((b) => ({ name: `${prefix}.${b.name}`, shape: b.shape, value: b.value }));
}

/** The same parameters (same arrays) under `prefix.name`. */
export function prefixParameters(prefix: string, params: readonly Parameter[]): Parameter[] {
  return params.map((p) => ({ name: `${prefix}.${p.name}`, shape: p.shape, value: p.value, grad: p.grad }));
}

export function zeroGrad(params: readonly Parameter[]): void {
  for (const p of params) p.grad.fill(0);
}

/** Number of scalars in a list of parameters. */
export function countParameters(params: readonly Parameter[]): number {
  return params.reduce((n, p) => n + p.value.length, 0);
}

/**
 * Fills `target` with `mean + std · N(0, 1)` drawn from the counter-based
 * stream (seed, offset), so initialization is identical on every backend.
 */
export function initNormal(backend: Backend, target: FloatArray, seed: number, offset: number, std: number, mean = 0): void {
  backend.rng.normal(seed, offset, target);
  for (let i = 0; i < target.length; i++) target[i] = mean + std * target[i];
}

/** Fills `target` with uniforms on [lo, hi) from the stream (seed, offset). */
export function initUniform(backend: Backend, target: FloatArray, seed: number, offset: number, lo: number, hi: number): void {
  backend.rng.uniform(seed, offset, target);
  for (let i = 0; i < target.length; i++) target[i] = lo + (hi - lo) * target[i];
}
