// Types through `import` (ESM resolution of the package's exports/types).
import { backends, getBackend, FlowVaeError, type Backend, type BackendInfo } from 'flowvae';

const info: BackendInfo[] = backends();
const backend: Backend = getBackend();
backend.gaussian.klStandard(backend.alloc(6), backend.alloc(6), backend.alloc(2), 2, 3);
// @ts-expect-error unknown backend name: fails to compile only if the types really resolved
backends()[0].name === 'tpu';
export const error = new FlowVaeError('ERR_NAN', `${info.length}`);
