import { PLANAR_SIGNATURES, type PlanarKernels } from '../kernels/planar';
import type { CudaAddon } from '../native';
import { nativeKernels } from '../registry';

/**
 * Planar-flow stacks on the GPU (native/cuda/planar.cu, native/napi/cuda/planar.cc): the bindings its signatures name, called directly. The binding
 * checks every argument (Float32Array only, exact lengths, overlaps as declared).
 */
export function cudaPlanar(cuda: CudaAddon): PlanarKernels {
  return nativeKernels(cuda, PLANAR_SIGNATURES);
}
