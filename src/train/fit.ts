/**
 * Training loop for a VAE: seeded shuffling, mini-batches, Adam/AdamW,
 * learning-rate schedules, KL warm-up, free bits, gradient clipping, dynamic
 * binarization, a validation split with early stopping and best-model keeping.
 * The loop yields to the event loop between batches so progress callbacks,
 * AbortSignal and Ctrl-C work. With the same seed on the same backend a run is
 * reproduced exactly.
 */
import type { FloatArray } from '../backend/types';
import type { Dataset } from '../data/dataset';
import { permutation } from '../data/random';
import { describeBadValue, findNonFinite } from '../data/validate';
import { FlowVaeError, expected, rangeError, typeError } from '../errors';
import { checkBoolean, checkInRange, checkKnownKeys, checkOneOf, checkPositiveInt, checkSize } from '../validate';
import type { Backend } from '../backend/backend';
import type { Parameter } from '../nn/parameter';
import { Adam, checkLearningRate, type AdamState } from './adam';

/** Per-batch averages of the ELBO and its terms (nats per example). */
export interface ElboTerms {
  elbo: number;
  /** E[log p(x | z)] */
  reconstruction: number;
  /** E[log q(z | x) − log p(z)] (closed form or single-sample estimate: the model's `kl` option). */
  kl: number;
  /** The training objective's value when it is not the ELBO (the IWAE bound of a training batch). */
  objective?: number;
}

/**
 * What the training loop needs of a model (VAE implements it): the loop
 * depends on this contract, not on the model class.
 */
export interface TrainableModel {
  readonly inputDim: number;
  readonly backend: Backend;
  readonly config: { readonly seed: number };
  /** The likelihood's kind ('bernoulli' allows dynamic binarization). */
  readonly likelihood: { readonly kind: string };
  /** Throws ERR_DATA naming `name`, the row and column where `x` holds values the likelihood cannot score. */
  checkData(x: FloatArray, name: string): void;
  /** Next element of the training noise stream. */
  noiseOffset: number;
  trainingState: TrainingState | undefined;
  parameters(): Parameter[];
  /** Zeroes the gradients, runs forward and backward on a batch and returns its ELBO terms. */
  computeGradients(x: FloatArray, options: { beta?: number; freeBits?: number }): ElboTerms;
  elbo(x: FloatArray, options: { samples?: number; seed?: number }): ElboTerms;
  activeUnits(x: FloatArray, options: { samples?: number }): { count: number; variance: Float64Array };
  klPerDimension(x: FloatArray): Float64Array | null;
}

export type LrSchedule = 'constant' | 'cosine' | 'exponential';

export interface FitOptions {
  /**
   * Epochs this call trains (default 10). With `resume`, the total instead,
   * counting the epochs the resumed state has done (a checkpoint's run
   * continued to the same end).
   */
  epochs?: number;
  batchSize?: number;
  lr?: number;
  /** 'adam' (L2 weight decay) or 'adamw' (decoupled). */
  optimizer?: 'adam' | 'adamw';
  weightDecay?: number;
  /** Clip gradients to this global L2 norm (0: off). */
  maxGradNorm?: number;
  /**
   * 'constant', 'cosine' (to 0 at the end of the run: this call's last epoch,
   * or epoch `epochs` with `resume`) or 'exponential' (× lrGamma per epoch).
   */
  lrSchedule?: LrSchedule;
  lrGamma?: number;
  /** Epochs of KL warm-up: β rises linearly from 0 to `beta` over them (0: none). */
  warmup?: number;
  /**
   * How β rises during warm-up: 'batch' (default) raises it after every batch,
   * from 0; 'epoch' holds it for an epoch at min(1, e / warmup) · beta for
   * epochs e = 1, 2, … (the flow papers' code: 1/warmup in the first epoch).
   */
  warmupStep?: 'batch' | 'epoch';
  /** Final (or constant) weight of the KL term. */
  beta?: number;
  /** Free bits λ (nats per latent dimension). */
  freeBits?: number;
  /** Validation: a fraction of the data held out (seeded), or a separate data set. */
  validation?: number | FloatArray | Dataset;
  /** Stop after this many epochs without a better validation ELBO (0: never). */
  patience?: number;
  /** Restore the parameters of the best validation epoch at the end (default true with validation). */
  keepBest?: boolean;
  /** 'dynamic': resample binary inputs x ~ Bernoulli(x) every batch (Bernoulli likelihood). */
  binarize?: 'dynamic' | 'none';
  /** Seed of shuffling, binarization and the validation split. */
  seed?: number;
  /** Posterior samples for the validation ELBO. */
  evalSamples?: number;
  onEpoch?: (metrics: EpochMetrics) => void | Promise<void>;
  onBatch?: (progress: BatchProgress) => void;
  signal?: AbortSignal;
  /**
   * Continue from this state (checkpoint resume; see `epochs`). Without it a
   * model that has trained before continues its own run (`vae.trainingState`):
   * the same optimizer moments and step count, and the epoch count that
   * orders the batches and drives the warm-up and the learning-rate schedule,
   * as a PyTorch loop keeps one optimizer across its epochs. So
   * `fit({ epochs: 1 })` called 40 times trains as `fit({ epochs: 40 })` does.
   * Best-epoch tracking (`keepBest`, `patience`) is per call unless resumed.
   */
  resume?: TrainingState;
  /** Start a new run instead: a fresh optimizer and epoch count (default false). */
  restart?: boolean;
}

