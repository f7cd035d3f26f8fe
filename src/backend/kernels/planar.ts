import type { FloatArray } from '../types';

/**
 * Planar flows (Rezende & Mohamed 2015): a stack of K layers run as one
 * kernel call over a batch `[batch, dim]`,
 *
 *     f_k(z) = z + û_k tanh(w_kᵀz + b_k)
 *     û = u + (m(wᵀu) − wᵀu) w / ‖w‖²,   m(x) = −1 + softplus(x)
 *     log|det J_k| = log(1 + (1 − tanh²(w_kᵀz + b_k)) · m(w_kᵀu_k))      (wᵀû = m(wᵀu) > −1)
 *
 * so every layer is invertible whatever the raw u. When ‖w_k‖ = 0 the
 * reparametrization is undefined (and unnecessary): the layer is then
 * z + u_k tanh(b_k) with log-det 0, and the gradient reaching w_k is that of
 * the pre-activation only.
 *
 * Parameter layout, P = 2·dim + 1 per layer:
 * - shared: `params [K·P]` = `u [K, dim] | w [K, dim] | b [K]` (the named
 *   parameters u, w, b concatenated);
 * - amortized: `params [batch, K·P]`, each row laid out like the shared array
 *   (all K u's, then all K w's, then all K b's).
 *
 * `stash [batch, K]` carries the pre-activations `w_kᵀz_k + b_k` from forward
 * to backward; backward rebuilds each layer's input from the output `y`.
 * Outputs must not share memory with any other argument.
 */
export interface PlanarKernels {
  /**
   * Writes `y [batch, dim]`, `logDet [batch]` (summed over layers),
   * `layerLogDet [batch, K]` when non-null, and `stash`. Returns the number
   * of rows whose y or log-det is not finite (0 when all are).
   */
  forward(
    x: FloatArray,
    params: FloatArray,
    y: FloatArray,
    logDet: FloatArray,
    layerLogDet: FloatArray | null,
    stash: FloatArray,
    batch: number,
    dim: number,
    layers: number,
    amortized: boolean,
  ): number;

  /**
   * Backpropagates through the forward that produced `y` and `stash`, given
   * `dy = ∂L/∂y` and `dLogDet = ∂L/∂logDet`: writes `dx [batch, dim]`. Shared:
   * `dParams [K·P]` is accumulated into (+=, summed over the batch).
   * Amortized: `dParams [batch, K·P]` is overwritten. Returns the number of
   * rows whose dx (or amortized dParams row) is not finite.
   */
  backward(
    y: FloatArray,
    stash: FloatArray,
    params: FloatArray,
    dy: FloatArray,
    dLogDet: FloatArray,
    dx: FloatArray,
    dParams: FloatArray,
    batch: number,
    dim: number,
    layers: number,
    amortized: boolean,
  ): number;

  /**
   * Inverts the stack: `x [batch, dim]` from `y`, `logDet [batch]` =
   * log|det ∂x/∂y|. Each layer solves α + (wᵀû)·tanh(α + b) = wᵀy (monotone
   * in α = wᵀz) by safeguarded Newton steps in float64, to a residual below
   * 1e-6·(1 + |wᵀy| + |wᵀû|) (in practice near float64 precision). Rows that
   * do not converge (or are not finite) get a NaN log-det; returns their count.
   */
  inverse(
    y: FloatArray,
    params: FloatArray,
    x: FloatArray,
    logDet: FloatArray,
    batch: number,
    dim: number,
    layers: number,
    amortized: boolean,
  ): number;
}

/** Parameters per planar layer: u (dim), w (dim), b (1). */
export function planarParamSize(dim: number): number {
  return 2 * dim + 1;
}
