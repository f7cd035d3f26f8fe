/**
 * Training loops of a FlowDistribution, with the conventions of VAE.fit:
 * Adam/AdamW over the flow's named parameters, a promise that resolves when
 * the run completes or is aborted, a yield to the event loop between batches
 * (so progress callbacks, AbortSignal and Ctrl-C work), and a run that is
 * reproduced exactly from the same seed on the same backend.
 *
 * - fitDensity: maximum likelihood on samples (forward KL), seeded shuffling
 *   into mini-batches, `epochs` passes.
 * - fitReverseKL: variational inference, minimizing E_q[log q − β log p̃]
 *   over `steps` batches of fresh draws from q, with the optional annealing
 *   of Rezende & Mohamed (2015): β = min(1, 0.01 + t / warmup).
 */
import type { FloatArray } from '../backend/types';
import type { Dataset } from '../data/dataset';
import { permutation } from '../data/random';
import { describeBadValue, findNonFinite } from '../data/validate';
import type { Backend } from '../backend/backend';
import type { Parameter } from '../nn/parameter';

/**
 * What the distribution training loops need (FlowDistribution implements it):
 * they depend on this contract, not on the class.
 */
export interface TrainableDistribution {
  readonly dim: number;
  readonly seed: number;
  readonly backend: Backend;
  /** Width of the context of a conditional distribution (0: unconditional). */
  readonly contextDim: number;
  /** The trained parameters (the flow's and a learned base's). */
  parameters(): Parameter[];
  trainingState: DistributionTrainingState | undefined;
  /** Maximum likelihood on a batch: accumulates the gradients, returns −mean log q(x). */
  densityGradients(x: FloatArray, context?: FloatArray): number;
  /** Reverse KL on `batch` fresh draws: accumulates the gradients, returns the loss. */
  reverseKLGradients(target: TargetDensity, batch: number, options: { beta: number }): number;
}
import type { TargetDensity } from '../distributions/targets2d';
import { FlowVaeError, expected, rangeError, typeError } from '../errors';
import { checkBoolean, checkKnownKeys, checkOneOf, checkPositiveInt, checkSize } from '../validate';
import { Adam, checkLearningRate, type AdamState } from './adam';

export interface DistributionFitBaseOptions {
  /** Examples (MLE) or draws from q (reverse KL) per step (default 256). */
  batchSize?: number;
  /** Learning rate (default 1e-3 for MLE, 1e-2 for reverse KL). */
  lr?: number;
  /** 'adam' (L2 weight decay) or 'adamw' (decoupled). */
  optimizer?: 'adam' | 'adamw';
  weightDecay?: number;
  /** Clip gradients to this global L2 norm (0: off, the default). */
  maxGradNorm?: number;
  /** 'constant' or 'cosine' (to 0 over the run). */
  lrSchedule?: 'constant' | 'cosine';
  /** Called after every step. */
  onBatch?: (progress: DistributionBatchProgress) => void;
  signal?: AbortSignal;
  /**
   * Start a new run: a fresh optimizer and epoch/step count (default false:
   * a distribution that has trained before continues its run, see
   * `FlowDistribution.trainingState`).
   */
  restart?: boolean;
}

/**
 * What a FlowDistribution's next `fit`/`fitTarget` continues from: Adam's
 * moments and step count, the epochs of maximum likelihood done (they order
 * the batches) and the reverse-KL steps done (they drive the annealing).
 */
export interface DistributionTrainingState {
  optimizer: AdamState;
  epoch: number;
  reverseKLSteps: number;
}

export interface DensityFitOptions extends DistributionFitBaseOptions {
  /** Passes over the data (default 10). */
  /** Conditional distributions: the context of each data row, `[n, contextDim]` (required then, refused otherwise). */
  context?: FloatArray;
  epochs?: number;
  /** Seed of the shuffling (default: the distribution's seed). */
  seed?: number;
  onEpoch?: (metrics: DensityEpochMetrics) => void | Promise<void>;
}

