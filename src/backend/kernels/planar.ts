import { flowStackSignatures, type FlowStackKernels } from './flow-stack';

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
/** The planar calls, declared once: TypeScript types and argument checks follow from them. */
export const PLANAR_SIGNATURES = flowStackSignatures('planar', planarParamSize, 'y');

export type PlanarKernels = FlowStackKernels<typeof PLANAR_SIGNATURES>;

/** Parameters per planar layer: u (dim), w (dim), b (1). */
export function planarParamSize(dim: number): number {
  return 2 * dim + 1;
}