export interface EpochMetrics {
  epoch: number;
  train: ElboTerms;
  validation?: ElboTerms;
  lr: number;
  beta: number;
  examplesPerSecond: number;
  seconds: number;
  /** True when this epoch has the best validation ELBO so far. */
  best: boolean;
  /**
   * Batches this record covers, and whether the epoch ended here: an epoch
   * stopped by `signal` is recorded with `complete: false` (no validation) and
   * a resumed run records the rest of it as the same epoch.
   */
  batches: number;
  complete: boolean;
  /**
   * Posterior collapse, on the validation set (complete epochs with
   * validation): active units (Cov_x E_q[z_d] > 0.01; with a flow, E_q[z]
   * taken as the flow applied to μ) and, for a diagonal posterior, the KL
   * per latent dimension (nats).
   */
  activeUnits?: number;
  klPerDimension?: number[];
}

export interface BatchProgress {
  epoch: number;
  batch: number;
  batches: number;
  step: number;
  elbo: number;
  examplesPerSecond: number;
}

/** Everything needed to continue a run bit-identically. */
export interface TrainingState {
  /** Epochs completed. */
  epoch: number;
  /** Batches already trained of the next epoch (a run stopped mid-epoch); 0 at an epoch boundary. */
  batch: number;
  optimizer: AdamState;
  noiseOffset: number;
  bestValidationElbo: number;
  epochsWithoutImprovement: number;
  /** Parameters of the best validation epoch so far (`keepBest`), in `vae.parameters()` order; null when none is kept. */
  bestParameters: FloatArray[] | null;
}

export interface FitResult {
  history: EpochMetrics[];
  stopped: 'completed' | 'early-stopping' | 'aborted';
  state: TrainingState;
}

const KEYS = [
  'epochs',
  'batchSize',
  'lr',
  'optimizer',
  'weightDecay',
  'maxGradNorm',
  'lrSchedule',
  'lrGamma',
  'warmup',
  'warmupStep',
  'beta',
  'freeBits',
  'validation',
  'patience',
  'keepBest',
  'binarize',
  'seed',
  'evalSamples',
  'onEpoch',
  'onBatch',
  'signal',
  'resume',
  'restart',
] as const;

/**
 * The rows of `data` (a flat array or a Dataset) after the checks training
 * needs: the model's width, finite values, and values in [0, 1] for a
 * Bernoulli likelihood. Errors name the first offending row and column.
 */
