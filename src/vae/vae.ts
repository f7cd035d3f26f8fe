/**
 * Variational autoencoder composed of parts (DESIGN §3), each with explicit
 * forward/backward and named parameters:
 *
 *   encoder (Network) → posterior q(z | x) → z → decoder (Network) → likelihood p(x | z)
 *                                            prior p(z), objective (ELBO or IWAE)
 *
 * Built-ins: an MLP for both networks (or the user's own object, see
 * `Network`); diagonal, full-covariance and flow posteriors (posterior.ts);
 * standard-normal, learned Gaussian, Gaussian-mixture and flow priors
 * (prior.ts); Bernoulli, Gaussian, categorical and mixed likelihoods
 * (likelihood.ts); the ELBO and the importance-weighted bound (objective.ts).
 * Every computation goes through the backend contract, so the same model runs
 * on `reference` and `cpu` and, from the same seed, produces the same numbers
 * up to float32 rounding. ELBO per example:
 *
 *   log p(x | z_K) + log p(z_K) − log q0(z0) + Σ_k log|det J_k|
 *
 * with the KL term in closed form for Gaussian posteriors under N(0, I)
 * (the default for them) and sampled otherwise.
 */
import { resolveBackend } from '../backend';
import type { Backend } from '../backend/backend';
import type { BackendName, FloatArray } from '../backend/types';
import { FlowVaeError, expected, rangeError, typeError } from '../errors';
import { Workspace, type Flow } from '../flows/flow';
import type { Linear } from '../nn/linear';
import { checkNetwork, isNetwork, type GenerationOptions, type Network } from '../nn/network';
import { prefixBuffers, prefixParameters, zeroGrad, type NamedBuffer, type Parameter } from '../nn/parameter';
import { createDecoder, createEncoder, resolveNetwork, type NetworkOptions, type ResolvedNetwork } from './networks';
import type { Dataset } from '../data/dataset';
import { checkFiniteInput } from '../data/validate';
import {
  checkpointBytes,
  checkpointFileForLoad,
  checkpointFileForSave,
  decodeCheckpoint,
  metadataJson,
  readCheckpoint,
  restoreTensors,
  writeCheckpoint,
  type CheckpointParts,
} from '../io/checkpoint';
import type { SafetensorsContents, SafetensorsTensor } from '../io/safetensors';
import { trainExclusively } from '../train/exclusive';
import { fitVAE, type ElboTerms, type FitOptions, type FitResult, type TrainableModel, type TrainingState } from '../train/fit';
import { checkInRange, checkKnownKeys, checkOneOf, checkPositiveInt, checkSize } from '../validate';
import {
  GroupedLikelihood,
  groupOption,
  resolveLikelihood,
  type Likelihood,
  type LikelihoodGroup,
  type LikelihoodKind,
  type ResolvedGroup,
} from './likelihood';
import { averageTerms, createObjective, resolveObjective, type Objective, type ObjectiveSpec, type ResolvedObjective } from './objective';
import {
  DiagonalPosterior,
  FlowPosterior,
  createPosterior,
  resolvePosterior,
  type Posterior,
  type PosteriorHeads,
  type PosteriorSpec,
  type ResolvedPosterior,
} from './posterior';
import { createPrior, resolvePrior, type Prior, type PriorSpec, type ResolvedPrior } from './prior';

export type { ElboTerms } from '../train/fit';
export type { PosteriorSpec, FlowPosteriorSpec } from './posterior';

export type { LstmNetworkOptions, MlpOptions, NetworkOptions } from './networks';

export type KlEstimate = 'closed-form' | 'sampled';

export interface VAEOptions {
  inputDim: number;
  latentDim: number;
  /** An MLP trunk (its options) or an own network from inputDim to any width. */
  encoder?: NetworkOptions | Network;
  /** An MLP (its options) or an own network from latentDim to the likelihood's parameter width. */
  decoder?: NetworkOptions | Network;
  /** 'bernoulli' (default), 'gaussian', 'categorical' (one one-hot group), a list of column groups, or an own Likelihood. */
  likelihood?: LikelihoodKind | LikelihoodGroup[] | Likelihood;
  /** Gaussian likelihood: fixed log-variance (a number) or 'learned' per feature (default 'learned'). */
  likelihoodLogVar?: number | 'learned';
  /** 'diagonal' (default), 'full-covariance', a flow { flow, layers, amortized, … }, or an own Posterior. */
  posterior?: PosteriorSpec | Posterior;
  /** 'standard-normal' (default), 'learned-gaussian', { kind: 'mixture', components }, { kind: 'flow', flow, layers }, or an own Prior. */
  prior?: PriorSpec | Prior;
  /** 'elbo' (default) or { kind: 'iwae', samples: K }. */
  objective?: ObjectiveSpec;
  /**
   * How the KL term is estimated: 'closed-form' (Gaussian posteriors under
   * the standard normal prior; their default) or 'sampled', the single-sample
   * log q(z|x) − log p(z) that flow posteriors, other priors and IWAE need
   * (their default) and that the flow papers' code uses for every posterior.
   */
  kl?: KlEstimate;
  seed?: number;
  backend?: Backend | BackendName;
}

/** A part given as an object: its config records the class name, and `VAE.load` needs the object again. */
export interface CustomPart {
  custom: string;
}

/** The architecture as stored in checkpoints: every option resolved. */
export interface VAEConfig {
  inputDim: number;
  latentDim: number;
  encoder: ResolvedNetwork | CustomPart;
  decoder: ResolvedNetwork | CustomPart;
  likelihood: LikelihoodKind | LikelihoodGroup[] | CustomPart;
  likelihoodLogVar: number | 'learned';
  posterior: ResolvedPosterior | CustomPart;
  prior: ResolvedPrior | CustomPart;
  objective: ResolvedObjective;
  kl: KlEstimate;
  seed: number;
}

