/**
 * Distributions: the diagonal Gaussian base, flows as distributions
 * (sampling, log-densities, maximum likelihood and reverse-KL fitting) and
 * the built-in 2-D targets.
 */
export { DiagonalGaussian, type DiagonalGaussianOptions } from './diagonal-gaussian';
export { MixtureBase } from './mixture-base';
export {
  FlowDistribution,
  NORMALIZING_FAMILIES,
  defaultDirection,
  reverseKL,
  type CreateFlowDistributionOptions,
  type FlowDirection,
  type FlowDistributionOptions,
  type FlowDistributionSpec,
  type LogDensityFunction,
  type ReverseKLEstimate,
  type ReverseKLOptions,
} from './flow-distribution';
export { LOGZ_GRID_STEP, TARGET_2D_NAMES, Target2D, target2d, type Bounds2D, type Target2DName, type TargetDensity } from './targets2d';
