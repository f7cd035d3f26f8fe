/**
 * cpu dense kernels: a thin layer over the native addon (native/napi/dense.cc),
 * which checks every argument (Float32Array only, exact lengths) before the
 * blocked SGEMM in native/cpu/dense.cc runs on the caller's memory.
 */
import type { DenseKernels } from '../kernels/dense';
import type { NativeAddon } from '../native';

export function cpuDense(addon: NativeAddon): DenseKernels {
  // The casts only satisfy the type checker: the binding rejects anything
  // but a Float32Array with a TypeError naming the argument.
  return {
    gemm(transA, transB, m, n, k, alpha, a, b, beta, c) {
      addon.denseGemm(transA, transB, m, n, k, alpha, a as Float32Array, b as Float32Array, beta, c as Float32Array);
    },
    forward(x, weight, bias, y, batch, inDim, outDim) {
      addon.denseForward(x as Float32Array, weight as Float32Array, bias as Float32Array | null, y as Float32Array, batch, inDim, outDim);
    },
    backward(x, weight, dy, dx, dWeight, dBias, batch, inDim, outDim, accumulate) {
      addon.denseBackward(
        x as Float32Array,
        weight as Float32Array,
        dy as Float32Array,
        dx as Float32Array | null,
        dWeight as Float32Array | null,
        dBias as Float32Array | null,
        batch,
        inDim,
        outDim,
        accumulate,
      );
    },
  };
}
