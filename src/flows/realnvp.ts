/**
 * RealNVP (Dinh et al. 2017) on vectors: K affine coupling layers,
 *
 *   s = scale ⊙ tanh(ŝ(x_a, h)),  y_b = x_b ⊙ exp(s) + t(x_a, h),  log|det| = Σ s,
 *
 * alternating which half is transformed (see coupling.ts), each with its own
 * MLP conditioner started at zero so the stack starts at the identity.
 * Parameters: `<k>.conditioner.<i>.weight|bias` and `<k>.scale`.
 */
import { AffineCouplingTransform, CouplingStack, alternatingCouplings, type CouplingStackOptions } from './coupling';

export type RealNVPOptions = CouplingStackOptions;

export class RealNVPFlow extends CouplingStack {
  constructor(options: RealNVPOptions) {
    super(
      'realnvp',
      alternatingCouplings(options, (spec) => new AffineCouplingTransform(spec)),
    );
  }
}
