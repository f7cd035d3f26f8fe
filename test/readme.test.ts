/**
 * README lists that must follow the code: the benchmark suites (bench/index.ts),
 * the registered flow families (the flow registry) and the runtime
 * dependencies (package.json). A suite, family or dependency added without
 * its README line fails here, naming what is missing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SUITES } from '../bench/index';
import { transformSync } from 'esbuild';
import * as flowvae from '../src';
import { FLOW_FAMILIES } from '../src/flows';

const root = path.resolve(__dirname, '..');
const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
const backticked = (text: string) => [...text.matchAll(/`([a-z0-9-]+)`/g)].map((m) => m[1]);

describe('README follows the code', () => {
  it('every list of benchmark suites names exactly the suites of bench/index.ts', () => {
    const lists = readme.split('\n').filter((line) => line.includes('suites `'));
    expect(lists.length).toBeGreaterThanOrEqual(2);
    for (const line of lists) {
      const listed = backticked(line.slice(line.indexOf('suites `'))).filter((name) => name !== 'all');
      expect(listed, line).toEqual(expect.arrayContaining(Object.keys(SUITES)));
      expect(Object.keys(SUITES), line).toEqual(expect.arrayContaining(listed.filter((n) => !['bench', 'tsx'].includes(n))));
    }
  });

  it('the VAE posterior row names every registered flow family', () => {
    const row = readme.split('\n').find((line) => line.startsWith('| `posterior` |'))!;
    const named = new Set(backticked(row));
    const missing = Object.keys(FLOW_FAMILIES).filter((f) => !named.has(f));
    expect(missing, 'families registered but not in README').toEqual([]);
  });

  it('the number of runtime dependencies is the one package.json has', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const words = ['Zero', 'One', 'Two', 'Three', 'Four', 'Five', 'Six'];
    expect(readme).toContain(`${words[Object.keys(pkg.dependencies).length]} runtime dependencies.`);
    for (const dep of Object.keys(pkg.dependencies)) expect(readme).toContain(`[\`${dep}\`]`);
  });
});

/** The README's TypeScript blocks of "The VAE API", compiled and run against the sources. */
describe('README: the VAE API examples run as written', () => {
  const section = readme.slice(readme.indexOf('## The VAE API'), readme.indexOf('Methods:', readme.indexOf('## The VAE API')));
  const blocks = [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);

  it('has the examples of a flow prior with IWAE, a mixed likelihood and an own network', () => {
    expect(blocks.length).toBe(3);
  });

  it.each(blocks.map((code, i) => [i, code]))('example %i builds a VAE that trains', async (_i, code) => {
    // The blocks that import nothing use VAE as the quick start imported it.
    const source = code.includes("from 'flowvae'") ? code : `import { VAE } from 'flowvae';\n${code}`;
    const js = transformSync(`${source}\nexport { vae };`, { loader: 'ts', format: 'cjs' }).code;
    const mod = { exports: {} as { vae?: flowvae.VAE } };
    const requireFlowvae = (name: string) => {
      if (name !== 'flowvae') throw new Error(`the example imports "${name}"`);
      return flowvae;
    };
    new Function('require', 'module', 'exports', js)(requireFlowvae, mod, mod.exports);
    const vae = mod.exports.vae!;
    // Rows the likelihood accepts: for the mixed example a one-hot of 9 and a value in [0, 1].
    const n = 20;
    const x = new Float32Array(n * vae.inputDim);
    for (let r = 0; r < n; r++) {
      if (Array.isArray(vae.config.likelihood)) {
        x[r * vae.inputDim + (r % 9)] = 1;
        x[r * vae.inputDim + 9] = (r % 5) / 4;
      } else {
        for (let j = 0; j < vae.inputDim; j++) x[r * vae.inputDim + j] = ((r * 31 + j * 7) % 11) / 10;
      }
    }
    const fit = await vae.fit(x, { epochs: 1, batchSize: 10 });
    expect(Number.isFinite(fit.history[0].train.elbo)).toBe(true);
  });
});
