/**
 * `npm run bench -- <suite> [...]`: runs benchmark suites and writes
 * bench/results/<suite>.json. Suites: see SUITES below; `all` runs every one.
 */
export const SUITES: Record<string, () => Promise<unknown>> = {
  dense: () => import('./dense').then((m) => m.run()),
  kernels: () => import('./kernels').then((m) => m.run()),
  // Planar and radial stacks, the three Sylvester variants, RealNVP, a Glow step, a spline coupling flow, residual blocks.
  flows: async () => {
    await (await import('./flows')).run();
    await (await import('./sylvester')).run();
    await (await import('./coupling')).run();
    await (await import('./glow')).run();
    await (await import('./spline')).run();
    await (await import('./residual')).run();
  },
  glow: () => import('./glow').then((m) => m.run()),
  train: () => import('./train').then((m) => m.run()),
  autoregressive: () => import('./autoregressive').then((m) => m.run()),
  'reverse-kl': () => import('./reverse-kl').then((m) => m.run()),
  coupling: () => import('./coupling').then((m) => m.run()),
  spline: () => import('./spline').then((m) => m.run()),
  lstm: () => import('./lstm').then((m) => m.run()),
};

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const names = args.length === 0 || args.includes('all') ? Object.keys(SUITES) : args;
  for (const name of names) {
    const suite = SUITES[name];
    if (!suite) {
      console.error(`Unknown benchmark suite "${name}"; expected one of ${Object.keys(SUITES).join(', ')}, all`);
      process.exitCode = 2;
      return;
    }
    console.log(`\n## ${name}\n`);
    await suite();
  }
}

// Run only as the script (the tests import SUITES to check README's lists).
if (require.main === module) void main();
