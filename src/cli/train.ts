/**
 * `flowvae train`: trains a VAE (planar-flow posterior on the bundled MNIST
 * subset by default) and writes a run folder (see run-folder.ts), then
 * evaluates it on the test set and prints a one-screen summary.
 */
import { Command, Option } from 'commander';
import path from 'node:path';
import type { Dataset } from '../data/dataset';
import { trainValidationSplit } from '../data/dataset';
import { FLOW_FAMILIES } from '../flows';
import type { EpochMetrics, TrainingState } from '../train/fit';
import { VAE, type PosteriorSpec, type VAEConfig } from '../vae/vae';
import type { PriorSpec } from '../vae/prior';
import {
  CliError,
  EXIT_FAILURE,
  fraction,
  formatDuration,
  formatRate,
  nonNegativeInt,
  nonNegativeNumber,
  positiveInt,
  learningRate,
  threadNumber,
  widthList,
} from './args';
import { BACKEND_CHOICES, type BackendChoice, interruptible, packageVersion, selectBackend, threadCount } from './common';
import { learningCurvesSvg } from './curves';
import { DATA_HELP, allBinary, dataSourceOption, formatDataSpec, inUnitInterval, isImageData, loadData, parseDataSpec, type LoadedData } from './data';
import { TEST_BINARIZE_SEED, VALIDATION_BINARIZE_SEED, evaluationRows, testElbo, testNll } from './evaluate';
import { imageGrid, scatterPlot, sideBySide } from './images';
import { checkFitsInMemory } from './memory';
import { Eta, Output, barGraphic, outputMode } from './progress';
import {
  METRICS_FILE,
  MODEL_FILE,
  type EpochRecord,
  type RunMetrics,
  type TrainSettings,
  claimNewRunFolder,
  lockRunFolder,
  readRunMetrics,
  writeJsonAtomic,
  writeTextAtomic,
} from './run-folder';

/** Defaults of a run; the epoch count is the default budget measured in README ("Command line"). */
export const TRAIN_DEFAULTS = {
  data: 'mnist-subset',
  validation: 0.1,
  posterior: 'flow' as const,
  flow: 'planar',
  latent: 40,
  hidden: [300, 300],
  likelihood: 'auto' as const,
  epochs: 100,
  batch: 100,
  lr: 1e-3,
  warmup: 10,
  freeBits: 0,
  seed: 1,
  samples: 1000,
};

/** Default flow depth per family: autoregressive steps are much wider than a planar layer. */
export function defaultLayers(flow: string): number {
  return flow === 'iaf' || flow === 'maf' ? 4 : 16;
}

/** Stream of the samples.png draws: the same picture for the same model, and the model's own noise stream untouched. */
const SAMPLE_SEED = 999;

const POSTERIORS = ['flow', 'diagonal', 'full-covariance'] as const;
const PRIORS = ['standard-normal', 'learned-gaussian', 'mixture', 'flow'] as const;

interface TrainOptions {
  data: string;
  testData?: string;
  trainSize?: number;
  testSize?: number;
  validation: number;
  posterior: (typeof POSTERIORS)[number];
  kl?: 'closed-form' | 'sampled';
  flow: string;
  layers?: number;
  prior: (typeof PRIORS)[number];
  priorComponents?: number;
  priorFlow?: string;
  priorLayers?: number;
  objective: 'elbo' | 'iwae';
  iwaeSamples?: number;
  latent: number;
  hidden: number[];
  likelihood: 'auto' | 'bernoulli' | 'gaussian';
  binarize?: 'dynamic' | 'none';
  epochs: number;
  batch: number;
  lr: number;
  warmup: number;
  freeBits: number;
  backend: BackendChoice;
  threads?: number;
  seed: number;
  samples: number;
  out?: string;
  resume?: string;
  json?: boolean;
}

