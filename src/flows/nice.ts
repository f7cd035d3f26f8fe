/**
 * NICE (Dinh et al. 2015): K additive coupling layers,
 *
 *   y_b = x_b + m(x_a, h),  log|det| = 0,
 *
 * alternating which half is transformed (see coupling.ts), followed by the
 * diagonal scaling layer y = x ⊙ exp(logScale) (scaling.ts), which carries
 * the whole log-det. Parameters: `<k>.conditioner.<i>.weight|bias` for
 * k < K and `<K>.logScale`.
 */
import { AdditiveCouplingTransform, CouplingStack, alternatingCouplings, type CouplingStackOptions } from './coupling';
import { ScalingFlow } from './scaling';

export type NICEOptions = CouplingStackOptions;

export class NICEFlow extends CouplingStack {
  constructor(options: NICEOptions) {
    const couplings = alternatingCouplings(options, (spec) => new AdditiveCouplingTransform(spec));
    super('nice', [...couplings, new ScalingFlow({ dim: couplings[0].dim, backend: couplings[0].backend })]);
  }
}
