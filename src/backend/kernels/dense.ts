import type { FloatArray } from '../types';

/**
 * Dense layers, `y = x Wᵀ + b` with W stored `[out, in]` as in PyTorch
 * `nn.Linear`. All matrices are row-major.
 */
export interface DenseKernels {
  /**
   * General matrix product `C = alpha · op(A) · op(B) + beta · C`, row-major.
   * op(A) is `[m, k]` (A stored `[m, k]`, or `[k, m]` when `transA`);
   * op(B) is `[k, n]` (B stored `[k, n]`, or `[n, k]` when `transB`); C is `[m, n]`.
   * When beta is 0, C is overwritten (NaN in C does not propagate).
   */
  gemm(transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number, a: FloatArray, b: FloatArray, beta: number, c: FloatArray): void;

  /** `y[batch, outDim] = x[batch, inDim] · weight[outDim, inDim]ᵀ + bias[outDim]` (bias may be null). */
  forward(x: FloatArray, weight: FloatArray, bias: FloatArray | null, y: FloatArray, batch: number, inDim: number, outDim: number): void;

  /**
   * Given `dy = ∂L/∂y`: `dx = dy · W` (overwritten), `dWeight = dyᵀ · x` and
   * `dBias = Σ_rows dy`, each skipped when null. With `accumulate` the weight
   * and bias gradients are added to what the buffers hold; otherwise overwritten.
   */
  backward(
    x: FloatArray,
    weight: FloatArray,
    dy: FloatArray,
    dx: FloatArray | null,
    dWeight: FloatArray | null,
    dBias: FloatArray | null,
    batch: number,
    inDim: number,
    outDim: number,
    accumulate: boolean,
  ): void;
}
