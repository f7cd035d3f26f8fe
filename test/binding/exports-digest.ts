/**
 * Runs every function the addon exports (valid calls inferred from the
 * binding's messages, at two sets of sizes) and prints one JSON line mapping
 * each function to a SHA-256 of all its arguments' bytes after the call.
 * scripts/pack-check.sh runs it with the same prebuilt binary under each Node
 * version and requires identical digests: one N-API binary, the same numbers.
 *
 *   node exports-digest.js <package dir>     (loads the addon as the library does, with node-gyp-build)
 */
import { createHash } from 'node:crypto';
import { cloneArgs, exportedFunctions, inferValidCall, resizeCall } from './calls';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: exports-digest <package dir>');
  process.exit(2);
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeGypBuild = require(require.resolve('node-gyp-build', { paths: [dir] })) as (d: string) => object;
const addon = nodeGypBuild(dir);
const digests: Record<string, string> = {};
const missing: string[] = [];
for (const [name, fn] of exportedFunctions(addon)) {
  if (/^set[A-Z]/.test(name) || name === 'getNumThreads') continue;
  const small = inferValidCall(name, fn, { seed: 21 });
  if (!small.found) {
    missing.push(`${name}: ${small.note}`);
    continue;
  }
  const hash = createHash('sha256');
  for (const call of [small, resizeCall(small, fn, [33, 17, 5, 3], 22) ?? small]) {
    const args = cloneArgs(call.args);
    const result = fn(...args);
    hash.update(JSON.stringify(result ?? null));
    for (const a of args.flatMap((x) => (Array.isArray(x) ? x : [x]))) {
      if (ArrayBuffer.isView(a)) hash.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
      else hash.update(JSON.stringify(a ?? null));
    }
  }
  digests[name] = hash.digest('hex').slice(0, 16);
}
console.log(JSON.stringify({ node: process.version, functions: Object.keys(digests).length, missing, digests }));