export interface ReverseKLFitOptions extends DistributionFitBaseOptions {
  /** Optimizer steps (default 1000). */
  steps?: number;
  /**
   * Annealing steps: β = min(1, 0.01 + t / warmup), t the reverse-KL steps the
   * distribution has taken in all its calls (0, the default: β = 1 throughout).
   */
  warmup?: number;
}

export interface DistributionBatchProgress {
  /** Steps done (1-based), and in all. */
  step: number;
  steps: number;
  /** Epoch (1-based) of maximum-likelihood training; 0 for reverse KL. */
  epoch: number;
  /** Loss of this batch in nats: −mean log q(x) (MLE) or mean(log q − log p̃) (reverse KL, at β = 1). */
  loss: number;
  /** Annealing weight of log p̃ (1 for MLE). */
  beta: number;
  lr: number;
  samplesPerSecond: number;
}

export interface DensityEpochMetrics {
  epoch: number;
  /** Mean of −log q(x) over the epoch's examples (nats). */
  loss: number;
  seconds: number;
}

export interface DistributionFitResult {
  stopped: 'completed' | 'aborted';
  /** Optimizer steps taken. */
  steps: number;
  /** Loss of every step taken (nats). */
  losses: Float64Array;
  /** Per-epoch metrics (maximum likelihood only; empty for reverse KL). */
  epochs: DensityEpochMetrics[];
}

const BASE_KEYS = ['batchSize', 'lr', 'optimizer', 'weightDecay', 'maxGradNorm', 'lrSchedule', 'onBatch', 'signal', 'restart'] as const;
const DENSITY_KEYS = [...BASE_KEYS, 'epochs', 'seed', 'onEpoch', 'context'] as const;
const REVERSE_KL_KEYS = [...BASE_KEYS, 'steps', 'warmup'] as const;

interface Common {
  batchSize: number;
  adam: Adam;
  /** The run this call continues (fresh: all zero). */
  previous: { epoch: number; reverseKLSteps: number };
  lr0: number;
  schedule: 'constant' | 'cosine';
  onBatch?: (p: DistributionBatchProgress) => void;
  signal?: AbortSignal;
}

function common(dist: TrainableDistribution, options: DistributionFitBaseOptions, defaultLr: number): Common {
  const batchSize = checkPositiveInt(options.batchSize ?? 256, 'batchSize');
  const lr0 = checkLearningRate(options.lr ?? defaultLr);
  const optimizer = checkOneOf(options.optimizer ?? 'adam', 'optimizer', ['adam', 'adamw'] as const);
  const schedule = checkOneOf(options.lrSchedule ?? 'constant', 'lrSchedule', ['constant', 'cosine'] as const);
  if (options.onBatch !== undefined && typeof options.onBatch !== 'function') throw typeError(expected('function', 'onBatch', options.onBatch));
  const signal = options.signal;
  if (signal !== undefined && (typeof signal !== 'object' || signal === null || typeof signal.aborted !== 'boolean')) {
    throw typeError(expected('AbortSignal', 'signal', signal));
  }
  const restart = checkBoolean(options.restart ?? false, 'restart');
  const adam = new Adam(dist.backend, dist.parameters(), {
    lr: lr0,
    weightDecay: options.weightDecay ?? 0,
    decoupled: optimizer === 'adamw',
    maxGradNorm: options.maxGradNorm ?? 0,
  });
  // A distribution that has trained before continues its run, as VAE.fit does.
  const state = restart ? undefined : dist.trainingState;
  if (state) adam.loadState(state.optimizer);
  const previous = { epoch: state?.epoch ?? 0, reverseKLSteps: state?.reverseKLSteps ?? 0 };
  return { batchSize, adam, previous, lr0, schedule, onBatch: options.onBatch, signal };
}

/** Records where the run stands on the distribution (after every epoch or step). */
function keepState(dist: TrainableDistribution, c: Common, epoch: number, reverseKLSteps: number): void {
  dist.trainingState = { optimizer: c.adam.state(), epoch, reverseKLSteps };
}

function scheduledLr(c: Common, step: number, total: number): number {
  return c.schedule === 'constant' ? c.lr0 : 0.5 * c.lr0 * (1 + Math.cos((Math.PI * step) / total));
}

