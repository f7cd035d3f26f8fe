/**
 * Flow modules and their registration: the names a VAE posterior or a
 * FlowDistribution can use. Registering a family here also puts it under the
 * flow property tests (test/flow-properties.test.ts).
 */
export * from './flow';
export * from './registry';
export { FlowSequence } from './sequence';
export { AutoregressiveFlow, type AutoregressiveFlowOptions } from './autoregressive';
export { IAFFlow, type IAFOptions } from './iaf';
export { MAFFlow, type MAFOptions } from './maf';
export { PlanarFlow, type PlanarFlowOptions } from './planar';
export { RadialFlow, type RadialFlowOptions } from './radial';
export {
  AdditiveCouplingTransform,
  AffineCouplingTransform,
  CouplingFlow,
  CouplingStack,
  alternatingCouplings,
  couplingSplit,
  defaultCouplingHidden,
  type CouplingFlowOptions,
  type CouplingHalf,
  type CouplingStackOptions,
  type CouplingTransform,
  type CouplingTransformFactory,
  type CouplingTransformSpec,
} from './coupling';
export { NICEFlow, type NICEOptions } from './nice';
export { RealNVPFlow, type RealNVPOptions } from './realnvp';
export { GlowFlow, type GlowFlowOptions } from './glow';
export { ScalingFlow, type ScalingFlowOptions } from './scaling';

import type { Activation } from '../backend/kernels/elementwise';
import { checkKnownKeys } from '../validate';
import { IAFFlow } from './iaf';
import { MAFFlow } from './maf';
import { NICEFlow } from './nice';
import { RealNVPFlow } from './realnvp';
import { GlowFlow } from './glow';
import { registerFlow, type FlowFactoryOptions } from './registry';
import { PlanarFlow } from './planar';
import { RadialFlow } from './radial';
import { SylvesterFlow } from './sylvester';

const AUTOREGRESSIVE_KEYS = ['hidden', 'contextDim', 'activation', 'hiddenDegrees'] as const;

function autoregressiveOptions(o: FlowFactoryOptions, defaultContextDim: number) {
  const extra = o.extra as {
    hidden?: number[];
    contextDim?: number;
    activation?: Activation;
    hiddenDegrees?: 'random' | 'cyclic';
    gateBias?: number;
  };
  return {
    dim: o.dim,
    layers: o.layers,
    seed: o.seed,
    backend: o.backend,
    hidden: extra.hidden,
    contextDim: extra.contextDim ?? defaultContextDim,
    activation: extra.activation,
    hiddenDegrees: extra.hiddenDegrees,
    gateBias: extra.gateBias,
  };
}

// IAF as a VAE posterior is conditioned on a context vector from the encoder
// (Kingma et al. 2016); by default that context is as wide as the latent.
registerFlow('iaf', {
  amortizable: false,
  shareable: true,
  create(o) {
    checkKnownKeys(o.extra, 'posterior', [...AUTOREGRESSIVE_KEYS, 'gateBias']);
    return new IAFFlow(autoregressiveOptions(o, o.dim));
  },
});

registerFlow('maf', {
  amortizable: false,
  shareable: true,
  create(o) {
    checkKnownKeys(o.extra, 'posterior', AUTOREGRESSIVE_KEYS);
    const { gateBias: _unused, ...options } = autoregressiveOptions(o, 0);
    return new MAFFlow(options);
  },
});

function stackOptions({ dim, layers, amortized, seed, backend, extra }: FlowFactoryOptions) {
  return { dim, layers, amortized, seed, backend, ...extra };
}
registerFlow('planar', { amortizable: true, shareable: true, create: (o) => new PlanarFlow(stackOptions(o)) });
registerFlow('radial', { amortizable: true, shareable: true, create: (o) => new RadialFlow(stackOptions(o)) });
export { SylvesterFlow, type SylvesterFlowOptions, type SylvesterVariant } from './sylvester';

for (const variant of ['orthogonal', 'householder', 'triangular'] as const) {
  registerFlow(`sylvester-${variant}`, {
    amortizable: true,
    shareable: true,
    create: (o) => new SylvesterFlow({ ...stackOptions(o), variant }),
  });
}

// Glow pieces (Kingma & Dhariwal 2018): shared parameters only, no context.
// A family with `layers: K` builds K copies (seeds seed, seed + 1, …) in a
// FlowSequence; one layer is the module itself.
export { ActNorm, ACTNORM_EPSILON, type ActNormOptions } from './actnorm';
export { ElementwiseAffine, type ElementwiseAffineOptions } from './elementwise-affine';
export { InvertibleLinearLU, type InvertibleLinearLUOptions } from './linear-lu';
export { Permutation, PERMUTATION_ORDERS, type PermutationOptions, type PermutationOrder } from './permutation';

import type { Flow } from './flow';
import { FlowSequence } from './sequence';
import { ActNorm } from './actnorm';
import { ElementwiseAffine } from './elementwise-affine';
import { InvertibleLinearLU } from './linear-lu';
import { Permutation, type PermutationOrder } from './permutation';

function copies(o: FlowFactoryOptions, make: (seed: number) => Flow): Flow {
  if (o.layers === 1) return make(o.seed);
  return new FlowSequence(Array.from({ length: o.layers }, (_, k) => make(o.seed + k)));
}

