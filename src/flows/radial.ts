/**
 * Radial flow (Rezende & Mohamed 2015): K layers
 * f(z) = z + β/(α + ‖z − z0‖) · (z − z0) with α = softplus(α̃) and
 * β = −α + softplus(β̃) (always invertible), run as one kernel call per
 * forward/backward (see src/backend/kernels/radial.ts for the exact
 * mathematics).
 *
 * Shared parameters `z0 [K, dim]`, `alpha [K]`, `beta [K]` hold the raw
 * values z0, α̃, β̃, initialized uniform on ±1/√dim from the seeded stream
 * (identical on every backend). Amortized: `options.params
 * [batch, K·(dim + 2)]`, each row `z0 (K·dim) | α̃ (K) | β̃ (K)`.
 *
 * Backward reads the input of the last forward, so `x` must not be modified
 * before backward.
 */
import type { Backend } from '../backend/backend';
import { FlowStack, initUniformScaled, type FlowStackOptions, type StackFamily } from './stack';

export type RadialFlowOptions = FlowStackOptions;

const RADIAL: StackFamily = {
  className: 'RadialFlow',
  kind: 'radial',
  parameters: [
    { name: 'z0', perLayer: 'dim' },
    { name: 'alpha', perLayer: 1 },
    { name: 'beta', perLayer: 1 },
  ],
  saved: 'x',
  kernels: (backend: Backend) => backend.radial,
  initialize: initUniformScaled,
};

export class RadialFlow extends FlowStack {
  constructor(options: RadialFlowOptions) {
    super(RADIAL, options);
  }
}