/** Parts given as objects when loading a checkpoint whose config names custom parts. */
export interface VAEParts {
  encoder?: Network;
  decoder?: Network;
  likelihood?: Likelihood;
  posterior?: Posterior;
  prior?: Prior;
}

export interface StepOptions {
  /** Weight of the KL term (warm-up); default 1. */
  beta?: number;
  /** Free bits λ: the KL term is max(KL, λ · latentDim) per batch (nats). */
  freeBits?: number;
  /** Noise stream offset (elements); the model's own counter when omitted. */
  noiseOffset?: number;
}

/** `format` metadata of VAE checkpoints. */
export const CHECKPOINT_FORMAT = 'flowvae-vae';
/** Version 2: the VAE of parts (prior, objective, likelihood groups, custom parts); version 1 files load unchanged. */
const CHECKPOINT_VERSION = '2';

const VAE_KEYS = [
  'inputDim',
  'latentDim',
  'encoder',
  'decoder',
  'likelihood',
  'likelihoodLogVar',
  'posterior',
  'prior',
  'objective',
  'kl',
  'seed',
  'backend',
] as const;
function isCustom(value: unknown): value is CustomPart {
  return typeof value === 'object' && value !== null && typeof (value as CustomPart).custom === 'string';
}

/** A part object's name for the config (its class name). */
function customName(part: object): CustomPart {
  return { custom: part.constructor?.name && part.constructor !== Object ? part.constructor.name : 'custom' };
}

function hasMethods(value: unknown, methods: readonly string[]): boolean {
  return typeof value === 'object' && value !== null && methods.every((m) => typeof (value as Record<string, unknown>)[m] === 'function');
}

const PRIOR_METHODS = ['logProb', 'backward', 'sample', 'parameters'] as const;
const LIKELIHOOD_METHODS = ['logProb', 'backward', 'decode', 'checkData', 'parameters'] as const;
const POSTERIOR_METHODS = ['encode', 'sample', 'sampleBackward', 'encodeBackward', 'parameters'] as const;

/** A part object must compute on the model's backend. */
function checkPartBackend(part: object, name: string, backend: Backend): void {
  const own = (part as { backend?: unknown }).backend;
  if (own !== undefined && own !== backend) {
    throw rangeError(`"${name}" computes on the ${(own as Backend).name} backend but the VAE on ${backend.name}; build it on the VAE's backend`);
  }
}

/** The likelihood option as stored in the config: the kind, or the groups in their option form. */
function likelihoodConfig(groups: readonly ResolvedGroup[], option: unknown): LikelihoodKind | LikelihoodGroup[] {
  if (typeof option === 'string' || option === undefined) return groups[0].kind;
  return groups.map((g) => groupOption(g));
}

/** Which part a checkpoint tensor belongs to, for messages. */
function partOfTensor(name: string): string {
  if (name.startsWith('encoder.net.')) return 'the encoder network';
  if (name.startsWith('encoder.') || name.startsWith('flow.')) return 'the posterior';
  if (name.startsWith('decoder.net.')) return 'the decoder network';
  if (name.startsWith('decoder.') || name.startsWith('likelihood.')) return 'the likelihood';
  if (name.startsWith('prior.')) return 'the prior';
  return 'the model';
}

export class VAE implements TrainableModel {
  readonly config: VAEConfig;
  readonly backend: Backend;
  readonly inputDim: number;
  readonly latentDim: number;

  /** The encoder trunk (x → h). */
  readonly encoder: Network;
  readonly posterior: Posterior;
  /** The decoder (z → the likelihood's parameters). */
  readonly decoder: Network;
  readonly likelihood: Likelihood;
  readonly prior: Prior;
  readonly objective: Objective;

  /** Next element of the training noise stream (saved in checkpoints). */
  noiseOffset = 0;
  /** State of the last (or loaded) training run: pass it as `fit(data, { resume })` to continue. */
  trainingState: TrainingState | undefined;

  private readonly ws: Workspace;
  /** The last forward: rows, examples, draws per example, the decoder's output, the data rows it scored, and its per-row terms. */
  private last = {
    rows: 0,
    examples: 0,
    samples: 1,
    out: null as FloatArray | null,
    x: null as FloatArray | null,
    logpx: null as FloatArray | null,
    kl: null as FloatArray | null,
    logw: null as FloatArray | null,
  };

