import { RADIAL_SIGNATURES, type RadialKernels } from '../kernels/radial';
import type { CudaAddon } from '../native';
import { nativeKernels } from '../registry';

/**
 * Radial-flow stacks on the GPU (native/cuda/radial.cu, native/napi/cuda/radial.cc): the bindings its signatures name, called directly. The binding
 * checks every argument (Float32Array only, exact lengths, overlaps as declared).
 */
export function cudaRadial(cuda: CudaAddon): RadialKernels {
  return nativeKernels(cuda, RADIAL_SIGNATURES);
}
