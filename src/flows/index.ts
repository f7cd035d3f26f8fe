/**
 * Flow modules and their registration: the names a VAE posterior or a
 * FlowDistribution can use. Registering a family here also puts it under the
 * flow property tests (test/flow-properties.test.ts).
 */
export * from './flow';
export * from './registry';
export { FlowSequence } from './sequence';
export { PlanarFlow, type PlanarFlowOptions } from './planar';
export { RadialFlow, type RadialFlowOptions } from './radial';

import { PlanarFlow } from './planar';
import { RadialFlow } from './radial';
import { registerFlow, type FlowFactoryOptions } from './registry';

function stackOptions({ dim, layers, amortized, seed, backend, extra }: FlowFactoryOptions) {
  return { dim, layers, amortized, seed, backend, ...extra };
}
registerFlow('planar', { amortizable: true, shareable: true, create: (o) => new PlanarFlow(stackOptions(o)) });
registerFlow('radial', { amortizable: true, shareable: true, create: (o) => new RadialFlow(stackOptions(o)) });