  constructor(options: VAEOptions, parts: VAEParts = {}) {
    if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
    checkKnownKeys(options, 'options', VAE_KEYS);
    const inputDim = checkPositiveInt(options.inputDim, 'inputDim');
    const latentDim = checkPositiveInt(options.latentDim, 'latentDim');
    const seed = checkSize(options.seed ?? 0, 'seed');
    const backend = resolveBackend(options.backend);
    this.backend = backend;
    this.ws = new Workspace(backend);
    this.inputDim = inputDim;
    this.latentDim = latentDim;
    // A part is an object of the user's (or, loading a checkpoint, the object passed for its custom entry) or built from its options.
    const given = <T>(value: unknown, name: keyof VAEParts, methods: readonly string[] | null): T | null => {
      const part = isCustom(value) ? (parts[name] ?? null) : value;
      if (isCustom(value) && !part) {
        throw rangeError(`The model's ${name} is a custom part (${value.custom}); pass the object as parts.${name}`);
      }
      const isObject = methods ? hasMethods(part, methods) : isNetwork(part);
      if (!isObject) return null;
      checkPartBackend(part as object, name, backend);
      return part as T;
    };

    // Likelihood first: it fixes the decoder's output width.
    const likelihoodObject = given<Likelihood>(options.likelihood, 'likelihood', LIKELIHOOD_METHODS);
    let likelihoodSpec: VAEConfig['likelihood'];
    if (likelihoodObject) {
      if (likelihoodObject.dataDim !== inputDim)
        throw rangeError(`Expected "likelihood.dataDim" to be ${inputDim} (inputDim) but received ${likelihoodObject.dataDim}`, 'ERR_SHAPE');
      this.likelihood = likelihoodObject;
      likelihoodSpec = customName(likelihoodObject);
    } else {
      const groups = resolveLikelihood(options.likelihood as LikelihoodKind | LikelihoodGroup[] | undefined, options.likelihoodLogVar, inputDim);
      this.likelihood = new GroupedLikelihood(backend, groups);
      likelihoodSpec = likelihoodConfig(groups, options.likelihood);
    }
    const singleGaussian = typeof likelihoodSpec === 'string' && likelihoodSpec === 'gaussian';
    const logVar = singleGaussian ? (options.likelihoodLogVar ?? 'learned') : 'learned';

    const encoderObject = given<Network>(options.encoder, 'encoder', null);
    const enc = encoderObject ? null : resolveNetwork(options.encoder as NetworkOptions | undefined, 'encoder');
    // Seeds of the submodules are spread apart so their streams never overlap.
    this.encoder = encoderObject ? checkNetwork(encoderObject, 'encoder', { inDim: inputDim }) : createEncoder(backend, enc!, inputDim, seed);

    const posteriorObject = given<Posterior>(options.posterior, 'posterior', POSTERIOR_METHODS);
    const posteriorSpec = posteriorObject ? customName(posteriorObject) : resolvePosterior(options.posterior as PosteriorSpec | undefined);
    this.posterior = posteriorObject ?? createPosterior(backend, posteriorSpec as ResolvedPosterior, this.encoder.outDim, latentDim, seed);
    if (this.posterior.inDim !== this.encoder.outDim || this.posterior.latentDim !== latentDim) {
      throw rangeError(
        `The posterior reads rows of ${this.posterior.inDim} into ${this.posterior.latentDim} latents but the encoder gives ${this.encoder.outDim} and latentDim is ${latentDim}`,
        'ERR_SHAPE',
      );
    }

    const decoderObject = given<Network>(options.decoder, 'decoder', null);
    const dec = decoderObject ? null : resolveNetwork(options.decoder as NetworkOptions | undefined, 'decoder');
    if (dec && 'kind' in dec && !(this.likelihood instanceof GroupedLikelihood))
      throw rangeError('An LSTM decoder reads its step groups off a built-in likelihood');
    this.decoder = decoderObject
      ? checkNetwork(decoderObject, 'decoder', { inDim: latentDim, outDim: this.likelihood.paramDim })
      : createDecoder(backend, dec!, latentDim, (this.likelihood as GroupedLikelihood).groups, this.likelihood.paramDim, seed);

    const priorObject = given<Prior>(options.prior, 'prior', PRIOR_METHODS);
    const priorSpec = priorObject ? customName(priorObject) : resolvePrior(options.prior as PriorSpec | undefined);
    this.prior = priorObject ?? createPrior(backend, priorSpec as ResolvedPrior, latentDim, seed * 1000 + 400);
    if (this.prior.dim !== latentDim) throw rangeError(`Expected "prior.dim" to be ${latentDim} (latentDim) but received ${this.prior.dim}`, 'ERR_SHAPE');

    const objective = resolveObjective(options.objective);
    this.objective = createObjective(objective);
    const closedFormPossible = this.posterior.hasClosedFormKl && this.prior.standard && objective.kind === 'elbo';
    const kl = checkOneOf(options.kl ?? (closedFormPossible ? 'closed-form' : 'sampled'), 'kl', ['closed-form', 'sampled'] as const);
    if (kl === 'closed-form' && !closedFormPossible) {
      const why = !this.posterior.hasClosedFormKl
        ? `a ${this.posterior.kind} flow posterior has no closed-form KL`
        : !this.prior.standard
          ? `the KL to a ${this.prior.kind} prior has no closed form`
          : 'the IWAE objective weighs log q(z | x) of each draw';
      throw rangeError(`Expected "sampled" for "kl" but received "closed-form" (string): ${why}`);
    }
    this.config = {
      inputDim,
      latentDim,
      encoder: encoderObject ? customName(encoderObject) : enc!,
      decoder: decoderObject ? customName(decoderObject) : dec!,
      likelihood: likelihoodSpec,
      likelihoodLogVar: logVar,
      posterior: posteriorSpec,
      prior: priorSpec,
      objective,
      kl,
      seed,
    };
  }

  /** The posterior flow, if any. */
  get flow(): Flow | null {
    return this.posterior.flow;
  }

  /** The posterior's μ head (built-in posteriors). */
  get muHead(): Linear {
    if (!(this.posterior instanceof DiagonalPosterior)) throw rangeError('muHead belongs to the built-in posteriors');
    return this.posterior.muHead;
  }

  /** The posterior's context head (conditional flows), else null. */
  get contextHead(): Linear | null {
    return this.posterior instanceof FlowPosterior ? this.posterior.contextHead : null;
  }

  /**
   * Named parameters (PyTorch-style names; see README for the layout):
   * `encoder.net.*`, the posterior's (`encoder.mu|logvar|cov|flow|context.*`,
   * `flow.*`), `decoder.net.*`, the likelihood's (`decoder.logvar`,
   * `likelihood.*`), the prior's (`prior.*`). The order is the optimizer
   * state's order in checkpoints.
   */
  parameters(): Parameter[] {
    return [
      ...prefixParameters('encoder.net', this.encoder.parameters()),
      ...this.posterior.parameters(),
      ...prefixParameters('decoder.net', this.decoder.parameters()),
      ...this.likelihood.parameters(),
      ...this.prior.parameters(),
    ];
  }

  /**
   * Named state that is saved in checkpoints but not trained (e.g. ActNorm's
   * `flow.0.initialized`, a flow's fixed permutation).
   */
  namedBuffers(): NamedBuffer[] {
    return [
      ...prefixBuffers('encoder.net', this.encoder.buffers?.() ?? []),
      ...this.posterior.buffers(),
      ...prefixBuffers('decoder.net', this.decoder.buffers?.() ?? []),
      ...this.prior.buffers(),
    ];
  }

  private buf(name: string, length: number): FloatArray {
    return this.ws.get(name, length);
  }

