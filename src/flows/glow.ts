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
import { AffineCouplingTransform, CouplingStack, alternatingCouplings, type CouplingStackOptions } from './coupling';
import type { Flow } from './flow';
import { InvertibleLinearLU } from './linear-lu';
import { checkSize } from '../validate';

export type GlowFlowOptions = CouplingStackOptions;

export class GlowFlow extends CouplingStack {
  constructor(options: GlowFlowOptions) {
    const seed = checkSize(options?.seed ?? 0, 'seed');
    // The couplings of a RealNVP stack (seeds seed + 1 + 7907·k), each preceded by its ActNorm and LU map (seed + 7907·k).
    const couplings = alternatingCouplings({ ...options, seed: seed + 1 }, (spec) => new AffineCouplingTransform(spec));
    const steps: Flow[] = couplings.flatMap((coupling, k) => [
      new ActNorm({ dim: options.dim, backend: options.backend }),
      new InvertibleLinearLU({ dim: options.dim, seed: seed + 7907 * k, backend: options.backend }),
      coupling,
    ]);
    super('glow', steps);
  }
}
