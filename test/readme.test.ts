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