  /** True when the KL term is computed in closed form (a Gaussian posterior with `kl: 'closed-form'`). */
  get closedFormKl(): boolean {
    return this.config.kl === 'closed-form';
  }

  // ---------------------------------------------------------------------------
  // Forward and backward, shared by training, evaluation and importance sampling.

  /** The posterior's heads for `x` `[batch, inputDim]`: everything of q(z | x) that does not depend on the noise. */
  private encodeHeads(x: FloatArray, batch: number, training = false): PosteriorHeads {
    return this.posterior.encode(this.encoder.forward(x, batch, { training }), batch);
  }

  /**
   * Runs posterior sample → decoder → likelihood and prior for `examples`
   * rows of `x` with `samples` draws each (rows example-major; noise `eps`
   * `[examples · samples, latentDim]`); fills per-row terms in the buffers
   * `logpx`, `kl` and `logw` = log p(x, z) − log q(z | x). `heads` are the
   * posterior's heads of the examples (encoded here when omitted).
   */
  private forward(x: FloatArray, eps: FloatArray, examples: number, samples = 1, heads?: PosteriorHeads, training = false): void {
    const rows = examples * samples;
    const own = heads ?? this.encodeHeads(x, examples, training);
    const rowHeads = samples === 1 ? own : this.repeatHeads(own, examples, samples);
    const xr = samples === 1 ? x : repeatRows(x, examples, samples, this.buf('repeat.x', rows * this.inputDim));
    const { z, logq } = this.posterior.sample(rowHeads, eps, rows, training);
    const out = this.decoder.forward(z, rows, { target: xr, training });
    const logpx = this.buf('logpx', rows);
    this.likelihood.logProb(xr, out, logpx, rows);
    const logpz = this.buf('logpz', rows);
    this.prior.logProb(z, logpz, rows, training);
    const kl = this.buf('kl', rows);
    const logw = this.buf('logw', rows);
    for (let r = 0; r < rows; r++) logw[r] = logpx[r] + logpz[r] - logq[r];
    if (this.closedFormKl) this.posterior.klStandard(rowHeads, kl, rows);
    else for (let r = 0; r < rows; r++) kl[r] = logq[r] - logpz[r];
    this.last = { rows, examples, samples, out, x: xr, logpx, kl, logw };
  }

  /** Each example's heads repeated `samples` times (rows example-major), in reusable buffers. */
  private repeatHeads(heads: PosteriorHeads, examples: number, samples: number): PosteriorHeads {
    const out: PosteriorHeads = {};
    for (const [key, a] of Object.entries(heads)) {
      if (a) out[key] = repeatRows(a, examples, samples, this.buf(`repeat.${key}`, a.length * samples));
    }
    return out;
  }

  /**
   * Backward of the loss Σ_r dLogpx[r]·log p(x_r | z_r) + dKl[r]·KL_r through
   * the last forward (weights from the objective); accumulates parameter gradients.
   */
  private backward(dLogpx: FloatArray, dKl: FloatArray): void {
    const { rows, examples, samples, out, x } = this.last;
    const dOut = this.buf('dOut', rows * this.likelihood.paramDim);
    this.likelihood.backward(x!, out!, dLogpx, dOut, rows);
    const dz = this.decoder.backward(dOut, true)!;
    let dHeads: PosteriorHeads;
    if (this.closedFormKl) {
      dHeads = this.posterior.sampleBackward(dz, null, dKl, rows);
    } else {
      // KL = log q(z | x) − log p(z), one sample per row.
      const dLogpz = this.buf('dLogpz', rows);
      for (let r = 0; r < rows; r++) dLogpz[r] = -dKl[r];
      this.prior.backward(dLogpz, dz, rows);
      dHeads = this.posterior.sampleBackward(dz, dKl, null, rows);
    }
    if (samples > 1) dHeads = this.sumDraws(dHeads, examples, samples);
    this.encoder.backward(this.posterior.encodeBackward(dHeads), false);
  }

  /** Head gradients of the draws of each example summed into one row per example. */
  private sumDraws(grads: PosteriorHeads, examples: number, samples: number): PosteriorHeads {
    const out: PosteriorHeads = {};
    for (const [key, g] of Object.entries(grads)) {
      const width = g.length / (examples * samples);
      const sum = this.buf(`sum.${key}`, examples * width);
      sum.fill(0);
      for (let i = 0; i < examples; i++) {
        for (let k = 0; k < samples; k++) {
          const from = (i * samples + k) * width;
          for (let j = 0; j < width; j++) sum[i * width + j] += g[from + j];
        }
      }
      out[key] = sum;
    }
    return out;
  }

  /** Draws `count` normals from the model's noise stream (or from `offset` of it). */
  private drawNoise(count: number, offset?: number): FloatArray {
    const eps = this.buf('eps', count);
    const at = offset ?? this.noiseOffset;
    this.backend.rng.normal(this.config.seed * 1000 + 7, at, eps);
    if (offset === undefined) this.noiseOffset += eps.length;
    return eps;
  }

  /**
   * The rows of an input the caller passed: shape, finite values (in the
   * backend's float range) and, with `values`, what the likelihood accepts
   * (e.g. [0, 1] for Bernoulli, one-hot groups); errors name the argument,
   * row and column.
   */
  private checkBatch(x: FloatArray, name = 'x', values = true): number {
    if (!(x instanceof Float32Array || x instanceof Float64Array)) throw typeError(expected('Float32Array or Float64Array', name, x));
    if (x.length === 0 || x.length % this.inputDim !== 0) {
      throw rangeError(expected(`array whose length is a positive multiple of inputDim ${this.inputDim}`, name, x), 'ERR_SHAPE');
    }
    if (!values) return x.length / this.inputDim;
    checkFiniteInput(x, this.inputDim, name, this.backend.dtype);
    this.checkData(x, name);
    return x.length / this.inputDim;
  }

