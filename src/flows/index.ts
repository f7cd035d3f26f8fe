/**
 * Flow modules and their registration: the names a VAE posterior or a
 * FlowDistribution can use. Registering a family here also puts it under the
 * flow property tests (test/flow-properties.test.ts).
 */
export * from './flow';
export * from './registry';
export { FlowSequence } from './sequence';
