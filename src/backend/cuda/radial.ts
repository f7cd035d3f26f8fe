import type { RadialKernels } from '../kernels/radial';
import type { CudaAddon } from '../native';

type F = Float32Array;

/** Radial-flow stacks on the GPU (native/cuda/radial.cu); the binding checks every size, length and overlap. */
export function cudaRadial(cuda: CudaAddon): RadialKernels {
  return {
    forward: (x, params, y, logDet, layerLogDet, stash, batch, dim, layers, amortized) =>
      cuda.radialForward(x as F, params as F, y as F, logDet as F, layerLogDet as F | null, stash as F, batch, dim, layers, amortized),
    backward: (x, stash, params, dy, dLogDet, dx, dParams, batch, dim, layers, amortized) =>
      cuda.radialBackward(x as F, stash as F, params as F, dy as F, dLogDet as F, dx as F, dParams as F, batch, dim, layers, amortized),
    inverse: (y, params, x, logDet, batch, dim, layers, amortized) =>
      cuda.radialInverse(y as F, params as F, x as F, logDet as F, batch, dim, layers, amortized),
  };
}