  /** Throws ERR_DATA when `x` holds values the likelihood cannot score (the training loop's data check). */
  checkData(x: FloatArray, name: string): void {
    this.likelihood.checkData(x, name);
  }

  /** Copies `x` into a backend array (no copy when it already is one). */
  private onBackend(x: FloatArray, name: string): FloatArray {
    const isNative = this.backend.dtype === 'float32' ? x instanceof Float32Array : x instanceof Float64Array;
    if (isNative) return x;
    const copy = this.buf(`input.${name}`, x.length);
    copy.set(x);
    return copy;
  }

  /**
   * One gradient computation on a batch: zeroes the gradients, runs forward
   * and backward, and returns the batch's ELBO terms (and, for IWAE, the
   * bound as `objective`). The optimizer step is separate (see `train/`).
   * The hot path of training: it checks the batch's shape but not its values
   * (`fit` checks the whole data set once; scanning every batch again cost
   * 10% of an epoch); bad values end as ERR_NAN.
   */
  computeGradients(x: FloatArray, options: StepOptions = {}): ElboTerms {
    const batch = this.checkBatch(x, 'x', false);
    const beta = options.beta ?? 1;
    const freeBits = options.freeBits ?? 0;
    const samples = this.objective.samples;
    const xb = this.onBackend(x, 'x');
    const eps = this.drawNoise(batch * samples * this.latentDim, options.noiseOffset);
    this.forward(xb, eps, batch, samples, undefined, true);
    const rows = batch * samples;
    const dLogpx = this.buf('dLogpx', rows);
    const dKl = this.buf('dKl', rows);
    const terms = this.objective.weigh(this.last.logpx!, this.last.kl!, batch, { beta, freeBits, latentDim: this.latentDim }, dLogpx, dKl);
    if (!Number.isFinite(terms.elbo)) {
      const which = !Number.isFinite(terms.reconstruction) ? 'reconstruction' : 'kl';
      throw new FlowVaeError('ERR_NAN', `The ELBO is not finite (${which} term is ${terms[which]})`);
    }
    zeroGrad(this.parameters());
    this.backward(dLogpx, dKl);
    return terms;
  }

  /** Means of the last forward's per-row terms. */
  private averages(rows: number): ElboTerms {
    return averageTerms(this.last.logpx!, this.last.kl!, rows);
  }

  /**
   * Trains on `data` (`[n, inputDim]`, row-major) with Adam; resolves when
   * the run completes, stops early or is aborted through `options.signal`.
   */
  fit(data: FloatArray | Dataset, options: FitOptions = {}): Promise<FitResult> {
    return trainExclusively(this, 'This VAE', () => fitVAE(this, data, options));
  }

  // ---------------------------------------------------------------------------
  // Checkpoints.

  /**
   * Writes `<dir>/model.safetensors`: every parameter and buffer under its name
   * (PyTorch layouts), the architecture and the training state (optimizer moments,
   * noise offset, epoch) in the metadata. Written to a temporary file and
   * renamed, so an interrupted save leaves the previous checkpoint intact.
   */
  save(dir: string): string {
    const file = checkpointFileForSave(dir);
    writeCheckpoint(file, this.checkpointParts());
    return file;
  }

  /**
   * The checkpoint `save` writes, as bytes: the way to move a model to a
   * worker thread (`worker.postMessage(bytes, [bytes.buffer])`, then
   * `VAE.fromBytes(bytes)` there); a VAE itself cannot be structured-cloned.
   */
  toBytes(): Uint8Array {
    return checkpointBytes(this.checkpointParts());
  }

  /** A model from `toBytes()` output, on any backend (default: the current one). */
  static fromBytes(bytes: Uint8Array, options: LoadOptions = {}): VAE {
    const { contents, fail } = decodeCheckpoint(bytes, 'VAE bytes', 'VAE', CHECKPOINT_FORMAT);
    return VAE.fromCheckpoint(contents, fail, options);
  }

  private checkpointParts(): CheckpointParts {
    const metadata: Record<string, string> = {
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      config: JSON.stringify(this.config),
      noiseOffset: String(this.noiseOffset),
    };
    const extra: SafetensorsTensor[] = [];
    const t = this.trainingState;
    if (t) {
      const dtype = this.backend.dtype === 'float64' ? 'F64' : 'F32';
      extra.push({ name: 'optimizer.m', dtype, shape: [t.optimizer.m.length], data: t.optimizer.m });
      extra.push({ name: 'optimizer.v', dtype, shape: [t.optimizer.v.length], data: t.optimizer.v });
      // The best validation epoch's parameters (keepBest), so a resumed run keeps the best of the whole run.
      const best = t.bestParameters;
      if (best) this.parameters().forEach((p, i) => extra.push({ name: `training.best.${p.name}`, dtype, shape: [...p.shape], data: best[i] }));
      metadata.training = JSON.stringify({
        epoch: t.epoch,
        batch: t.batch,
        step: t.optimizer.step,
        noiseOffset: t.noiseOffset,
        bestValidationElbo: Number.isFinite(t.bestValidationElbo) ? t.bestValidationElbo : null,
        epochsWithoutImprovement: t.epochsWithoutImprovement,
      });
    }
    return { tensors: [...this.parameters(), ...this.namedBuffers()], dtype: this.backend.dtype, metadata, extra };
  }

  /**
   * Loads a model saved by `save` onto any backend (default: the current
   * one). A model with custom parts needs them again in `options.parts`
   * (built on the same backend); their tensors are checked against the file.
   */
  static load(dir: string, options: LoadOptions = {}): VAE {
    const file = checkpointFileForLoad(dir);
    const { contents, fail } = readCheckpoint(file, 'VAE', CHECKPOINT_FORMAT);
    return VAE.fromCheckpoint(contents, fail, options);
  }

