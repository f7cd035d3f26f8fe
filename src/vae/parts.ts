/** The VAE's parts, for users composing or writing their own (see README, "The VAE API"). */
export { GroupedLikelihood, LIKELIHOOD_KINDS, type Likelihood, type LikelihoodGroup, type LikelihoodKind } from './likelihood';
export {
  DiagonalPosterior,
  FlowPosterior,
  FullCovariancePosterior,
  type FlowPosteriorSpec,
  type Posterior,
  type PosteriorHeads,
  type PosteriorSpec,
} from './posterior';
export { FlowPrior, LearnedGaussianPrior, MixturePrior, PRIOR_KINDS, StandardNormalPrior, type Prior, type PriorKind, type PriorSpec } from './prior';
export { ElboObjective, IwaeObjective, type Objective, type ObjectiveSpec } from './objective';