export function trainCommand(): Command {
  const flows = Object.keys(FLOW_FAMILIES);
  const cmd = new Command('train')
    .summary('train a VAE and write a run folder')
    .description(
      'Trains a VAE with a normalizing-flow posterior (planar, K = 16, on the bundled MNIST subset by default), ' +
        'writes a run folder (model.safetensors, metrics.json, curves.svg, samples.png, reconstructions.png) ' +
        'and prints the test ELBO and the importance-sampled negative log-likelihood. Ctrl-C stops after the ' +
        'current batch and saves a checkpoint that --resume continues.',
    )
    .addOption(new Option('--data <source>', `training data: ${DATA_HELP}`).default(TRAIN_DEFAULTS.data).argParser(dataSourceOption))
    .addOption(new Option('--test-data <source>', 'test data for a csv:/npy: source (default: 20% of it held out)').argParser(dataSourceOption))
    .addOption(new Option('--train-size <n>', 'use only the first n training examples (quick runs)').argParser(positiveInt))
    .addOption(new Option('--test-size <n>', 'use only the first n test examples').argParser(positiveInt))
    .addOption(
      new Option('--validation <fraction>', 'fraction of the training data held out for validation').default(TRAIN_DEFAULTS.validation).argParser(fraction),
    )
    .addOption(new Option('--posterior <kind>', 'posterior family (flow: a Gaussian followed by --flow)').choices(POSTERIORS).default(TRAIN_DEFAULTS.posterior))
    .addOption(new Option('--flow <family>', 'flow of a flow posterior').choices(flows).default(TRAIN_DEFAULTS.flow))
    .addOption(
      new Option(
        '--kl <estimate>',
        'KL term: closed-form (Gaussian posteriors; their default) or sampled (flows; the flow papers use it for every posterior)',
      ).choices(['closed-form', 'sampled']),
    )
    .addOption(new Option('--layers <K>', 'flow layers (default 16; 4 for iaf and maf)').argParser(positiveInt))
    .addOption(
      new Option('--prior <kind>', 'prior p(z): mixture (of --prior-components Gaussians) and flow (--prior-flow) are learned')
        .choices(PRIORS)
        .default('standard-normal'),
    )
    .addOption(new Option('--prior-components <K>', 'Gaussians of a mixture prior (default 10)').argParser(positiveInt))
    .addOption(new Option('--prior-flow <family>', 'flow of a flow prior (default maf)').choices(flows))
    .addOption(new Option('--prior-layers <K>', 'layers of a flow prior (default 4)').argParser(positiveInt))
    .addOption(
      new Option('--objective <kind>', 'training objective: the ELBO, or the importance-weighted bound with --iwae-samples draws')
        .choices(['elbo', 'iwae'])
        .default('elbo'),
    )
    .addOption(new Option('--iwae-samples <K>', 'draws per example of the IWAE objective (default 5)').argParser(positiveInt))
    .addOption(new Option('--latent <d>', 'latent dimensions').default(TRAIN_DEFAULTS.latent).argParser(positiveInt))
    .addOption(
      new Option('--hidden <widths>', 'hidden layer widths of encoder and decoder, comma-separated')
        .default(TRAIN_DEFAULTS.hidden, '300,300')
        .argParser(widthList),
    )
    .addOption(
      new Option('--likelihood <kind>', 'decoder likelihood (auto: bernoulli when the data lie in [0, 1], else gaussian)')
        .choices(['auto', 'bernoulli', 'gaussian'])
        .default(TRAIN_DEFAULTS.likelihood),
    )
    .addOption(new Option('--binarize <mode>', 'dynamic: resample binary pixels every batch (default with bernoulli)').choices(['dynamic', 'none']))
    .addOption(
      new Option('--epochs <n>', 'epochs in total (with --resume: including those already done)').default(TRAIN_DEFAULTS.epochs).argParser(positiveInt),
    )
    .addOption(new Option('--batch <n>', 'examples per batch').default(TRAIN_DEFAULTS.batch).argParser(positiveInt))
    .addOption(new Option('--lr <rate>', 'Adam learning rate').default(TRAIN_DEFAULTS.lr).argParser(learningRate))
    .addOption(
      new Option('--warmup <epochs>', 'KL warm-up: the KL weight rises from 0 to 1 over these epochs (0: none)')
        .default(TRAIN_DEFAULTS.warmup)
        .argParser(nonNegativeNumber),
    )
    .addOption(
      new Option('--free-bits <nats>', 'free bits: no KL gradient below this many nats per latent dimension')
        .default(TRAIN_DEFAULTS.freeBits)
        .argParser(nonNegativeNumber),
    )
    .addOption(new Option('--backend <name>', 'compute backend (auto: cpu when the native addon loads)').choices(BACKEND_CHOICES).default('auto'))
    .addOption(new Option('--threads <n>', 'native threads (default: all cores)').argParser(threadNumber))
    .addOption(new Option('--seed <n>', 'seed of initialization, noise, shuffling and splits').default(TRAIN_DEFAULTS.seed).argParser(nonNegativeInt))
    .addOption(new Option('--samples <S>', 'importance samples per test example for the NLL').default(TRAIN_DEFAULTS.samples).argParser(positiveInt))
    .addOption(new Option('--out <dir>', 'run folder (default: runs/<date>-<time>; with --resume: the resumed folder)'))
    .addOption(new Option('--resume <run>', 'continue the run in this folder from its checkpoint'))
    .addOption(new Option('--json', 'print one JSON object per line (epochs, summary) instead of text'))
    .action(async (options: TrainOptions, command: Command) => {
      await train(options, command);
    });
  return cmd;
}