  private static fromCheckpoint(contents: SafetensorsContents, failWhole: (what: string) => never, options: LoadOptions): VAE {
    checkKnownKeys(options, 'options', ['backend', 'parts']);
    // Tensor problems name the part they belong to.
    const fail = (what: string): never => {
      const name = /tensor "([^"]+)"/.exec(what)?.[1];
      return failWhole(name ? `${what} (${partOfTensor(name)})` : what);
    };
    const meta = contents.metadata;
    const config = metadataJson<VAEConfig>(contents, 'config', fail);
    let vae: VAE;
    try {
      vae = new VAE({ ...(config as unknown as VAEOptions), backend: options.backend }, options.parts ?? {});
    } catch (err) {
      return fail(`its architecture is invalid (${(err as Error).message})`);
    }
    const byName = restoreTensors(contents, [...vae.parameters(), ...vae.namedBuffers()], fail);
    vae.noiseOffset = Number(meta.noiseOffset ?? 0);
    if (meta.training) {
      const m = byName.get('optimizer.m') ?? fail('tensor "optimizer.m" is missing');
      const v = byName.get('optimizer.v') ?? fail('tensor "optimizer.v" is missing');
      const t = metadataJson<{
        epoch: number;
        batch?: number;
        step: number;
        noiseOffset: number;
        bestValidationElbo: number | null;
        epochsWithoutImprovement: number;
      }>(contents, 'training', fail);
      byName.delete('optimizer.m');
      byName.delete('optimizer.v');
      // Best parameters: all of them or none (checkpoints from before they were saved have none).
      const params = vae.parameters();
      const best = params.map((p) => byName.get(`training.best.${p.name}`));
      if (best.some((b) => b) && best.some((b, i) => !b || b.data.length !== params[i].value.length)) {
        fail(`the best-epoch parameters ("training.best.*") do not match the model's parameters`);
      }
      params.forEach((p) => byName.delete(`training.best.${p.name}`));
      vae.trainingState = {
        epoch: t.epoch,
        batch: t.batch ?? 0,
        optimizer: { step: t.step, m: vae.backend.from(m.data), v: vae.backend.from(v.data) },
        noiseOffset: t.noiseOffset,
        bestValidationElbo: t.bestValidationElbo ?? -Infinity,
        epochsWithoutImprovement: t.epochsWithoutImprovement,
        bestParameters: best[0] ? best.map((b) => vae.backend.from(b!.data)) : null,
      };
    }
    if (byName.size > 0) fail(`unexpected tensor "${[...byName.keys()][0]}": the file's part does not match the model's`);
    return vae;
  }

  // ---------------------------------------------------------------------------
  // Evaluation.

  /**
   * ELBO of `x` averaged over examples and `samples` posterior draws (noise
   * from stream `seed`, independent of training).
   */
  elbo(x: FloatArray, options: { samples?: number; seed?: number; batch?: number } = {}): ElboTerms {
    checkKnownKeys(options, 'options', ['samples', 'seed', 'batch']);
    const n = this.checkBatch(x);
    const samples = checkPositiveInt(options.samples ?? 1, 'samples');
    const chunk = checkPositiveInt(options.batch ?? 500, 'batch');
    const seed = checkSize(options.seed ?? 12345, 'seed');
    let rec = 0;
    let kl = 0;
    let offset = 0;
    for (let start = 0; start < n; start += chunk) {
      const rows = Math.min(chunk, n - start);
      const xb = this.onBackend(x.subarray(start * this.inputDim, (start + rows) * this.inputDim), 'eval');
      for (let s = 0; s < samples; s++) {
        const eps = this.buf('eps', rows * this.latentDim);
        this.backend.rng.normal(seed, offset, eps);
        offset += eps.length;
        this.forward(xb, eps, rows);
        const t = this.averages(rows);
        rec += t.reconstruction * rows;
        kl += t.kl * rows;
      }
    }
    const denom = n * samples;
    return { elbo: (rec - kl) / denom, reconstruction: rec / denom, kl: kl / denom };
  }

  /**
   * Importance-sampled log-likelihood log p(x) ≈ logsumexp_s(log p(x, z_s) −
   * log q(z_s | x)) − log S per example (S = `samples`, 5000 in the papers),
   * evaluated `batch` samples at a time so any S fits in memory. Returns the
   * per-example estimates and their mean.
   */
  logLikelihood(x: FloatArray, options: { samples?: number; batch?: number; seed?: number } = {}): { mean: number; perExample: Float64Array } {
    checkKnownKeys(options, 'options', ['samples', 'batch', 'seed']);
    const run = this.likelihoodRun(x, options);
    for (let i = 0; i < run.n; i++) run.example(i);
    return { mean: meanOf(run.perExample), perExample: run.perExample };
  }

  /**
   * `logLikelihood` as a long job: the same numbers, computed an example at a
   * time with a yield to the event loop about every 100 ms, so `onProgress`
   * (examples done, of n) runs and `signal` stops it after the current
   * example. Resolves with the examples done (all unless aborted).
   */
  async logLikelihoodAsync(
    x: FloatArray,
    options: {
      samples?: number;
      batch?: number;
      seed?: number;
      signal?: AbortSignal;
      onProgress?: (done: number, total: number) => void;
    } = {},
  ): Promise<{ mean: number; perExample: Float64Array; stopped: 'completed' | 'aborted' }> {
    checkKnownKeys(options, 'options', ['samples', 'batch', 'seed', 'signal', 'onProgress']);
    const { signal, onProgress } = options;
    if (onProgress !== undefined && typeof onProgress !== 'function') throw typeError(expected('function', 'onProgress', onProgress));
    const run = this.likelihoodRun(x, options);
    let done = 0;
    let lastYield = performance.now();
    while (done < run.n && !signal?.aborted) {
      run.example(done);
      done += 1;
      if (performance.now() - lastYield > 100 || done === run.n) {
        onProgress?.(done, run.n);
        await new Promise<void>((resolve) => setImmediate(resolve));
        lastYield = performance.now();
      }
    }
    const perExample = run.perExample.slice(0, done);
    return { mean: done > 0 ? meanOf(perExample) : NaN, perExample, stopped: done < run.n ? 'aborted' : 'completed' };
  }

  /**
   * The importance-sampling state of a `logLikelihood` call: `example(i)`
   * fills `perExample[i]`; examples must be taken in order (each continues
   * the noise stream where the previous one stopped).
   */
  private likelihoodRun(
    x: FloatArray,
    options: { samples?: number; batch?: number; seed?: number },
  ): { n: number; perExample: Float64Array; example: (i: number) => void } {
    const n = this.checkBatch(x);
    const S = checkPositiveInt(options.samples ?? 5000, 'samples');
    const chunk = Math.min(S, checkPositiveInt(options.batch ?? 500, 'batch'));
    const seed = checkSize(options.seed ?? 54321, 'seed');
    const D = this.inputDim;
    const perExample = new Float64Array(n);
    let offset = 0;
    const example = (i: number): void => {
      // q(z | x) is the same for every sample of this example: encode it once
      // and repeat the head outputs, so each sample costs only the flow and decoder.
      const row = this.onBackend(x.subarray(i * D, (i + 1) * D), 'iw.row');
      const heads = this.encodeHeads(row, 1);
      // Streaming logsumexp over all S weights.
      let max = -Infinity;
      let sum = 0;
      for (let done = 0; done < S; done += chunk) {
        const m = Math.min(chunk, S - done);
        const eps = this.buf(`iw.eps.${m}`, m * this.latentDim);
        this.backend.rng.normal(seed, offset, eps);
        offset += eps.length;
        this.forward(row, eps, 1, m, heads);
        const logw = this.last.logw!;
        for (let r = 0; r < m; r++) {
          const v = logw[r];
          if (v > max) {
            sum = sum * Math.exp(max - v) + 1;
            max = v;
          } else {
            sum += Math.exp(v - max);
          }
        }
      }
      perExample[i] = max + Math.log(sum) - Math.log(S);
    };
    return { n, perExample, example };
  }

  /**
   * Active units (Burda et al. 2016): per latent dimension d the variance over
   * the rows of `x` of E_q[z_d | x], and how many exceed `threshold` (0.01).
   * E_q[z] is μ(x) for Gaussian posteriors; with a flow it is the mean of
   * `samples` draws of z_K, or the flow applied to μ(x) when `samples` is 0
   * (one deterministic pass: the cheap form training reports every epoch).
   * Collapsed dimensions (posterior equal to the prior) are inactive.
   */
  activeUnits(x: FloatArray, options: { threshold?: number; samples?: number; seed?: number } = {}): { count: number; variance: Float64Array } {
    checkKnownKeys(options, 'options', ['threshold', 'samples', 'seed']);
    const n = this.checkBatch(x);
    const threshold = checkInRange(options.threshold ?? 0.01, 'threshold', 0, Infinity);
    const samples = checkSize(options.samples ?? 10, 'samples');
    const seed = checkSize(options.seed ?? 4242, 'seed');
    const D = this.latentDim;
    const means = new Float64Array(n * D);
    const chunk = 500;
    let offset = 0;
    for (let start = 0; start < n; start += chunk) {
      const rows = Math.min(chunk, n - start);
      // Only the posterior: the decoder plays no part in E_q[z].
      const heads = this.encodeHeads(this.onBackend(x.subarray(start * this.inputDim, (start + rows) * this.inputDim), 'units'), rows);
      if (!this.posterior.flow) {
        means.set(heads.mu, start * D); // Gaussian posteriors: E_q[z] = μ
        continue;
      }
      const eps = this.buf('units.eps', rows * D);
      if (samples === 0) {
        eps.fill(0); // f(μ)
        means.set(this.posterior.sample(heads, eps, rows).z, start * D);
        continue;
      }
      for (let s = 0; s < samples; s++) {
        this.backend.rng.normal(seed, offset, eps);
        offset += eps.length;
        const z = this.posterior.sample(heads, eps, rows).z;
        for (let i = 0; i < rows * D; i++) means[start * D + i] += z[i] / samples;
      }
    }
    const variance = new Float64Array(D);
    for (let d = 0; d < D; d++) {
      let mean = 0;
      for (let r = 0; r < n; r++) mean += means[r * D + d];
      mean /= n;
      let v = 0;
      for (let r = 0; r < n; r++) v += (means[r * D + d] - mean) ** 2;
      variance[d] = v / n;
    }
    return { count: variance.filter((v) => v > threshold).length, variance };
  }

  /**
   * The closed-form KL(q(z_d | x) ‖ N(0, 1)) per latent dimension, averaged
   * over the rows of `x` (nats): where the KL term goes, and which dimensions
   * collapsed. Diagonal posteriors under the standard normal prior only (for the others the KL does not split
   * by dimension); null otherwise.
   */
  klPerDimension(x: FloatArray): Float64Array | null {
    const n = this.checkBatch(x);
    if (this.config.posterior !== 'diagonal' || !this.prior.standard) return null;
    const D = this.latentDim;
    const out = new Float64Array(D);
    const chunk = 500;
    for (let start = 0; start < n; start += chunk) {
      const rows = Math.min(chunk, n - start);
      const heads = this.encodeHeads(this.onBackend(x.subarray(start * this.inputDim, (start + rows) * this.inputDim), 'kl'), rows);
      for (let r = 0; r < rows; r++) {
        for (let d = 0; d < D; d++) {
          const mu = heads.mu[r * D + d];
          const lv = heads.lv[r * D + d];
          out[d] += (0.5 * (mu * mu + Math.exp(lv) - 1 - lv)) / n;
        }
      }
    }
    return out;
  }

  /** Posterior means μ(x) `[n, latentDim]` (a copy). */
  encode(x: FloatArray): FloatArray {
    const n = this.checkBatch(x);
    const heads = this.encodeHeads(this.onBackend(x, 'x'), n);
    if (!heads.mu) throw rangeError(`The ${this.posterior.kind} posterior gives no mean head "mu" to encode with`);
    return this.backend.from(heads.mu);
  }

  /**
   * The likelihood's natural values for latent codes `z` `[n, latentDim]` (a
   * copy, `[n, inputDim]`): Bernoulli probabilities, Gaussian means,
   * categorical probabilities (one-hot groups) or class indices (index groups).
   */
  decode(z: FloatArray, options: DecodeOptions = {}): FloatArray {
    if (!(z instanceof Float32Array || z instanceof Float64Array)) throw typeError(expected('Float32Array or Float64Array', 'z', z));
    if (z.length === 0 || z.length % this.latentDim !== 0) {
      throw rangeError(expected(`array whose length is a positive multiple of latentDim ${this.latentDim}`, 'z', z), 'ERR_SHAPE');
    }
    checkFiniteInput(z, this.latentDim, 'z', this.backend.dtype);
    const n = z.length / this.latentDim;
    return this.likelihood.decode(this.decoder.forward(this.onBackend(z, 'z'), n, { generation: checkGeneration(options) }), n);
  }

  /**
   * Decodes `steps` points on the line between the posterior means of the
   * rows `a` and `b` (`[inputDim]` each), ends included: `[steps, inputDim]`.
   */
  interpolate(a: FloatArray, b: FloatArray, steps: number, options: DecodeOptions = {}): FloatArray {
    checkIntegerAtLeast(steps, 'steps', 2);
    if (a.length !== this.inputDim) throw rangeError(expected(`array of inputDim ${this.inputDim} values`, 'a', a), 'ERR_SHAPE');
    if (b.length !== this.inputDim) throw rangeError(expected(`array of inputDim ${this.inputDim} values`, 'b', b), 'ERR_SHAPE');
    const both = this.backend.alloc(2 * this.inputDim);
    both.set(a);
    both.set(b, this.inputDim);
    const codes = this.encode(both);
    const D = this.latentDim;
    const z = this.backend.alloc(steps * D);
    for (let s = 0; s < steps; s++) {
      const t = s / (steps - 1);
      for (let d = 0; d < D; d++) z[s * D + d] = (1 - t) * codes[d] + t * codes[D + d];
    }
    return this.decode(z, options);
  }

  /** Reconstructions: the likelihood's natural values at the posterior sample z_K of each input (noise from `seed`). */
  reconstruct(x: FloatArray, options: { seed?: number } = {}): FloatArray {
    const n = this.checkBatch(x);
    const eps = this.buf('eps', n * this.latentDim);
    this.backend.rng.normal(checkSize(options.seed ?? 777, 'seed'), 0, eps);
    this.forward(this.onBackend(x, 'x'), eps, n);
    return this.likelihood.decode(this.last.out!, n);
  }

  /**
   * `n` samples from the model: the likelihood's natural values at z ~ p(z).
   * Without a seed the draws continue the model's noise stream (fresh
   * samples on every call, as `FlowDistribution.sample`; the stream's
   * position is saved with the model); with `seed` they are elements 0… of
   * stream `seed`. A mixture prior picks components with uniforms from the
   * same stream, after the normals.
   */
  sample(n: number, options: { seed?: number } & DecodeOptions = {}): FloatArray {
    checkPositiveInt(n, 'n');
    checkKnownKeys(options, 'options', ['seed', 'mode', 'temperature', 'generationSeed']);
    const count = n * this.latentDim;
    const u = this.buf('sample.u', n);
    let eps: FloatArray;
    if (options.seed === undefined) {
      eps = this.drawNoise(count);
      if (this.prior.usesUniforms) {
        this.backend.rng.uniform(this.config.seed * 1000 + 7, this.noiseOffset, u);
        this.noiseOffset += n;
      }
    } else {
      const seed = checkSize(options.seed, 'seed');
      eps = this.backend.alloc(count);
      this.backend.rng.normal(seed, 0, eps);
      if (this.prior.usesUniforms) this.backend.rng.uniform(seed, count, u);
    }
    const z = this.backend.from(this.prior.sample(eps, u, n));
    const { mode, temperature, generationSeed } = options;
    return this.decode(z, { mode, temperature, generationSeed });
  }
}

