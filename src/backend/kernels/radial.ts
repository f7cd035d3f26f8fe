import { flowStackSignatures, type FlowStackKernels } from './flow-stack';

/**
 * Radial flows (Rezende & Mohamed 2015): a stack of K layers run as one
 * kernel call over a batch `[batch, dim]`,
 *
 *     f_k(z) = z + β h(α, r)(z − z0),   r = ‖z − z0‖,   h = 1/(α + r)
 *     α = softplus(α̃),   β = −α + softplus(β̃)          (so 1 + βh > 0: invertible)
 *     log|det J_k| = (D − 1) log(1 + βh) + log(1 + βh + βh'r),   h' = −1/(α + r)²
 *
 * evaluated as (D − 1) log((r + softplus(β̃))/(α + r)) + log((r(2α + r) + α·softplus(β̃))/(α + r)²),
 * which has no cancellation as β → −α.
 *
 * Parameter layout, P = dim + 2 per layer (α̃, β̃ are the raw, unconstrained values):
 * - shared: `params [K·P]` = `z0 [K, dim] | α̃ [K] | β̃ [K]`;
 * - amortized: `params [batch, K·P]`, each row laid out like the shared array.
 *
 * `stash [batch, K]` carries the radius r_k of every layer from forward to
 * backward, which rebuilds the layer inputs from `x`. Outputs must not share
 * memory with any other argument.
 */
/** The radial calls, declared once: TypeScript types and argument checks follow from them. */
export const RADIAL_SIGNATURES = flowStackSignatures('radial', radialParamSize, 'x');

export type RadialKernels = FlowStackKernels<typeof RADIAL_SIGNATURES>;

/** Parameters per radial layer: z0 (dim), α̃ (1), β̃ (1). */
export function radialParamSize(dim: number): number {
  return dim + 2;
}