// -----------------------------------------------------------------------------
// Settings

type SettingKey = keyof TrainSettings;

/** Settings that define the model or the data: a resumed run keeps them, and the command line may not change them. */
const FIXED_ON_RESUME: { key: SettingKey; flag: string }[] = [
  { key: 'data', flag: '--data' },
  { key: 'testData', flag: '--test-data' },
  { key: 'trainSize', flag: '--train-size' },
  { key: 'testSize', flag: '--test-size' },
  { key: 'validation', flag: '--validation' },
  { key: 'posterior', flag: '--posterior' },
  { key: 'kl', flag: '--kl' },
  { key: 'flow', flag: '--flow' },
  { key: 'layers', flag: '--layers' },
  { key: 'prior', flag: '--prior' },
  { key: 'priorComponents', flag: '--prior-components' },
  { key: 'priorFlow', flag: '--prior-flow' },
  { key: 'priorLayers', flag: '--prior-layers' },
  { key: 'objective', flag: '--objective' },
  { key: 'iwaeSamples', flag: '--iwae-samples' },
  { key: 'latent', flag: '--latent' },
  { key: 'hidden', flag: '--hidden' },
  { key: 'likelihood', flag: '--likelihood' },
  { key: 'binarize', flag: '--binarize' },
  { key: 'seed', flag: '--seed' },
];

/** Resolves the settings from the command line (and the resumed run's settings). */
function resolveSettings(o: TrainOptions, cmd: Command, resumed: TrainSettings | null): TrainSettings {
  const given = (name: string): boolean => cmd.getOptionValueSource(name) === 'cli';
  if (given('flow') && o.posterior !== 'flow') {
    throw new CliError(`error: --flow needs --posterior flow, but --posterior is ${o.posterior}`);
  }
  if (o.kl === 'closed-form' && o.posterior === 'flow') {
    throw new CliError('error: --kl closed-form needs --posterior diagonal or full-covariance; a flow posterior has no closed-form KL');
  }
  if (given('layers') && o.posterior !== 'flow') {
    throw new CliError(`error: --layers needs --posterior flow, but --posterior is ${o.posterior}`);
  }
  if (given('priorComponents') && o.prior !== 'mixture') throw new CliError(`error: --prior-components needs --prior mixture, but --prior is ${o.prior}`);
  for (const [key, flag] of [
    ['priorFlow', '--prior-flow'],
    ['priorLayers', '--prior-layers'],
  ] as const) {
    if (given(key) && o.prior !== 'flow') throw new CliError(`error: ${flag} needs --prior flow, but --prior is ${o.prior}`);
  }
  if (given('iwaeSamples') && o.objective !== 'iwae') throw new CliError(`error: --iwae-samples needs --objective iwae, but --objective is ${o.objective}`);
  if (o.kl === 'closed-form' && (o.prior !== 'standard-normal' || o.objective === 'iwae')) {
    throw new CliError('error: --kl closed-form needs the standard-normal prior and the ELBO objective');
  }
  if (o.objective === 'iwae' && o.freeBits > 0) throw new CliError('error: --free-bits applies to the ELBO objective, not to --objective iwae');
  const fromCli: TrainSettings = {
    data: o.data,
    testData: o.testData ?? null,
    trainSize: o.trainSize ?? null,
    testSize: o.testSize ?? null,
    validation: o.validation,
    posterior: o.posterior,
    kl: o.kl ?? null,
    flow: o.posterior === 'flow' ? o.flow : null,
    layers: o.posterior === 'flow' ? (o.layers ?? defaultLayers(o.flow)) : null,
    prior: o.prior,
    priorComponents: o.prior === 'mixture' ? (o.priorComponents ?? 10) : null,
    priorFlow: o.prior === 'flow' ? (o.priorFlow ?? 'maf') : null,
    priorLayers: o.prior === 'flow' ? (o.priorLayers ?? 4) : null,
    objective: o.objective,
    iwaeSamples: o.objective === 'iwae' ? (o.iwaeSamples ?? 5) : null,
    latent: o.latent,
    hidden: o.hidden,
    // Resolved against the data in train() when 'auto'.
    likelihood: o.likelihood as TrainSettings['likelihood'],
    binarize: o.binarize ?? 'dynamic',
    epochs: o.epochs,
    batch: o.batch,
    lr: o.lr,
    warmup: o.warmup,
    freeBits: o.freeBits,
    seed: o.seed,
    samples: o.samples,
  };
  if (!resumed) return fromCli;
  // A resumed run keeps its model and data; training options given on the command line replace the old ones.
  const settings: TrainSettings = { ...resumed };
  for (const key of Object.keys(fromCli) as SettingKey[]) {
    // Setting keys are the options' attribute names (--free-bits -> freeBits).
    if (!given(key)) continue;
    if (key === 'likelihood' && fromCli.likelihood === ('auto' as string)) continue;
    const fixed = FIXED_ON_RESUME.find((f) => f.key === key);
    if (fixed && JSON.stringify(fromCli[key]) !== JSON.stringify(resumed[key])) {
      throw new CliError(
        `error: ${fixed.flag} ${JSON.stringify(fromCli[key])} differs from the run being resumed (${JSON.stringify(resumed[key])}); ` +
          'a resumed run keeps its model and data',
      );
    }
    (settings as unknown as Record<string, unknown>)[key] = fromCli[key];
  }
  return settings;
}

