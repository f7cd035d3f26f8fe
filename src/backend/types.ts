/** Host arrays the kernels read and write: float64 on `reference`, float32 on `cpu`. */
export type FloatArray = Float32Array | Float64Array;

export type BackendName = 'reference' | 'cpu' | 'cuda';

/** Every backend's name, in the order `backends()` lists them. */
export const BACKEND_NAMES: readonly BackendName[] = ['reference', 'cpu', 'cuda'];

/** Most native threads the cpu backend's pool takes (setNumThreads, FLOWVAE_NUM_THREADS, --threads). */
export const MAX_THREADS = 1024;

export type DType = 'float32' | 'float64';
