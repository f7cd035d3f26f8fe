/**
 * flowvae: variational autoencoders and normalizing flows for TypeScript/Node.
 */
export { backends, backendByName, getBackend, getNumThreads, resolveBackend, setNumThreads, useBackend } from './backend';
export type { Backend, BackendInfo, BackendName, DType, FloatArray } from './backend';
export { FlowVaeError, type ErrorCode } from './errors';
export { createParameter, prefixParameters, type NamedBuffer, type Parameter } from './nn/parameter';
export { Linear } from './nn/linear';
export { MLP } from './nn/mlp';
export { MADE, MaskedLinear, type MADEOptions, type MadeOrdering } from './nn/made';
export * from './flows';
export { VAE } from './vae/vae';
export type { CustomPart, ElboTerms, KlEstimate, LoadOptions, NetworkOptions, VAEConfig, VAEOptions, VAEParts } from './vae/vae';
export * from './vae/parts';
export type { Network, NetworkCallOptions } from './nn/network';
export { Lstm, type LstmOptions } from './nn/lstm';
export { LstmDecoder, LstmEncoder, type LstmDecoderOptions, type LstmEncoderOptions } from './nn/sequence';
export { Adam, type AdamOptions } from './train/adam';
export type { BatchProgress, EpochMetrics, FitOptions, FitResult, LrSchedule, TrainingState } from './train/fit';
export * from './distributions';
export type {
  DensityEpochMetrics,
  DensityFitOptions,
  DistributionBatchProgress,
  DistributionFitBaseOptions,
  DistributionFitResult,
  DistributionTrainingState,
  ReverseKLFitOptions,
} from './train/fit-distribution';
export * from './data';
export { decodeSafetensors, encodeSafetensors, loadSafetensors, saveSafetensors, saveSafetensorsAsync } from './io/safetensors';
export type { SafetensorsContents, SafetensorsDType, SafetensorsTensor } from './io/safetensors';