/** How `decode`, `sample` and `interpolate` generate with an autoregressive decoder (others ignore it). */
export interface DecodeOptions {
  /** 'greedy' (default): each step's most likely category fed back; 'sample': drawn from its softmax. */
  mode?: 'greedy' | 'sample';
  /** Temperature of the sampled softmax (default 1). */
  temperature?: number;
  /** Stream of the sampled choices (default 0). */
  generationSeed?: number;
}

function checkGeneration(options: DecodeOptions): GenerationOptions {
  checkKnownKeys(options, 'options', ['mode', 'temperature', 'generationSeed', 'seed']);
  const mode = checkOneOf(options.mode ?? 'greedy', 'mode', ['greedy', 'sample'] as const);
  const temperature = checkInRange(options.temperature ?? 1, 'temperature', 0, 100, { lo: true });
  if (mode === 'greedy' && options.temperature !== undefined) throw rangeError('"temperature" applies to mode "sample"');
  return { mode, temperature, seed: checkSize(options.generationSeed ?? 0, 'generationSeed') };
}

function checkIntegerAtLeast(value: unknown, name: string, least: number): number {
  const v = checkPositiveInt(value, name);
  if (v < least) throw rangeError(expected(`integer ≥ ${least}`, name, value));
  return v;
}

/** Rows of `src` (`rows` of them) each repeated `times` times into `dst`. */
function repeatRows(src: FloatArray, rows: number, times: number, dst: FloatArray): FloatArray {
  const width = src.length / rows;
  for (let r = 0; r < rows; r++) {
    const row = src.subarray(r * width, (r + 1) * width);
    for (let k = 0; k < times; k++) dst.set(row, (r * times + k) * width);
  }
  return dst;
}

function meanOf(values: Float64Array): number {
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

export interface LoadOptions {
  backend?: Backend | BackendName;
  /** The custom parts of a model saved with them (see `VAEParts`). */
  parts?: VAEParts;
}
