// Types through `require` (CommonJS resolution of the package's exports/types).
import flowvae = require('flowvae');
import type { Backend, BackendInfo } from 'flowvae';

const info: BackendInfo[] = flowvae.backends();
const backend: Backend = flowvae.getBackend();
backend.rng.normal(1, 0, backend.alloc(info.length));
// @ts-expect-error seed must be a number: fails to compile only if the types really resolved
backend.rng.normal('1', 0, backend.alloc(3));
export const name: string = backend.name;
