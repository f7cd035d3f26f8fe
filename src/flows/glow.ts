/**
 * Glow steps on vectors (Kingma & Dhariwal 2018): K steps of
 *
 *   ActNorm → invertible linear map in LU form → affine coupling,
 *
 * the coupling alternating which half it transforms. ActNorm initializes
 * from the first training batch; the LU map starts as a seeded random
 * rotation and the coupling at the identity. Parameters are named
 * `<3k>.…` (ActNorm), `<3k+1>.…` (LU map) and `<3k+2>.…` (coupling).
 */
import { ActNorm } from './actnorm';
import { AffineCouplingTransform, CouplingFlow, CouplingStack, type CouplingStackOptions } from './coupling';
import type { Flow } from './flow';
import { InvertibleLinearLU } from './linear-lu';
import { checkPositiveInt, checkSize } from '../validate';

export type GlowFlowOptions = CouplingStackOptions;

export class GlowFlow extends CouplingStack {
  constructor(options: GlowFlowOptions) {
    const layers = checkPositiveInt(options.layers ?? 2, 'layers');
    const seed = checkSize(options.seed ?? 0, 'seed');
    const steps: Flow[] = [];
    for (let k = 0; k < layers; k++) {
      steps.push(new ActNorm({ dim: options.dim, backend: options.backend }));
      steps.push(new InvertibleLinearLU({ dim: options.dim, seed: seed + 7907 * k, backend: options.backend }));
      steps.push(
        new CouplingFlow({
          dim: options.dim,
          transform: (spec) => new AffineCouplingTransform(spec),
          transformed: k % 2 === 0 ? 'second' : 'first',
          hidden: options.hidden,
          activation: options.activation,
          contextDim: options.contextDim,
          seed: seed + 7907 * k + 1,
          backend: options.backend,
        }),
      );
    }
    super('glow', steps);
  }
}
