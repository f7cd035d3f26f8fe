/**
 * The backend contract: one object of kernels per family, one method per
 * kernel. The model layer talks only to this interface and never branches on
 * which backend it has. The families and the Backend type are declared in
 * registry.ts (the one list of families); each family's kernels in
 * kernels/<family>.ts. Implementations mirror each other file for file:
 * `src/backend/reference/<family>.ts` (pure TypeScript, float64, the oracle),
 * `src/backend/cpu/<family>.ts` (native addon, float32, zero copy) and
 * `src/backend/cuda/<family>.ts`.
 *
 * Kernels write into caller-provided output arrays; sizes are passed
 * explicitly and every array length is checked against them.
 */
export type { Backend, BackendCore, KernelFamilies, KernelFamily } from './registry';
export type { BackendName, DType, FloatArray } from './types';
