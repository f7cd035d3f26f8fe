/**
 * Sequence data sets for sequence VAEs: each example is `steps` time steps of
 * `features` values, stored flat as one row of `steps · features` columns,
 * with per-row lengths. Steps past a row's length repeat the end step, so a
 * model can learn to stop; `likelihoodGroups` gives the per-step column
 * groups repeated over the steps, ready for a VAE's mixed likelihood.
 *
 * `architectureSequences`: neural-network architectures written as time
 * series, each step a one-hot layer type (`LAYER_TYPES`, the last one `end`)
 * and one feature value in [0, 1] (a layer's width as log2(units) / 10, a
 * dropout rate, 0 where the type has none). Drawn from a small grammar:
 *
 *   input → (conv [batchnorm] relu [pool]){0..3} → (dense relu [dropout]){0..3} → dense softmax → end
 *
 * so a model has structure to find (type order, widths shrinking with depth)
 * and the rows are reproducible from a seed.
 */
import { expected, rangeError, typeError } from '../errors';
import type { LikelihoodGroup } from '../vae/likelihood';
import { checkPositiveInt, checkSize } from '../validate';
import { loadMnistSubset, type MnistSubsetOptions } from './mnist';
import { CounterRandom } from './random';
import type { Dataset } from './types';

export const LAYER_TYPES = ['input', 'conv', 'batchnorm', 'relu', 'pool', 'dense', 'dropout', 'softmax', 'end'] as const;
export type LayerType = (typeof LAYER_TYPES)[number];
/** Steps of the longest architecture the grammar draws: input, 3 × 4 convolution steps, 3 × 3 dense steps, dense softmax end. */
export const MAX_ARCHITECTURE_STEPS = 1 + 3 * 4 + 3 * 3 + 3;

export interface SequenceDataset extends Dataset {
  /** Time steps of a row (the longest sequence, end step included). */
  readonly steps: number;
  /** Values per step. */
  readonly features: number;
  /** Steps of each row up to and including its end step. */
  readonly lengths: Int32Array;
  /** The per-step column groups, repeated over the steps: the VAE's `likelihood` option. */
  readonly likelihoodGroups: LikelihoodGroup[];
}

export interface ArchitectureOptions {
  /** Time steps per row (default and least: 25, the longest architecture of the grammar). */
  steps?: number;
  seed?: number;
}

/** The per-step groups of `perStep` repeated `steps` times. */
export function repeatGroups(perStep: readonly LikelihoodGroup[], steps: number): LikelihoodGroup[] {
  return Array.from({ length: steps }, () => perStep.map((g) => ({ ...g }))).flat();
}

/** One architecture as (type, value) steps, from the grammar above. */
function drawArchitecture(rand: CounterRandom): [LayerType, number][] {
  const width = (units: number): number => Math.log2(units) / 10;
  const out: [LayerType, number][] = [['input', 0]];
  const convs = rand.nextInt(4);
  let channels = 16 << rand.nextInt(3);
  for (let i = 0; i < convs; i++) {
    out.push(['conv', width(channels)]);
    if (rand.nextFloat() < 0.5) out.push(['batchnorm', 0]);
    out.push(['relu', 0]);
    if (rand.nextFloat() < 0.5) out.push(['pool', 0]);
    channels = Math.min(512, channels * 2);
  }
  const denses = rand.nextInt(4);
  let units = 64 << rand.nextInt(4);
  for (let i = 0; i < denses; i++) {
    out.push(['dense', width(units)]);
    out.push(['relu', 0]);
    if (rand.nextFloat() < 0.3) out.push(['dropout', 0.1 * (1 + rand.nextInt(5))]);
    units = Math.max(16, units >> 1);
  }
  out.push(['dense', width(10)], ['softmax', 0], ['end', 0]);
  return out;
}

/**
 * `n` architectures as a sequence data set: rows of `steps · 10` columns
 * (9 one-hot layer-type columns and the value, per step).
 */
export function architectureSequences(n: number, options: ArchitectureOptions = {}): SequenceDataset {
  checkPositiveInt(n, 'n');
  if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
  const steps = checkPositiveInt(options.steps ?? MAX_ARCHITECTURE_STEPS, 'steps');
  if (steps < MAX_ARCHITECTURE_STEPS) throw rangeError(expected(`integer ≥ ${MAX_ARCHITECTURE_STEPS} (the longest architecture)`, 'steps', steps));
  const seed = checkSize(options.seed ?? 0, 'seed');
  const types = LAYER_TYPES.length;
  const features = types + 1;
  const rand = new CounterRandom(seed, 17);
  const x = new Float32Array(n * steps * features);
  const lengths = new Int32Array(n);
  const end = LAYER_TYPES.indexOf('end');
  for (let r = 0; r < n; r++) {
    const arch = drawArchitecture(rand);
    lengths[r] = arch.length;
    for (let t = 0; t < steps; t++) {
      const [type, value] = t < arch.length ? arch[t] : (['end', 0] as const);
      const at = (r * steps + t) * features;
      x[at + (type === 'end' ? end : LAYER_TYPES.indexOf(type))] = 1;
      x[at + types] = value;
    }
  }
  const perStep: LikelihoodGroup[] = [
    { kind: 'categorical', columns: types },
    { kind: 'bernoulli', columns: 1 },
  ];
  return {
    x,
    n,
    dim: steps * features,
    shape: [steps, features],
    name: 'architectures',
    steps,
    features,
    lengths,
    likelihoodGroups: repeatGroups(perStep, steps),
  };
}

/**
 * True for a layer-type sequence the grammar can produce: input, then conv
 * blocks (conv [batchnorm] relu [pool]), dense blocks (dense relu
 * [dropout]), then dense softmax end.
 */
export function isValidArchitecture(types: readonly string[]): boolean {
  const pattern = /^input( conv( batchnorm)? relu( pool)?)*( dense relu( dropout)?)* dense softmax end$/;
  return pattern.test(types.join(' '));
}

/** The layer types and values of row `r` of an architecture data set (or of decoded rows), up to its end step. */
export function describeArchitecture(x: ArrayLike<number>, r: number, steps: number): { type: LayerType; value: number }[] {
  const types = LAYER_TYPES.length;
  const features = types + 1;
  const out: { type: LayerType; value: number }[] = [];
  for (let t = 0; t < steps; t++) {
    const at = (r * steps + t) * features;
    let best = 0;
    for (let c = 1; c < types; c++) if (x[at + c] > x[at + best]) best = c;
    out.push({ type: LAYER_TYPES[best], value: x[at + types] });
    if (LAYER_TYPES[best] === 'end') break;
  }
  return out;
}

/**
 * The bundled MNIST subset read as sequences: 28 steps (image rows) of 28
 * pixels in [0, 1], each step one Bernoulli group; the same digits as the MLP
 * tables, so a sequence decoder and an MLP can be compared on them.
 */
export function mnistRows(options: MnistSubsetOptions): SequenceDataset {
  const images = loadMnistSubset(options);
  const lengths = new Int32Array(images.n).fill(28);
  return {
    ...images,
    name: `${images.name} as rows`,
    shape: [28, 28],
    steps: 28,
    features: 28,
    lengths,
    likelihoodGroups: repeatGroups([{ kind: 'bernoulli', columns: 28 }], 28),
  };
}
