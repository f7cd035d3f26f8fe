import type { DenseKernels } from '../kernels/dense';
import type { CudaAddon } from '../native';

type F = Float32Array;

/** Tiled SGEMM on the GPU (native/cuda/dense.cu); the binding checks every argument. */
export function cudaDense(cuda: CudaAddon): DenseKernels {
  return {
    gemm: (transA, transB, m, n, k, alpha, a, b, beta, c) => cuda.denseGemm(transA, transB, m, n, k, alpha, a as F, b as F, beta, c as F),
    forward: (x, weight, bias, y, batch, inDim, outDim) => cuda.denseForward(x as F, weight as F, bias as F | null, y as F, batch, inDim, outDim),
    backward: (x, weight, dy, dx, dWeight, dBias, batch, inDim, outDim, accumulate) =>
      cuda.denseBackward(x as F, weight as F, dy as F, dx as F | null, dWeight as F | null, dBias as F | null, batch, inDim, outDim, accumulate),
  };
}