function priorOf(s: TrainSettings): PriorSpec {
  if (s.prior === 'mixture') return { kind: 'mixture', components: s.priorComponents ?? 10 };
  if (s.prior === 'flow') return { kind: 'flow', flow: s.priorFlow ?? 'maf', layers: s.priorLayers ?? 4 };
  return s.prior ?? 'standard-normal';
}

function posteriorOf(s: TrainSettings): PosteriorSpec {
  if (s.posterior !== 'flow') return s.posterior;
  return { flow: s.flow!, layers: s.layers! };
}

/** "planar flow posterior (K = 16, amortized), latent 40, MLP 784-300-300, Bernoulli". */
export function describeModel(config: VAEConfig): string {
  const p = config.posterior;
  const post =
    'custom' in Object(p)
      ? `${(p as { custom: string }).custom} posterior`
      : typeof p === 'object' && 'flow' in p
        ? `${p.flow} flow posterior (K = ${p.layers}, ${p.amortized ? 'amortized' : 'shared parameters'})`
        : `${p === 'diagonal' ? 'diagonal' : 'full-covariance'} Gaussian posterior${config.kl === 'sampled' ? ' (sampled KL)' : ''}`;
  const enc = config.encoder;
  const net =
    'custom' in enc
      ? `${enc.custom} encoder`
      : 'kind' in enc
        ? `LSTM ${enc.hidden} over ${enc.steps} steps`
        : `MLP ${[config.inputDim, ...enc.hidden].join('-')}`;
  const names: Record<string, string> = { bernoulli: 'Bernoulli', gaussian: 'Gaussian', categorical: 'categorical' };
  const l = config.likelihood;
  const lik = typeof l === 'string' ? names[l] : Array.isArray(l) ? `mixed (${l.map((g) => g.kind).join(', ')})` : l.custom;
  const prior = config.prior && 'kind' in config.prior && config.prior.kind !== 'standard-normal' ? `, ${config.prior.kind} prior` : '';
  return `${post}, latent ${config.latentDim}, ${net}, ${lik} likelihood${prior}`;
}

export function parameterCount(vae: VAE): number {
  return vae.parameters().reduce((n, p) => n + p.value.length, 0);
}

// -----------------------------------------------------------------------------
// The command

function fmt(v: number | undefined | null, digits = 2): string {
  return v === undefined || v === null || !Number.isFinite(v) ? '--' : v.toFixed(digits);
}

function epochLine(r: EpochRecord, epochs: number): string {
  const val = r.validation ? `  val ELBO ${fmt(r.validation.elbo)} (KL ${fmt(r.validation.kl)})` : '';
  const cut = r.interrupted ? `  [stopped at batch ${r.interrupted.batches}/${r.interrupted.of}]` : '';
  return (
    `epoch ${String(r.epoch).padStart(String(epochs).length)}/${epochs}  train ELBO ${fmt(r.train.elbo)} (KL ${fmt(r.train.kl)})${val}` +
    `  beta ${fmt(r.beta)}  ${formatRate(r.examplesPerSecond)} ex/s  ${formatDuration(r.seconds)}${cut}`
  );
}