export function checkTrainingData(data: unknown, name: string, vae: TrainableModel): FloatArray {
  const dim = vae.inputDim;
  let x: unknown = data;
  if (typeof data === 'object' && data !== null && !ArrayBuffer.isView(data) && 'x' in data) {
    const ds = data as Dataset;
    if (ds.dim !== dim) throw rangeError(`Expected rows of width ${dim} (inputDim) in "${name}" but received width ${ds.dim}`, 'ERR_SHAPE');
    x = ds.x;
  }
  if (!(x instanceof Float32Array || x instanceof Float64Array)) throw typeError(expected('Float32Array, Float64Array or Dataset', name, x));
  if (x.length === 0) throw new FlowVaeError('ERR_DATA', `"${name}" is empty`);
  if (x.length % dim !== 0) {
    throw rangeError(expected(`array whose length is a multiple of inputDim ${dim}`, name, x), 'ERR_SHAPE');
  }
  const bad = findNonFinite(x, dim);
  if (bad) throw new FlowVaeError('ERR_DATA', `"${name}" ${describeBadValue(bad.row, bad.column, bad.value)}`);
  vae.checkData(x, name);
  return x;
}

function gatherRows(src: FloatArray, rows: ArrayLike<number>, start: number, count: number, dim: number, dst: FloatArray): void {
  for (let i = 0; i < count; i++) {
    const r = rows[start + i];
    dst.set(src.subarray(r * dim, (r + 1) * dim), i * dim);
  }
}