/** Runs one gradient computation, turning a flow's runtime error into one that names the step. */
function atStep(step: number, compute: () => number): number {
  let loss: number;
  try {
    loss = compute();
  } catch (err) {
    if (err instanceof FlowVaeError && (err.code === 'ERR_NAN' || err.code === 'ERR_NOT_CONVERGED')) {
      throw new FlowVaeError(err.code, `Training stopped at step ${step}: ${err.message}`, { cause: err });
    }
    throw err;
  }
  if (!Number.isFinite(loss)) throw new FlowVaeError('ERR_NAN', `Training diverged at step ${step}: the loss is ${loss}`);
  return loss;
}

function applyStep(c: Common, step: number): void {
  const norm = c.adam.step();
  if (!Number.isFinite(norm)) throw new FlowVaeError('ERR_NAN', `Training diverged at step ${step}: the gradient norm is ${norm}`);
}

const yieldToEventLoop = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

/** The rows of `data` after the checks training needs: width, non-empty, finite. */
function checkSamples(data: unknown, dim: number): FloatArray {
  let x: unknown = data;
  if (typeof data === 'object' && data !== null && !ArrayBuffer.isView(data) && 'x' in data) {
    const ds = data as Dataset;
    if (ds.dim !== dim) throw rangeError(`Expected rows of width ${dim} (the distribution's dim) in "data" but received width ${ds.dim}`, 'ERR_SHAPE');
    x = ds.x;
  }
  if (!(x instanceof Float32Array || x instanceof Float64Array)) throw typeError(expected('Float32Array, Float64Array or Dataset', 'data', x));
  if (x.length === 0) throw new FlowVaeError('ERR_DATA', '"data" is empty');
  if (x.length % dim !== 0) throw rangeError(expected(`array whose length is a multiple of dim ${dim}`, 'data', x), 'ERR_SHAPE');
  const bad = findNonFinite(x, dim);
  if (bad) throw new FlowVaeError('ERR_DATA', `"data" ${describeBadValue(bad.row, bad.column, bad.value)}`);
  return x;
}

/** The context of `n` data rows: required by a conditional distribution, refused by an unconditional one. */
function checkContextRows(dist: TrainableDistribution, context: unknown, n: number): FloatArray | null {
  if (dist.contextDim === 0) {
    if (context !== undefined) throw rangeError('"context" is for conditional distributions; this one has contextDim 0');
    return null;
  }
  if (context === undefined)
    throw typeError(`This distribution is conditional (contextDim ${dist.contextDim}): fit needs "context" [n, ${dist.contextDim}] beside the data`);
  if (!(context instanceof Float32Array || context instanceof Float64Array)) throw typeError(expected('Float32Array or Float64Array', 'context', context));
  if (context.length !== n * dist.contextDim) {
    throw rangeError(
      expected(`array of ${n} rows × contextDim ${dist.contextDim} = ${n * dist.contextDim} values (one row per data row)`, 'context', context),
      'ERR_SHAPE',
    );
  }
  const bad = findNonFinite(context, dist.contextDim);
  if (bad) throw new FlowVaeError('ERR_DATA', `"context" ${describeBadValue(bad.row, bad.column, bad.value)}`);
  return context;
}

