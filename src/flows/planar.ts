/**
 * Planar flow (Rezende & Mohamed 2015): K layers f(z) = z + û tanh(wᵀz + b),
 * with the invertibility reparametrization û = u + (m(wᵀu) − wᵀu) w/‖w‖²,
 * m(x) = −1 + softplus(x), run as one kernel call per forward/backward
 * (see src/backend/kernels/planar.ts for the exact mathematics).
 *
 * Shared parameters `u [K, dim]`, `w [K, dim]`, `b [K]` are initialized
 * uniform on ±1/√dim from the seeded stream (identical on every backend).
 * Amortized: `options.params [batch, K·(2·dim + 1)]`, each row
 * `u (K·dim) | w (K·dim) | b (K)`.
 *
 * Backward reads the module's own output from the last forward, so the
 * returned `y` must not be modified before backward.
 */
import type { Backend } from '../backend/backend';
import { FlowStack, initUniformScaled, type FlowStackOptions, type StackFamily } from './stack';

export type PlanarFlowOptions = FlowStackOptions;

const PLANAR: StackFamily = {
  className: 'PlanarFlow',
  kind: 'planar',
  parameters: [
    { name: 'u', perLayer: 'dim' },
    { name: 'w', perLayer: 'dim' },
    { name: 'b', perLayer: 1 },
  ],
  saved: 'y',
  kernels: (backend: Backend) => backend.planar,
  initialize: initUniformScaled,
};

export class PlanarFlow extends FlowStack {
  constructor(options: PlanarFlowOptions) {
    super(PLANAR, options);
  }
}
