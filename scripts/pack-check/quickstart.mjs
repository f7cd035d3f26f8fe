// The quick start through ESM `import` of the CommonJS package (named exports).
import assert from 'node:assert/strict';
import flowvae, { backends, getBackend, FlowVaeError } from 'flowvae';

assert.equal(typeof backends, 'function');
assert.equal(typeof FlowVaeError, 'function');
assert.equal(flowvae.backends, backends);
const cpu = backends().find((b) => b.name === 'cpu');
assert.ok(cpu.available, `cpu backend unavailable: ${cpu.reason}`);
const backend = getBackend();
const z = backend.alloc(8);
backend.rng.normal(1, 0, z);
assert.ok(z.every(Number.isFinite));
console.log(JSON.stringify({ esm: true, backend: backend.name }));
