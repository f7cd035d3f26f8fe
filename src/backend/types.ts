/** Host arrays the kernels read and write: float64 on `reference`, float32 on `cpu`. */
export type FloatArray = Float32Array | Float64Array;

export type BackendName = 'reference' | 'cpu' | 'cuda';

export type DType = 'float32' | 'float64';
