import type { PlanarKernels } from '../kernels/planar';
import type { CudaAddon } from '../native';

type F = Float32Array;

/** Planar-flow stacks on the GPU (native/cuda/planar.cu); the binding checks every size, length and overlap. */
export function cudaPlanar(cuda: CudaAddon): PlanarKernels {
  return {
    forward: (x, params, y, logDet, layerLogDet, stash, batch, dim, layers, amortized) =>
      cuda.planarForward(x as F, params as F, y as F, logDet as F, layerLogDet as F | null, stash as F, batch, dim, layers, amortized),
    backward: (y, stash, params, dy, dLogDet, dx, dParams, batch, dim, layers, amortized) =>
      cuda.planarBackward(y as F, stash as F, params as F, dy as F, dLogDet as F, dx as F, dParams as F, batch, dim, layers, amortized),
    inverse: (y, params, x, logDet, batch, dim, layers, amortized) =>
      cuda.planarInverse(y as F, params as F, x as F, logDet as F, batch, dim, layers, amortized),
  };
}
