/**
 * No import cycles in src/ (type-only imports included): training code
 * depends on the TrainableModel / TrainableDistribution contracts, not on
 * the classes that implement them. A new cycle fails here, printed as the
 * chain of files that closes it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(__dirname, '..', 'src');

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Relative imports and re-exports of a file, resolved to files. */
function dependencies(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)[^;]*?from '(\.[^']+)'/gms)) {
    const target = path.resolve(path.dirname(file), m[1]);
    const found = [`${target}.ts`, path.join(target, 'index.ts')].find((c) => fs.existsSync(c));
    if (found) out.push(found);
  }
  return out;
}

describe('module structure', () => {
  it('src/ has no import cycles', () => {
    const graph = new Map(sourceFiles(SRC).map((f) => [f, dependencies(f)]));
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const cycles: string[] = [];
    const visit = (f: string): void => {
      state.set(f, 'open');
      stack.push(f);
      for (const d of graph.get(f) ?? []) {
        if (state.get(d) === 'open') cycles.push([...stack.slice(stack.indexOf(d)), d].map((x) => path.relative(SRC, x)).join(' → '));
        else if (!state.has(d)) visit(d);
      }
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of graph.keys()) if (!state.has(f)) visit(f);
    expect(graph.size).toBeGreaterThan(50);
    expect(cycles).toEqual([]);
  });
});
