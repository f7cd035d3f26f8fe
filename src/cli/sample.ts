/**
 * `flowvae sample <run> -n 64 --out grid.png`: draws examples from a trained
 * model (decoder means at z ~ N(0, I)) and writes them as a picture grid,
 * optionally also as a .npy array.
 */
import { Command, Option } from 'commander';
import { saveNpy } from '../data/npy';
import { VAE } from '../vae/vae';
import { nonNegativeInt, pngFile, positiveInt, threadNumber } from './args';
import { BACKEND_CHOICES, type BackendChoice, selectBackend } from './common';
import { imageGrid } from './images';
import { Output, outputMode } from './progress';
import { readRunMetrics } from './run-folder';

interface SampleOptions {
  count: number;
  out: string;
  npy?: string;
  columns?: number;
  seed: number;
  backend: BackendChoice;
  threads?: number;
  json?: boolean;
}

export function sampleCommand(): Command {
  return new Command('sample')
    .summary('draw examples from a trained model into a PNG grid')
    .description('Draws examples from the model of a run folder (decoder means at z ~ N(0, I)) and writes them as a PNG grid.')
    .argument('<run>', 'run folder written by flowvae train')
    .addOption(new Option('-n, --count <n>', 'number of examples').default(64).argParser(positiveInt))
    .addOption(new Option('--out <file>', 'PNG file to write').default('samples.png').argParser(pngFile))
    .addOption(new Option('--npy <file>', 'also write the values as a .npy array [n, dim] (float32)'))
    .addOption(new Option('--columns <n>', 'examples per grid row (default: a square grid)').argParser(positiveInt))
    .addOption(new Option('--seed <n>', 'seed of the latent draws').default(999).argParser(nonNegativeInt))
    .addOption(new Option('--backend <name>', 'compute backend').choices(BACKEND_CHOICES).default('auto'))
    .addOption(new Option('--threads <n>', 'native threads (default: all cores)').argParser(threadNumber))
    .addOption(new Option('--json', 'print the result as one JSON object'))
    .action((run: string, o: SampleOptions) => {
      sample(run, o);
    });
}

function sample(run: string, o: SampleOptions): void {
  const output = new Output(outputMode(o.json));
  const metrics = readRunMetrics(run);
  const backend = selectBackend(o.backend, o.threads);
  const vae = VAE.load(run, { backend });
  const values = vae.sample(o.count, { seed: o.seed });
  const shape = metrics.data.imageShape;
  const range = vae.config.likelihood === 'bernoulli' ? undefined : ('auto' as const);
  const grid = imageGrid(values, o.count, shape, { columns: o.columns, range });
  grid.save(o.out);
  if (o.npy) saveNpy(o.npy, Float32Array.from(values), [o.count, vae.inputDim]);
  if (output.mode === 'json') {
    process.stdout.write(`${JSON.stringify({ run, count: o.count, seed: o.seed, out: o.out, npy: o.npy ?? null, width: grid.width, height: grid.height })}\n`);
    return;
  }
  output.log(`flowvae sample: ${o.count} examples (seed ${o.seed}) -> ${o.out} (${grid.width}x${grid.height})${o.npy ? ` and ${o.npy}` : ''}`);
}