registerFlow('actnorm', {
  amortizable: false,
  shareable: true,
  create(o) {
    checkKnownKeys(o.extra, 'posterior', []);
    return copies(o, () => new ActNorm({ dim: o.dim, backend: o.backend }));
  },
});

registerFlow('elementwise-affine', {
  amortizable: false,
  shareable: true,
  create(o) {
    checkKnownKeys(o.extra, 'posterior', []);
    return copies(o, () => new ElementwiseAffine({ dim: o.dim, backend: o.backend }));
  },
});

registerFlow('linear-lu', {
  amortizable: false,
  shareable: true,
  create(o) {
    checkKnownKeys(o.extra, 'posterior', []);
    return copies(o, (seed) => new InvertibleLinearLU({ dim: o.dim, seed, backend: o.backend }));
  },
});

registerFlow('permutation', {
  amortizable: false,
  shareable: true,
  create(o) {
    checkKnownKeys(o.extra, 'posterior', ['order']);
    const order = o.extra.order as PermutationOrder | undefined;
    return copies(o, (seed) => new Permutation({ dim: o.dim, order, seed, backend: o.backend }));
  },
});
// Coupling flows: global (shared) parameters only, their conditioners are
// networks of their own. `layers` is the number of coupling layers; options
// in `extra`: hidden, activation, contextDim (default 0: unconditional).
const COUPLING_KEYS = ['hidden', 'activation', 'contextDim'] as const;

function couplingOptions(o: FlowFactoryOptions) {
  checkKnownKeys(o.extra, 'posterior', COUPLING_KEYS);
  const extra = o.extra as { hidden?: number[]; activation?: Activation; contextDim?: number };
  return {
    dim: o.dim,
    layers: o.layers,
    seed: o.seed,
    backend: o.backend,
    hidden: extra.hidden,
    activation: extra.activation,
    contextDim: extra.contextDim,
  };
}

registerFlow('nice', { amortizable: false, shareable: true, create: (o) => new NICEFlow(couplingOptions(o)) });
registerFlow('realnvp', { amortizable: false, shareable: true, create: (o) => new RealNVPFlow(couplingOptions(o)) });
// Glow steps: ActNorm → LU linear map → affine coupling, `layers` steps.
registerFlow('glow', { amortizable: false, shareable: true, create: (o) => new GlowFlow(couplingOptions(o)) });

// Neural spline flows: shared parameters only (conditioner networks of their
// own). `layers` is the number of coupling layers or autoregressive steps;
// options in `extra`: bins (default 8), bound (default 3: splines on [−3, 3),
// identity outside), hidden, activation, contextDim (default 0), and for the
// autoregressive form hiddenDegrees.
export {
  SPLINE_DEFAULT_BINS,
  SPLINE_DEFAULT_BOUND,
  SplineAutoregressiveFlow,
  SplineCouplingFlow,
  SplineCouplingTransform,
  type SplineAutoregressiveOptions,
  type SplineCouplingOptions,
  type SplineOptions,
} from './spline';
import { SplineAutoregressiveFlow, SplineCouplingFlow } from './spline';

const SPLINE_KEYS = ['bins', 'bound', 'hidden', 'activation', 'contextDim'] as const;

function splineOptions(o: FlowFactoryOptions, known: readonly string[]) {
  checkKnownKeys(o.extra, 'posterior', known);
  const extra = o.extra as {
    bins?: number;
    bound?: number;
    hidden?: number[];
    activation?: Activation;
    contextDim?: number;
    hiddenDegrees?: 'random' | 'cyclic';
  };
  return { dim: o.dim, layers: o.layers, seed: o.seed, backend: o.backend, ...extra };
}

registerFlow('spline-coupling', {
  amortizable: false,
  shareable: true,
  create: (o) => new SplineCouplingFlow(splineOptions(o, SPLINE_KEYS)),
});
registerFlow('spline-autoregressive', {
  amortizable: false,
  shareable: true,
  create: (o) => new SplineAutoregressiveFlow(splineOptions(o, [...SPLINE_KEYS, 'hiddenDegrees'])),
});

// Residual flows (Behrmann et al. 2019; Chen et al. 2019): shared parameters
// only. `layers` residual blocks x + g(x); options in `extra`: hidden,
// activation, lipschitz, powerIterations, logDet ('exact' | 'estimator'),
// exactTerms, rouletteP, inverseTolerance, maxInverseIterations.
export {
  RESIDUAL_DEFAULT_LIPSCHITZ,
  RESIDUAL_EXACT_DEFAULT_DIM,
  ResidualBlock,
  defaultResidualHidden,
  type ResidualBlockOptions,
  type ResidualLogDet,
} from './residual';
import { RESIDUAL_FAMILY_OPTIONS, ResidualBlock, type ResidualBlockOptions } from './residual';

registerFlow('residual', {
  amortizable: false,
  shareable: true,
  create(o) {
    checkKnownKeys(o.extra, 'posterior', RESIDUAL_FAMILY_OPTIONS);
    const extra = o.extra as Omit<ResidualBlockOptions, 'dim' | 'seed' | 'backend'>;
    return copies(o, (seed) => new ResidualBlock({ ...extra, dim: o.dim, seed, backend: o.backend }));
  },
});
