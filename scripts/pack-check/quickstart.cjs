// The README quick start, run from a project that installed the packed
// tarball, with no compiler, make or python on PATH.
//   node quickstart.cjs native     the prebuilt binary must load: cpu backend
//   node quickstart.cjs fallback   no binary: reference backend, with the reason
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const mode = process.argv[2] ?? 'native';
for (const tool of ['g++', 'gcc', 'cc', 'c++', 'make', 'python3', 'python']) {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && fs.existsSync(path.join(dir, tool))) throw new Error(`${tool} is reachable on PATH (${dir}): the check would not mean anything`);
  }
}

const flowvae = require('flowvae');
const cpu = flowvae.backends().find((b) => b.name === 'cpu');
if (mode === 'native') {
  assert.ok(cpu.available, `cpu backend unavailable: ${cpu.reason}`);
  assert.match(require.resolve('flowvae'), /node_modules/);
} else {
  assert.equal(cpu.available, false);
  assert.match(cpu.reason, /No native build was found.*npm rebuild flowvae/);
}
const backend = flowvae.getBackend();
assert.equal(flowvae.getBackend(), backend);
assert.equal(backend.name, mode === 'native' ? 'cpu' : 'reference');
const reference = flowvae.backendByName('reference');

// Random numbers: the same stream on every backend, bit for bit (after rounding to float32).
const n = 10007;
const z = backend.alloc(n);
backend.rng.normal(42, 7, z);
const zRef = reference.alloc(n);
reference.rng.normal(42, 7, zRef);
const want = Float32Array.from(zRef);
for (let i = 0; i < n; i++) assert.ok(Object.is(Math.fround(z[i]), want[i]), `rng element ${i}: ${z[i]} vs ${want[i]}`);

// A VAE step's densities: KL to N(0, I) and a Bernoulli likelihood, against the float64 reference.
const batch = 5;
const dim = 33;
function data(b, seed, scale) {
  const u = b.alloc(batch * dim);
  b.rng.uniform(seed, 0, u);
  for (let i = 0; i < u.length; i++) u[i] = Math.fround(scale * (2 * u[i] - 1));
  return u;
}
function compare(label, run) {
  const got = run(backend);
  const expected = run(reference);
  for (let i = 0; i < expected.length; i++) {
    // float32 kernels sum 33 terms of size <= ~3: a few float32 ulps of the total.
    assert.ok(Math.abs(got[i] - expected[i]) <= 1e-4 * (1 + Math.abs(expected[i])), `${label}[${i}]: ${got[i]} vs ${expected[i]}`);
  }
}
compare('klStandard', (b) => {
  const out = b.alloc(batch);
  b.gaussian.klStandard(data(b, 1, 1), data(b, 2, 1), out, batch, dim);
  return out;
});
compare('bernoulli', (b) => {
  const x = data(b, 3, 1).map((v) => (v > 0 ? 1 : 0));
  const out = b.alloc(batch);
  b.likelihood.bernoulli(x, data(b, 4, 3), out, batch, dim);
  return out;
});

console.log(JSON.stringify({ node: process.version, backend: backend.name, simd: cpu.simd ?? null, threads: cpu.threads }));
