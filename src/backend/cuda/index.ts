/**
 * The cuda backend: the kernels of native/cuda/ behind the same contract as
 * cpu, over host Float32Arrays. Each call uploads its inputs into device
 * buffers from a caching allocator, runs its kernels on one stream and
 * downloads its outputs, waiting for the device once, at the end of the call.
 * Arrays therefore do not stay on the device between calls: every call pays
 * its transfers (see native/napi/cuda/call.h).
 *
 * Only the families registered here have CUDA kernels; the registry runs the
 * others on the cpu kernels, which take the same Float32Arrays, and
 * backends() lists them (familyFallbacks('cuda')).
 */
import { assembleBackend, familyFallbacks, registerAll, type Backend } from '../registry';
import type { CudaAddon } from '../native';
import { checkSize } from '../../validate';
import { cudaAdam } from './adam';
import { cudaDense } from './dense';
import { cudaElementwise } from './elementwise';
import { cudaGaussian } from './gaussian';
import { cudaLikelihood } from './likelihood';
import { cudaLstm } from './lstm';
import { cudaPlanar } from './planar';
import { cudaRadial } from './radial';
import { cudaRng } from './rng';

registerAll<CudaAddon>('cuda', {
  dense: cudaDense,
  elementwise: cudaElementwise,
  rng: cudaRng,
  adam: cudaAdam,
  gaussian: cudaGaussian,
  likelihood: cudaLikelihood,
  planar: cudaPlanar,
  radial: cudaRadial,
  lstm: cudaLstm,
});

/** Kernel families of the cuda backend that still run on the cpu (derived from the registrations above). */
export const CUDA_PENDING_FAMILIES = familyFallbacks('cuda').map((f) => f.family);

export function createCudaBackend(cuda: CudaAddon, cpu: Backend): Backend {
  return assembleBackend(
    {
      name: 'cuda',
      dtype: 'float32',
      alloc: (length: number) => new Float32Array(checkSize(length, 'length')),
      from: (data: ArrayLike<number>) => Float32Array.from(data),
    },
    cuda,
    cpu,
  );
}