async function train(o: TrainOptions, cmd: Command): Promise<void> {
  const output = new Output(outputMode(o.json));
  const started = performance.now();

  // Settings, resumed run.
  let resumed: RunMetrics | null = null;
  if (o.resume !== undefined) resumed = readRunMetrics(o.resume);
  const settings = resolveSettings(o, cmd, resumed?.settings ?? null);
  const explicitOut = o.out ?? o.resume;
  const backend = selectBackend(o.backend, o.threads);

  // Data.
  const loaded: LoadedData = loadData({
    data: parseDataSpec(settings.data),
    testData: settings.testData === null ? undefined : parseDataSpec(settings.testData),
    seed: settings.seed,
    trainSize: settings.trainSize ?? undefined,
    testSize: settings.testSize ?? undefined,
  });
  const unit = inUnitInterval(loaded.train.x) && inUnitInterval(loaded.test.x);
  // Defaults that suit the data, said when they differ from the image defaults:
  // tabular rows get a Gaussian likelihood unless every value is 0 or 1, no
  // binarization, and a latent no wider than a row.
  const tabular = !isImageData(loaded.train);
  const picked: string[] = [];
  if ((settings.likelihood as string) === 'auto') {
    const binary = allBinary(loaded.train.x) && allBinary(loaded.test.x);
    settings.likelihood = unit && (!tabular || binary) ? 'bernoulli' : 'gaussian';
    if (tabular) picked.push(`likelihood ${settings.likelihood} (${binary ? 'every value is 0 or 1' : 'continuous values'})`);
  }
  if (tabular && !resumed && o.binarize === undefined && settings.binarize === 'dynamic') {
    settings.binarize = 'none';
    if (settings.likelihood === 'bernoulli') picked.push('no binarization (the values are 0 or 1 already)');
  }
  if (tabular && !resumed && cmd.getOptionValueSource('latent') !== 'cli' && settings.latent > loaded.train.dim) {
    settings.latent = loaded.train.dim;
    picked.push(`latent ${settings.latent} (the width of a row)`);
  }
  if (settings.likelihood === 'bernoulli' && !unit) {
    throw new CliError('error: --likelihood bernoulli needs data in [0, 1]; these data are not (use --likelihood gaussian)', EXIT_FAILURE);
  }
  if (settings.likelihood === 'gaussian') {
    if (o.binarize === 'dynamic') throw new CliError('error: --binarize dynamic needs --likelihood bernoulli');
    settings.binarize = 'none';
  }
  const binarized = settings.binarize === 'dynamic';
  let train: Dataset = loaded.train;
  let validation: Dataset | null = null;
  const nVal = Math.round(train.n * settings.validation);
  if (nVal >= 1 && nVal < train.n) {
    const split = trainValidationSplit(train, { validation: nVal, seed: settings.seed });
    train = split.train;
    validation = split.validation;
  }
  const validationRows = validation ? evaluationRows(backend, validation, binarized, VALIDATION_BINARIZE_SEED) : null;
  const testRows = evaluationRows(backend, loaded.test, binarized, TEST_BINARIZE_SEED);

  // Model.
  let vae: VAE;
  let state: TrainingState | undefined;
  if (resumed) {
    vae = VAE.load(o.resume!, { backend });
    state = vae.trainingState;
    if (vae.inputDim !== train.dim)
      throw new CliError(`error: the checkpoint expects ${vae.inputDim} values per example but the data have ${train.dim}`, EXIT_FAILURE);
    // A run whose training ended but whose test evaluation or pictures did not (killed
    // during the final NLL) is finished by --resume; a complete run needs more epochs.
    if (state && state.epoch >= settings.epochs && resumed!.status === 'completed') {
      throw new CliError(`error: ${o.resume} has already trained ${state.epoch} epochs; pass --epochs above ${state.epoch} to train more`);
    }
  } else {
    checkFitsInMemory(settings, train.dim, {
      latent: TRAIN_DEFAULTS.latent,
      hidden: TRAIN_DEFAULTS.hidden,
      layers: settings.flow ? defaultLayers(settings.flow) : null,
    });
    vae = new VAE({
      inputDim: train.dim,
      latentDim: settings.latent,
      encoder: { hidden: settings.hidden },
      decoder: { hidden: settings.hidden },
      likelihood: settings.likelihood,
      posterior: posteriorOf(settings),
      prior: priorOf(settings),
      objective: settings.objective === 'iwae' ? { kind: 'iwae', samples: settings.iwaeSamples ?? 5 } : 'elbo',
      kl: settings.kl ?? undefined,
      seed: settings.seed,
      backend,
    });
  }
  // The folder is claimed (a fresh default name, or a lock on the given one) only once the data and model are ready.
  const out = explicitOut ?? claimNewRunFolder();
  lockRunFolder(out);

  // Records a resumed run keeps: those its checkpoint covers (the completed epochs, and
  // the first part of an epoch stopped midway); later ones are trained again.
  const covered = (e: EpochRecord) => e.epoch <= (state?.epoch ?? 0) || (e.epoch === (state?.epoch ?? 0) + 1 && (state?.batch ?? 0) > 0);
  const kept = resumed ? resumed.epochs.filter(covered) : [];
  const metrics: RunMetrics = {
    flowvae: packageVersion(),
    status: 'running',
    settings,
    backend: backend.name,
    threads: threadCount(backend),
    model: { description: describeModel(vae.config), parameters: parameterCount(vae) },
    data: {
      name: settings.data,
      train: train.n,
      validation: validation?.n ?? 0,
      test: loaded.test.n,
      dim: train.dim,
      imageShape: loaded.imageShape,
    },
    // Epochs a resumed run already has stay in the record (those past its checkpoint are dropped).
    epochs: kept,
    trainSeconds: kept.reduce((s, e) => s + e.seconds, 0),
    test: null,
  };
  const files = {
    model: path.join(out, MODEL_FILE),
    metrics: path.join(out, METRICS_FILE),
    curves: path.join(out, 'curves.svg'),
    samples: path.join(out, 'samples.png'),
    reconstructions: path.join(out, 'reconstructions.png'),
  };
  const saveMetrics = (): void => writeJsonAtomic(files.metrics, metrics);
  const saveCurves = (): void =>
    writeTextAtomic(files.curves, learningCurvesSvg(metrics.epochs, metrics.test?.elbo, `${settings.data}: ${metrics.model.description}`));

  const startEpoch = state?.epoch ?? 0;
  output.log(
    `flowvae train: ${metrics.model.description}; ${metrics.model.parameters.toLocaleString('en-US')} parameters\n` +
      `  data ${formatDataSpec(parseDataSpec(settings.data))}: ${train.n} train, ${validation?.n ?? 0} validation, ${loaded.test.n} test` +
      `${binarized ? ' (binarized)' : ''}; backend ${backend.name}, ${metrics.threads} thread${metrics.threads === 1 ? '' : 's'}\n` +
      `  ${resumed ? `resuming from epoch ${startEpoch}, ` : ''}epochs ${settings.epochs}, batch ${settings.batch}, lr ${settings.lr}, ` +
      `warm-up ${settings.warmup}, free bits ${settings.freeBits}, seed ${settings.seed}; run folder ${out}`,
  );
  if (picked.length > 0) output.log(`  defaults for tabular data: ${picked.join(', ')}`);
  if (settings.warmup > settings.epochs) {
    // The KL weight rises over the warm-up: a shorter run never trains the full ELBO.
    output.log(
      `  note: the KL warm-up (${settings.warmup} epochs) is longer than the run (${settings.epochs}): β ends at ` +
        `${(settings.epochs / settings.warmup).toFixed(2)}, so the model never trains on the full ELBO (pass --warmup ${settings.epochs} or less)`,
    );
  }
  output.event('start', { out, settings, backend: backend.name, threads: metrics.threads, model: metrics.model, data: metrics.data, startEpoch });
  saveMetrics();

  // Training.
  let lastBatch = { epoch: startEpoch, batch: 0, batches: 1 };
  let elboSum = 0;
  let elboCount = 0;
  const eta = new Eta();
  const stop = interruptible(() => {
    output.clearBar();
    output.log('flowvae: stopping after the current batch (Ctrl-C again to quit at once)');
  });
  const finishing = state !== undefined && state.epoch >= settings.epochs;
  if (finishing) output.log(`flowvae: training is complete (${state!.epoch} epochs); finishing the test evaluation and pictures`);
  let fitResult;
  try {
    fitResult = finishing
      ? { history: [], stopped: 'completed' as const, state: state! }
      : await vae.fit(train, {
          epochs: settings.epochs,
          batchSize: settings.batch,
          lr: settings.lr,
          warmup: settings.warmup,
          freeBits: settings.freeBits,
          binarize: settings.binarize,
          seed: settings.seed,
          ...(validationRows ? { validation: validationRows } : {}),
          // The saved model is the last epoch's, so that --resume continues it exactly.
          keepBest: false,
          signal: stop.signal,
          ...(state ? { resume: state } : {}),
          onBatch: (b) => {
            if (b.batch === 1) {
              elboSum = 0;
              elboCount = 0;
            }
            elboSum += b.elbo;
            elboCount += 1;
            lastBatch = { epoch: b.epoch, batch: b.batch, batches: b.batches };
            const done = (b.epoch - 1 - startEpoch) * b.batches + b.batch;
            const total = (settings.epochs - startEpoch) * b.batches;
            output.bar(
              `epoch ${b.epoch}/${settings.epochs} ${barGraphic(b.batch, b.batches, 20)} ${b.batch}/${b.batches}  ` +
                `ELBO ${fmt(elboSum / elboCount)}  ${formatRate(b.examplesPerSecond)} ex/s  ETA ${eta.format(done, total)}`,
            );
          },
          onEpoch: (m: EpochMetrics) => {
            const record: EpochRecord = {
              epoch: m.epoch,
              train: m.train,
              ...(m.validation ? { validation: m.validation } : {}),
              lr: m.lr,
              beta: m.beta,
              examplesPerSecond: m.examplesPerSecond,
              seconds: m.seconds,
              ...(m.activeUnits !== undefined ? { activeUnits: m.activeUnits } : {}),
              ...(m.klPerDimension ? { klPerDimension: m.klPerDimension } : {}),
            };
            if (!m.complete) {
              record.interrupted = { batches: lastBatch.batch, of: lastBatch.batches };
            }
            metrics.epochs.push(record);
            metrics.trainSeconds += m.seconds;
            // Checkpoint every epoch: a crash or a second Ctrl-C loses at most one epoch.
            // The record goes first: killed between the two writes, the run resumes from
            // the previous checkpoint, drops the records past it and trains this epoch
            // again (bit-identically), so no epoch's record is ever lost.
            saveMetrics();
            vae.save(out);
            saveCurves();
            output.log(epochLine(record, settings.epochs));
            output.event('epoch', { ...record, epochs: settings.epochs });
          },
        });
  } finally {
    output.clearBar();
  }
  vae.save(out);

  if (fitResult.stopped === 'aborted') {
    stop.dispose();
    const last = metrics.epochs[metrics.epochs.length - 1];
    const interruptedAt = { epoch: lastBatch.epoch, batch: lastBatch.batch, batches: lastBatch.batches };
    metrics.status = 'interrupted';
    saveMetrics();
    saveCurves();
    const where = last?.interrupted
      ? `in epoch ${last.epoch} at batch ${last.interrupted.batches}/${last.interrupted.of}`
      : `after epoch ${fitResult.state.epoch}`;
    output.log(
      `flowvae: interrupted ${where}; checkpoint saved to ${files.model} (epoch ${fitResult.state.epoch})\n` + `  continue with: flowvae train --resume ${out}`,
    );
    output.event('interrupted', { out, epoch: fitResult.state.epoch, at: interruptedAt, checkpoint: files.model });
    process.exitCode = stop.exitCode;
    return;
  }

  // Test set: ELBO, then the importance-sampled NLL (the long part, with its own progress bar).
  const testStarted = performance.now();
  const elbo = testElbo(vae, testRows);
  output.log(`test ELBO ${fmt(elbo.elbo)} on ${loaded.test.n} examples; importance-sampled NLL with ${settings.samples} samples per example...`);
  const nllEta = new Eta();
  const nll = await testNll(vae, testRows, {
    samples: settings.samples,
    signal: stop.signal,
    onProgress: (done, total) =>
      output.bar(`test NLL (${settings.samples} importance samples) ${barGraphic(done, total, 20)} ${done}/${total}  ETA ${nllEta.format(done, total)}`),
  });
  output.clearBar();
  stop.dispose();
  metrics.test = {
    examples: loaded.test.n,
    elbo: elbo.elbo,
    reconstruction: elbo.reconstruction,
    kl: elbo.kl,
    nll,
    nllSamples: settings.samples,
    seconds: (performance.now() - testStarted) / 1000,
  };
  metrics.status = nll === null ? 'interrupted' : 'completed';
  saveMetrics();
  saveCurves();

  // Pictures.
  writePictures(vae, loaded, files);

  if (nll === null) {
    output.log(`flowvae: interrupted during the test NLL; the trained model is saved in ${out} (flowvae eval ${out} computes it)`);
    output.event('interrupted', { out, epoch: fitResult.state.epoch, during: 'test', checkpoint: files.model });
    process.exitCode = stop.exitCode;
    return;
  }
  const totalSeconds = (performance.now() - started) / 1000;
  printSummary(output, metrics, out, totalSeconds, binarized);
}