export async function fitDensity(dist: TrainableDistribution, dataIn: FloatArray | Dataset, options: DensityFitOptions = {}): Promise<DistributionFitResult> {
  if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
  checkKnownKeys(options, 'options', DENSITY_KEYS);
  const dim = dist.dim;
  const data = checkSamples(dataIn, dim);
  const epochs = checkPositiveInt(options.epochs ?? 10, 'epochs');
  const seed = checkSize(options.seed ?? dist.seed, 'seed');
  if (options.onEpoch !== undefined && typeof options.onEpoch !== 'function') throw typeError(expected('function', 'onEpoch', options.onEpoch));
  const n = data.length / dim;
  const context = checkContextRows(dist, options.context, n);
  const cdim = dist.contextDim;
  const c = common(dist, options, 1e-3);
  const batchesPerEpoch = Math.ceil(n / c.batchSize);
  const total = epochs * batchesPerEpoch;
  const batchBuf = dist.backend.alloc(Math.min(c.batchSize, n) * dim);
  const contextBuf = context ? dist.backend.alloc(Math.min(c.batchSize, n) * cdim) : null;
  const losses = new Float64Array(total);
  const history: DensityEpochMetrics[] = [];
  let steps = 0;
  let stopped: DistributionFitResult['stopped'] = 'completed';
  const first = c.previous.epoch;
  for (let epoch = first; epoch < first + epochs && stopped === 'completed'; epoch++) {
    const t0 = performance.now();
    // The order of an epoch depends only on (seed, epoch); epochs count across calls.
    const order = permutation(n, seed, 1000 + epoch);
    let sum = 0;
    let seen = 0;
    for (let bi = 0; bi < batchesPerEpoch; bi++) {
      if (c.signal?.aborted) {
        stopped = 'aborted';
        break;
      }
      const start = bi * c.batchSize;
      const count = Math.min(c.batchSize, n - start);
      const xb = count * dim === batchBuf.length ? batchBuf : batchBuf.subarray(0, count * dim);
      const cb = contextBuf && context ? contextBuf.subarray(0, count * cdim) : undefined;
      for (let i = 0; i < count; i++) {
        const row = order[start + i];
        xb.set(data.subarray(row * dim, (row + 1) * dim), i * dim);
        if (cb) cb.set(context!.subarray(row * cdim, (row + 1) * cdim), i * cdim);
      }
      const step = steps + 1;
      c.adam.lr = scheduledLr(c, steps, total);
      const loss = atStep(step, () => dist.densityGradients(xb, cb));
      applyStep(c, step);
      losses[steps] = loss;
      steps = step;
      keepState(dist, c, epoch, c.previous.reverseKLSteps);
      sum += loss * count;
      seen += count;
      c.onBatch?.({
        step,
        steps: total,
        epoch: epoch + 1,
        loss,
        beta: 1,
        lr: c.adam.lr,
        samplesPerSecond: seen / ((performance.now() - t0) / 1000),
      });
      await yieldToEventLoop();
    }
    if (seen === 0) break;
    keepState(dist, c, epoch + 1, c.previous.reverseKLSteps);
    const metrics = { epoch: epoch + 1, loss: sum / seen, seconds: (performance.now() - t0) / 1000 };
    history.push(metrics);
    if (options.onEpoch) await options.onEpoch(metrics);
  }
  return { stopped, steps, losses: losses.slice(0, steps), epochs: history };
}

export async function fitReverseKL(dist: TrainableDistribution, target: TargetDensity, options: ReverseKLFitOptions = {}): Promise<DistributionFitResult> {
  if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
  checkKnownKeys(options, 'options', REVERSE_KL_KEYS);
  const total = checkPositiveInt(options.steps ?? 1000, 'steps');
  const warmup = checkSize(options.warmup ?? 0, 'warmup');
  const c = common(dist, options, 1e-2);
  const losses = new Float64Array(total);
  let steps = 0;
  let stopped: DistributionFitResult['stopped'] = 'completed';
  const t0 = performance.now();
  while (steps < total) {
    if (c.signal?.aborted) {
      stopped = 'aborted';
      break;
    }
    const step = steps + 1;
    const beta = warmup > 0 ? Math.min(1, 0.01 + (c.previous.reverseKLSteps + steps) / warmup) : 1;
    c.adam.lr = scheduledLr(c, steps, total);
    const loss = atStep(step, () => dist.reverseKLGradients(target, c.batchSize, { beta }));
    applyStep(c, step);
    losses[steps] = loss;
    steps = step;
    keepState(dist, c, c.previous.epoch, c.previous.reverseKLSteps + steps);
    c.onBatch?.({
      step,
      steps: total,
      epoch: 0,
      loss,
      beta,
      lr: c.adam.lr,
      samplesPerSecond: (step * c.batchSize) / ((performance.now() - t0) / 1000),
    });
    await yieldToEventLoop();
  }
  return { stopped, steps, losses: losses.slice(0, steps), epochs: [] };
}
