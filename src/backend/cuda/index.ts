/**
 * The cuda backend: the kernels of native/cuda/ behind the same contract as
 * cpu, over host Float32Arrays. Each call uploads its inputs into device
 * buffers from a caching allocator, runs its kernels on one stream and
 * downloads its outputs, waiting for the device once, at the end of the call.
 * Arrays therefore do not stay on the device between calls: every call pays
 * its transfers (see native/napi/cuda/call.h).
 *
 * Families without CUDA kernels yet run on the cpu kernels, which take the
 * same Float32Arrays: CUDA_PENDING_FAMILIES lists them.
 */
import type { Backend } from '../backend';
import type { CudaAddon } from '../native';
import { checkSize } from '../../validate';
import { cudaAdam } from './adam';
import { cudaDense } from './dense';
import { cudaElementwise } from './elementwise';
import { cudaGaussian } from './gaussian';
import { cudaLikelihood } from './likelihood';
import { cudaPlanar } from './planar';
import { cudaRadial } from './radial';
import { cudaRng } from './rng';

/** Kernel families of the cuda backend that still run on the cpu. */
export const CUDA_PENDING_FAMILIES = ['autoregressive', 'sylvester', 'coupling', 'glow', 'spline', 'residual'] as const;

export function createCudaBackend(cuda: CudaAddon, cpu: Backend): Backend {
  return {
    name: 'cuda',
    dtype: 'float32',
    alloc: (length: number) => new Float32Array(checkSize(length, 'length')),
    from: (data: ArrayLike<number>) => Float32Array.from(data),
    dense: cudaDense(cuda),
    elementwise: cudaElementwise(cuda),
    rng: cudaRng(cuda),
    adam: cudaAdam(cuda),
    gaussian: cudaGaussian(cuda),
    likelihood: cudaLikelihood(cuda),
    planar: cudaPlanar(cuda),
    radial: cudaRadial(cuda),
    // CUDA_PENDING_FAMILIES:
    autoregressive: cpu.autoregressive,
    sylvester: cpu.sylvester,
    coupling: cpu.coupling,
    glow: cpu.glow,
    spline: cpu.spline,
    residual: cpu.residual,
  };
}
