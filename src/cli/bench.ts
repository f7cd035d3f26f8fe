/**
 * `flowvae bench [suites...]`: runs the benchmark suite (bench/index.ts, with
 * tsx) from a clone of the repository. The published package does not ship
 * bench/, and says so.
 */
import { Command } from 'commander';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CliError, EXIT_FAILURE } from './args';
import { PACKAGE_ROOT } from './common';

export function benchCommand(): Command {
  return new Command('bench')
    .summary('run the benchmark suite (repository clones only)')
    .description(
      'Runs the benchmarks in bench/ (dense, kernels, flows, train, autoregressive; all when none is named): ' +
        'throughput of every kernel and a training epoch on each backend, PyTorch peers side by side, results in ' +
        'bench/results/. Needs a clone of the repository with its dev dependencies (npm ci); the published ' +
        'package does not include bench/.',
    )
    .argument('[suites...]', 'suites to run (default: all)')
    .action(async (suites: string[]) => {
      await bench(suites);
    });
}

async function bench(suites: string[]): Promise<void> {
  const entry = path.join(PACKAGE_ROOT, 'bench', 'index.ts');
  if (!fs.existsSync(entry)) {
    throw new CliError(
      'error: the benchmark suite is not part of the installed package (bench/ is not published); ' +
        'run it from a clone of the repository: npm ci && npx flowvae bench',
      EXIT_FAILURE,
    );
  }
  let tsx: string;
  try {
    tsx = require.resolve('tsx/cli', { paths: [PACKAGE_ROOT] });
  } catch {
    throw new CliError('error: the benchmarks run with tsx, a dev dependency: run npm ci in the repository first', EXIT_FAILURE);
  }
  const child = spawn(process.execPath, [tsx, entry, ...suites], { cwd: PACKAGE_ROOT, stdio: 'inherit' });
  const code = await new Promise<number>((resolve) => child.on('close', (c, signal) => resolve(c ?? (signal ? 130 : 1))));
  if (code !== 0) process.exitCode = code;
}
