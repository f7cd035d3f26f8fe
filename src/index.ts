/**
 * flowvae: variational autoencoders and normalizing flows for TypeScript/Node.
 */
export { backends, backendByName, getBackend, getNumThreads, setNumThreads, useBackend } from './backend';
export type { Backend, BackendInfo, BackendName, DType, FloatArray } from './backend';
export { FlowVaeError, type ErrorCode } from './errors';
export type { Parameter } from './nn/parameter';
export type { Flow, FlowCallOptions, FlowForwardResult, FlowGradients, FlowInverseResult } from './flows/flow';
export { FlowSequence } from './flows/sequence';
export * from './data';
export {
  decodeSafetensors,
  encodeSafetensors,
  loadSafetensors,
  saveSafetensors,
  saveSafetensorsAsync,
} from './io/safetensors';
export type { SafetensorsContents, SafetensorsDType, SafetensorsTensor } from './io/safetensors';