export async function fitVAE(vae: TrainableModel, dataIn: FloatArray | Dataset, options: FitOptions = {}): Promise<FitResult> {
  if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
  checkKnownKeys(options, 'options', KEYS);
  const dim = vae.inputDim;
  const data = checkTrainingData(dataIn, 'data', vae);
  const epochs = checkPositiveInt(options.epochs ?? 10, 'epochs');
  const restart = checkBoolean(options.restart ?? false, 'restart');
  if (restart && options.resume) throw rangeError('"restart" and "resume" exclude each other: pass one of them');
  const batchSize = checkPositiveInt(options.batchSize ?? 100, 'batchSize');
  const lr0 = checkLearningRate(options.lr ?? 1e-3);
  const optimizerKind = checkOneOf(options.optimizer ?? 'adam', 'optimizer', ['adam', 'adamw'] as const);
  const schedule = checkOneOf(options.lrSchedule ?? 'constant', 'lrSchedule', ['constant', 'cosine', 'exponential'] as const);
  const lrGamma = checkInRange(options.lrGamma ?? 0.95, 'lrGamma', 0, 1, { lo: true });
  const warmup = checkInRange(options.warmup ?? 0, 'warmup', 0, 1e6);
  const warmupStep = checkOneOf(options.warmupStep ?? 'batch', 'warmupStep', ['batch', 'epoch'] as const);
  const betaMax = checkInRange(options.beta ?? 1, 'beta', 0, 1e6);
  const freeBits = checkInRange(options.freeBits ?? 0, 'freeBits', 0, 1e6);
  const patience = checkSize(options.patience ?? 0, 'patience');
  const binarize = checkOneOf(options.binarize ?? 'none', 'binarize', ['dynamic', 'none'] as const);
  if (binarize === 'dynamic' && vae.likelihood.kind !== 'bernoulli') {
    throw rangeError(`Expected "binarize" to be "none" with a ${vae.likelihood.kind} likelihood but received "dynamic" (string)`);
  }
  const seed = checkSize(options.seed ?? vae.config.seed, 'seed');
  const evalSamples = checkPositiveInt(options.evalSamples ?? 1, 'evalSamples');
  const signal = options.signal;

  // Train/validation split.
  const nAll = data.length / dim;
  let trainRows: Uint32Array;
  let validation: FloatArray | null = null;
  if (typeof options.validation === 'number') {
    const frac = checkInRange(options.validation, 'validation', 0, 1, { hi: true });
    const perm = permutation(nAll, seed, 3);
    const nVal = Math.floor(nAll * frac);
    if (nVal > 0) {
      validation = vae.backend.alloc(nVal * dim);
      gatherRows(data, perm, 0, nVal, dim, validation);
    }
    trainRows = perm.slice(nVal);
  } else {
    if (options.validation !== undefined) validation = checkTrainingData(options.validation, 'validation', vae);
    trainRows = new Uint32Array(nAll).map((_, i) => i);
  }
  const n = trainRows.length;
  if (n === 0) throw new FlowVaeError('ERR_DATA', 'No training examples left after the validation split');
  const keepBest = options.keepBest ?? validation !== null;
  if (keepBest && !validation) throw rangeError('"keepBest" needs a validation set ("validation")');

  const params = vae.parameters();
  const adam = new Adam(vae.backend, params, {
    lr: lr0,
    weightDecay: options.weightDecay ?? 0,
    decoupled: optimizerKind === 'adamw',
    maxGradNorm: options.maxGradNorm ?? 0,
  });
  let startEpoch = 0;
  let startBatch = 0;
  let endEpoch = epochs;
  let best = -Infinity;
  let sinceBest = 0;
  let carriedBest: FloatArray[] | null = null;
  if (options.resume) {
    const r = options.resume;
    adam.loadState(r.optimizer);
    vae.noiseOffset = r.noiseOffset;
    startEpoch = r.epoch;
    startBatch = r.batch ?? 0;
    best = r.bestValidationElbo;
    sinceBest = r.epochsWithoutImprovement;
    carriedBest = r.bestParameters ?? null;
  } else if (vae.trainingState && !restart) {
    // The model's own run goes on: restarting Adam (moments and bias
    // correction) and the epoch count (the same batch order every call) is
    // what made a per-epoch loop train measurably worse than its PyTorch twin.
    const previous = vae.trainingState;
    adam.loadState(previous.optimizer);
    startEpoch = previous.epoch;
    startBatch = previous.batch ?? 0;
    endEpoch = startEpoch + epochs;
  }
  // The best epoch's parameters; a resumed run keeps the best of the whole run
  // (a state without them, from before they were saved, starts from the current ones).
  const bestParams = keepBest ? params.map((p, i) => vae.backend.from(carriedBest?.[i] ?? p.value)) : null;

  const batchBuf = vae.backend.alloc(batchSize * dim);
  const uniforms = binarize === 'dynamic' ? vae.backend.alloc(batchSize * dim) : null;
  const batchesPerEpoch = Math.ceil(n / batchSize);
  const history: EpochMetrics[] = [];
  let stopped: FitResult['stopped'] = 'completed';
  // Where the run stands: epochs completed and batches done of the next one.
  let doneEpochs = startEpoch;
  let doneBatches = startBatch;
  const state = (): TrainingState => ({
    epoch: doneEpochs,
    batch: doneBatches,
    optimizer: adam.state(),
    noiseOffset: vae.noiseOffset,
    bestValidationElbo: best,
    epochsWithoutImprovement: sinceBest,
    bestParameters: bestParams && best > -Infinity ? bestParams : null,
  });

  for (let epoch = startEpoch; epoch < endEpoch; epoch++) {
    const t0 = performance.now();
    adam.lr = schedule === 'constant' ? lr0 : schedule === 'exponential' ? lr0 * lrGamma ** epoch : 0.5 * lr0 * (1 + Math.cos((Math.PI * epoch) / endEpoch));
    // The order of an epoch depends only on (seed, epoch), so a resumed run sees the same batches.
    const order = permutation(n, seed, 1000 + epoch);
    let rec = 0;
    let kl = 0;
    let objective: number | null = null;
    let seen = 0;
    let beta = betaMax;
    const firstBatch = epoch === startEpoch ? Math.min(startBatch, batchesPerEpoch) : 0;
    for (let bi = firstBatch; bi < batchesPerEpoch; bi++) {
      if (signal?.aborted) {
        stopped = 'aborted';
        break;
      }
      const start = bi * batchSize;
      const count = Math.min(batchSize, n - start);
      const xb = count === batchSize ? batchBuf : batchBuf.subarray(0, count * dim);
      const rows = order.subarray(start, start + count);
      for (let i = 0; i < count; i++) xb.set(data.subarray(trainRows[rows[i]] * dim, (trainRows[rows[i]] + 1) * dim), i * dim);
      if (uniforms) {
        const u = uniforms.subarray(0, count * dim);
        const step = epoch * batchesPerEpoch + bi;
        vae.backend.rng.uniform(seed * 4 + 2, step * batchSize * dim, u);
        for (let i = 0; i < u.length; i++) xb[i] = u[i] < xb[i] ? 1 : 0;
      }
      const warmedEpochs = warmupStep === 'epoch' ? epoch + 1 : epoch + bi / batchesPerEpoch;
      beta = warmup > 0 ? Math.min(1, warmedEpochs / warmup) * betaMax : betaMax;
      const step = adam.stepCount + 1;
      let terms: ElboTerms;
      try {
        terms = vae.computeGradients(xb, { beta, freeBits });
      } catch (err) {
        if (err instanceof FlowVaeError && err.code === 'ERR_NAN') {
          restore(params, bestParams);
          throw new FlowVaeError('ERR_NAN', `Training diverged at epoch ${epoch + 1}, step ${step}: ${err.message}`, { cause: err });
        }
        throw err;
      }
      const norm = adam.step();
      if (!Number.isFinite(norm)) {
        restore(params, bestParams);
        throw new FlowVaeError('ERR_NAN', `Training diverged at epoch ${epoch + 1}, step ${step}: the gradient norm is ${norm}`);
      }
      rec += terms.reconstruction * count;
      kl += terms.kl * count;
      if (terms.objective !== undefined) objective = (objective ?? 0) + terms.objective * count;
      seen += count;
      doneBatches = bi + 1;
      if (options.onBatch) {
        const secs = (performance.now() - t0) / 1000;
        options.onBatch({ epoch: epoch + 1, batch: bi + 1, batches: batchesPerEpoch, step, elbo: terms.elbo, examplesPerSecond: seen / secs });
      }
      // Let timers, callbacks and signals run between batches.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (seen === 0) break;
    const ranBatches = doneBatches - firstBatch;
    const complete = doneBatches === batchesPerEpoch;
    if (complete) {
      doneEpochs = epoch + 1;
      doneBatches = 0;
    }
    const seconds = (performance.now() - t0) / 1000;
    const train: ElboTerms = { elbo: (rec - kl) / seen, reconstruction: rec / seen, kl: kl / seen };
    // The bound an IWAE objective trains on, beside the ELBO of the same draws.
    if (objective !== null) train.objective = objective / seen;
    const metrics: EpochMetrics = {
      epoch: epoch + 1,
      train,
      lr: adam.lr,
      beta,
      examplesPerSecond: seen / seconds,
      seconds,
      best: false,
      batches: ranBatches,
      complete,
    };
    if (validation && complete) {
      metrics.validation = vae.elbo(validation, { samples: evalSamples, seed: seed * 4 + 5 });
      metrics.activeUnits = vae.activeUnits(validation, { samples: 0 }).count;
      const klPerDimension = vae.klPerDimension(validation);
      if (klPerDimension) metrics.klPerDimension = Array.from(klPerDimension);
      if (metrics.validation.elbo > best) {
        best = metrics.validation.elbo;
        sinceBest = 0;
        metrics.best = true;
        if (bestParams) params.forEach((p, i) => bestParams[i].set(p.value));
      } else {
        sinceBest += 1;
      }
    }
    history.push(metrics);
    vae.trainingState = state();
    if (options.onEpoch) await options.onEpoch(metrics);
    if (stopped === 'aborted') break;
    if (patience > 0 && sinceBest >= patience) {
      stopped = 'early-stopping';
      break;
    }
  }
  // An aborted run keeps its last parameters, so that resuming it continues
  // exactly; the best so far travel in its state and are restored when it ends.
  if (keepBest && best > -Infinity && stopped !== 'aborted') restore(params, bestParams);
  vae.trainingState = state();
  return { history, stopped, state: vae.trainingState };
}

function restore(params: { value: FloatArray }[], saved: FloatArray[] | null): void {
  if (saved) params.forEach((p, i) => p.value.set(saved[i]));
}