/** samples.png (64 draws from the model) and reconstructions.png (64 test inputs beside their reconstructions). */
export function writePictures(vae: VAE, data: LoadedData, files: { samples: string; reconstructions: string }): void {
  if (!isImageData(data.train) && data.train.dim >= 2) {
    writeScatterPictures(vae, data, files);
    return;
  }
  const shape = data.imageShape;
  const range = vae.config.likelihood === 'bernoulli' ? undefined : ('auto' as const);
  const count = 64;
  imageGrid(vae.sample(count, { seed: SAMPLE_SEED }), count, shape, { columns: 8, range }).save(files.samples);
  const n = Math.min(count, data.test.n);
  const inputs = data.test.x.subarray(0, n * data.test.dim);
  const recon = vae.reconstruct(inputs);
  sideBySide([imageGrid(inputs, n, shape, { columns: 8, range }), imageGrid(recon, n, shape, { columns: 8, range })], 12).save(files.reconstructions);
}

/**
 * Tabular rows are not pictures: samples and reconstructions are drawn as
 * scatter plots of the first two columns, beside the test rows, on one square
 * that holds the test data.
 */
function writeScatterPictures(vae: VAE, data: LoadedData, files: { samples: string; reconstructions: string }): void {
  const SIZE = 256;
  const dim = data.test.dim;
  const firstTwo = (x: ArrayLike<number>, n: number): Float64Array => {
    const out = new Float64Array(2 * n);
    for (let i = 0; i < n; i++) {
      out[2 * i] = x[i * dim];
      out[2 * i + 1] = x[i * dim + 1];
    }
    return out;
  };
  const test = firstTwo(data.test.x, data.test.n);
  let extent = 0;
  for (const v of test) extent = Math.max(extent, Math.abs(v));
  extent = 1.1 * (extent || 1);
  const count = 2000;
  const samples = firstTwo(vae.sample(count, { seed: SAMPLE_SEED }), count);
  sideBySide([scatterPlot(test, data.test.n, SIZE, extent), scatterPlot(samples, count, SIZE, extent)], 12).save(files.samples);
  const n = Math.min(500, data.test.n);
  const recon = firstTwo(vae.reconstruct(data.test.x.subarray(0, n * dim)), n);
  sideBySide([scatterPlot(test, n, SIZE, extent), scatterPlot(recon, n, SIZE, extent)], 12).save(files.reconstructions);
}

