/**
 * flowvae: variational autoencoders and normalizing flows for TypeScript/Node.
 */
export { backends, backendByName, getBackend, getNumThreads, setNumThreads, useBackend } from './backend';
export type { Backend, BackendInfo, BackendName, DType, FloatArray } from './backend';
export { FlowVaeError, type ErrorCode } from './errors';
export type { Parameter } from './nn/parameter';
export type { Flow, FlowCallOptions, FlowForwardResult, FlowGradients, FlowInverseResult } from './flows/flow';
export { FlowSequence } from './flows/sequence';
export { SylvesterFlow, type SylvesterFlowOptions } from './flows/sylvester';
export { SYLVESTER_VARIANTS, type SylvesterVariant } from './backend/kernels/sylvester';