function printSummary(output: Output, m: RunMetrics, out: string, totalSeconds: number, binarized: boolean): void {
  const last = m.epochs[m.epochs.length - 1];
  const t = m.test!;
  const lines = [
    '',
    `flowvae train: done in ${formatDuration(totalSeconds)} (training ${formatDuration(m.trainSeconds)}, test ${formatDuration(t.seconds)})`,
    `  model           ${m.model.description}`,
    `  data            ${m.settings.data}: ${m.data.train} train, ${m.data.validation} validation, ${m.data.test} test${binarized ? ' (binarized)' : ''}`,
    `  backend         ${m.backend}, ${m.threads} thread${m.threads === 1 ? '' : 's'}; last epoch ${formatRate(last?.examplesPerSecond ?? NaN)} examples/s`,
    `  epochs          ${last?.epoch ?? 0}`,
    `  train ELBO      ${fmt(last?.train.elbo)}  (KL ${fmt(last?.train.kl)}; last epoch, running average)`,
  ];
  if (last?.validation) lines.push(`  validation ELBO ${fmt(last.validation.elbo)}  (KL ${fmt(last.validation.kl)})`);
  if (last?.activeUnits !== undefined) {
    const collapsed = last.klPerDimension
      ? `; KL per dimension ${Math.min(...last.klPerDimension).toFixed(2)} to ${Math.max(...last.klPerDimension).toFixed(2)} nats`
      : '';
    lines.push(`  active units    ${last.activeUnits} of ${m.settings.latent} (Cov_x E_q[z_d] > 0.01 on the validation set${collapsed})`);
  }
  lines.push(
    `  test ELBO       ${fmt(t.elbo)} nats  (KL ${fmt(t.kl)}, reconstruction ${fmt(t.reconstruction)}; 1 sample per example)`,
    `  test NLL        ${fmt(t.nll)} nats  (importance sampling, ${t.nllSamples} samples per example, ${t.examples} examples)`,
    `  run folder      ${out}: ${MODEL_FILE} ${METRICS_FILE} curves.svg samples.png reconstructions.png`,
  );
  output.log(lines.join('\n'));
  output.event('summary', {
    out,
    seconds: totalSeconds,
    trainSeconds: m.trainSeconds,
    epochs: last?.epoch ?? 0,
    examplesPerSecond: last?.examplesPerSecond ?? null,
    train: last?.train ?? null,
    validation: last?.validation ?? null,
    test: t,
    model: m.model,
    data: m.data,
    backend: m.backend,
    threads: m.threads,
  });
}
