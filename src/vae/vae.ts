/**
 * Variational autoencoder with a diagonal Gaussian, full-covariance Gaussian
 * or flow posterior (Rezende & Mohamed 2015; Kingma et al. 2016; van den Berg
 * et al. 2018). Every computation goes through the backend contract, so the
 * same model runs on `reference` and `cpu` and, from the same seed, produces
 * the same numbers up to float32 rounding.
 *
 * Posterior: z0 = μ + L ε with L = diag(σ) (diagonal) or L* + diag(σ)
 * (full covariance, L* strictly lower triangular), then z_K = f_K ∘ … ∘ f_1(z0)
 * when a flow is configured; amortized flows take their parameters per example
 * from an encoder head. ELBO per example:
 *
 *   log p(x | z_K) + log p(z_K) − log q0(z0) + Σ_k log|det J_k|
 *
 * with the KL term in closed form when there is no flow.
 */
import { resolveBackend } from '../backend';
import type { Backend } from '../backend/backend';
import { ACTIVATIONS, type Activation } from '../backend/kernels/elementwise';
import type { BackendName, FloatArray } from '../backend/types';
import { FlowVaeError, expected, rangeError, typeError } from '../errors';
import type { Flow } from '../flows/flow';
import { FLOW_FAMILIES } from '../flows';
import { Linear } from '../nn/linear';
import { MLP } from '../nn/mlp';
import { prefixBuffers, prefixParameters, zeroGrad, type NamedBuffer, type Parameter } from '../nn/parameter';
import type { Dataset } from '../data/dataset';
import { checkBernoulliRange, checkFiniteInput } from '../data/validate';
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

export type { ElboTerms } from '../train/fit';

export type Likelihood = 'bernoulli' | 'gaussian';

export interface FlowPosterior {
  /** A registered flow family, e.g. 'planar', 'radial', 'sylvester-orthogonal', 'iaf'. */
  flow: string;
  /** Number of flow layers K (default 4). */
  layers?: number;
  /** Parameters produced per example by the encoder (default: true where the family allows it). */
  amortized?: boolean;
  /** Family-specific options passed to the flow (e.g. `m`, `householders`, `hidden`). */
  [option: string]: unknown;
}

export type Posterior = 'diagonal' | 'full-covariance' | FlowPosterior;

export interface NetworkOptions {
  /** Hidden layer widths (default [300, 300]). */
  hidden?: number[];
  /** Activation, one of ACTIVATIONS (default 'relu'). */
  activation?: Activation;
}

export interface VAEOptions {
  inputDim: number;
  latentDim: number;
  encoder?: NetworkOptions;
  decoder?: NetworkOptions;
  likelihood?: Likelihood;
  /** Gaussian likelihood: fixed log-variance (a number) or 'learned' per feature (default 'learned'). */
  likelihoodLogVar?: number | 'learned';
  posterior?: Posterior;
  /**
   * How the KL term is estimated: 'closed-form' (Gaussian posteriors only;
   * their default) or 'sampled', the single-sample log q(z|x) − log p(z) that
   * flow posteriors need (their default) and that the flow papers' code uses
   * for every posterior, the diagonal baseline included.
   */
  kl?: KlEstimate;
  seed?: number;
  backend?: Backend | BackendName;
}

export type KlEstimate = 'closed-form' | 'sampled';

/** The architecture as stored in checkpoints: every option resolved. */
export interface VAEConfig {
  inputDim: number;
  latentDim: number;
  encoder: { hidden: number[]; activation: Activation };
  decoder: { hidden: number[]; activation: Activation };
  likelihood: Likelihood;
  likelihoodLogVar: number | 'learned';
  posterior: 'diagonal' | 'full-covariance' | (FlowPosterior & { layers: number; amortized: boolean });
  kl: KlEstimate;
  seed: number;
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

const VAE_KEYS = ['inputDim', 'latentDim', 'encoder', 'decoder', 'likelihood', 'likelihoodLogVar', 'posterior', 'kl', 'seed', 'backend'] as const;
const NET_KEYS = ['hidden', 'activation'] as const;

function resolveNetwork(value: NetworkOptions | undefined, name: string): { hidden: number[]; activation: Activation } {
  const net = value ?? {};
  if (typeof net !== 'object' || net === null) throw typeError(expected('object', name, net));
  checkKnownKeys(net, name, NET_KEYS);
  const hidden = net.hidden ?? [300, 300];
  if (!Array.isArray(hidden)) throw typeError(expected('array of positive integers', `${name}.hidden`, hidden));
  hidden.forEach((h, i) => checkPositiveInt(h, `${name}.hidden[${i}]`));
  const activation = checkOneOf(net.activation ?? 'relu', `${name}.activation`, ACTIVATIONS);
  return { hidden: [...hidden], activation };
}

function resolvePosterior(value: Posterior | undefined): VAEConfig['posterior'] {
  const p = value ?? 'diagonal';
  if (p === 'diagonal' || p === 'full-covariance') return p;
  if (typeof p !== 'object' || p === null) {
    throw (typeof p === 'string' ? rangeError : typeError)(
      expected('"diagonal", "full-covariance" or { flow, layers, amortized }', 'posterior', p),
    );
  }
  const names = Object.keys(FLOW_FAMILIES);
  const flow = checkOneOf(p.flow, 'posterior.flow', names);
  const family = FLOW_FAMILIES[flow];
  const layers = checkPositiveInt(p.layers ?? 4, 'posterior.layers');
  const amortized = p.amortized ?? family.amortizable;
  if (typeof amortized !== 'boolean') throw typeError(expected('boolean', 'posterior.amortized', amortized));
  if (amortized && !family.amortizable) throw rangeError(`The ${flow} flow cannot be amortized; set "posterior.amortized" to false`);
  if (!amortized && !family.shareable) throw rangeError(`The ${flow} flow needs amortized parameters; set "posterior.amortized" to true`);
  return { ...p, flow, layers, amortized };
}


export class VAE implements TrainableModel {
  readonly config: VAEConfig;
  readonly backend: Backend;
  readonly inputDim: number;
  readonly latentDim: number;

  readonly encoder: MLP;
  readonly muHead: Linear;
  readonly logvarHead: Linear;
  /** Strictly lower-triangular factor L* per example (full covariance only). */
  readonly covarianceHead: Linear | null;
  /** Amortized flow parameters per example. */
  readonly flowHead: Linear | null;
  /** Context vector per example (conditional flows such as IAF). */
  readonly contextHead: Linear | null;
  readonly flow: Flow | null;
  readonly decoder: MLP;
  /** Learned per-feature log-variance of a Gaussian likelihood. */
  readonly outputLogVar: Parameter | null;

  /** Next element of the training noise stream (saved in checkpoints). */
  noiseOffset = 0;
  /** State of the last (or loaded) training run: pass it as `fit(data, { resume })` to continue. */
  trainingState: TrainingState | undefined;

  private readonly fixedLogVar: FloatArray | null;
  private readonly buffers = new Map<string, FloatArray>();
  private lastBatch = 0;

  constructor(options: VAEOptions) {
    if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
    checkKnownKeys(options, 'options', VAE_KEYS);
    const inputDim = checkPositiveInt(options.inputDim, 'inputDim');
    const latentDim = checkPositiveInt(options.latentDim, 'latentDim');
    const likelihood = checkOneOf(options.likelihood ?? 'bernoulli', 'likelihood', ['bernoulli', 'gaussian'] as const);
    const logVar = options.likelihoodLogVar ?? 'learned';
    if (logVar !== 'learned' && (typeof logVar !== 'number' || !Number.isFinite(logVar))) {
      throw (typeof logVar === 'number' ? rangeError : typeError)(expected('finite number or "learned"', 'likelihoodLogVar', logVar));
    }
    const seed = checkSize(options.seed ?? 0, 'seed');
    const posterior = resolvePosterior(options.posterior);
    const gaussian = typeof posterior === 'string';
    const kl = checkOneOf(options.kl ?? (gaussian ? 'closed-form' : 'sampled'), 'kl', ['closed-form', 'sampled'] as const);
    if (kl === 'closed-form' && !gaussian) {
      throw rangeError(`Expected "sampled" for "kl" but received "closed-form" (string): a ${posterior.flow} flow posterior has no closed-form KL`);
    }
    this.config = {
      inputDim,
      latentDim,
      encoder: resolveNetwork(options.encoder, 'encoder'),
      decoder: resolveNetwork(options.decoder, 'decoder'),
      likelihood,
      likelihoodLogVar: logVar,
      posterior,
      kl,
      seed,
    };
    this.backend = resolveBackend(options.backend);
    this.inputDim = inputDim;
    this.latentDim = latentDim;
    const b = this.backend;
    const enc = this.config.encoder;
    const trunkWidth = enc.hidden.length > 0 ? enc.hidden[enc.hidden.length - 1] : inputDim;
    // Seeds of the submodules are spread apart so their streams never overlap.
    this.encoder = new MLP(b, { sizes: [inputDim, ...enc.hidden], activation: enc.activation, seed: seed * 1000 + 1, activateOutput: true });
    this.muHead = new Linear(b, { inDim: trunkWidth, outDim: latentDim, seed: seed * 1000 + 101 });
    this.logvarHead = new Linear(b, { inDim: trunkWidth, outDim: latentDim, seed: seed * 1000 + 102 });
    const post = this.config.posterior;
    this.covarianceHead =
      post === 'full-covariance' && latentDim > 1
        ? new Linear(b, { inDim: trunkWidth, outDim: (latentDim * (latentDim - 1)) / 2, seed: seed * 1000 + 103, initScale: 0.1 })
        : null;
    if (typeof post === 'object') {
      const { flow, layers, amortized, ...extra } = post;
      this.flow = FLOW_FAMILIES[flow].create({ dim: latentDim, layers, amortized, seed: seed * 1000 + 200, backend: b, extra });
    } else {
      this.flow = null;
    }
    // Flow heads start small so the posterior starts close to the base Gaussian.
    this.flowHead =
      this.flow && this.flow.amortizedSize > 0
        ? new Linear(b, { inDim: trunkWidth, outDim: this.flow.amortizedSize, seed: seed * 1000 + 104, initScale: 0.1 })
        : null;
    this.contextHead =
      this.flow && this.flow.contextDim > 0
        ? new Linear(b, { inDim: trunkWidth, outDim: this.flow.contextDim, seed: seed * 1000 + 105 })
        : null;
    const dec = this.config.decoder;
    this.decoder = new MLP(b, { sizes: [latentDim, ...dec.hidden, inputDim], activation: dec.activation, seed: seed * 1000 + 301 });
    if (likelihood === 'gaussian' && logVar === 'learned') {
      this.outputLogVar = { name: 'decoder.logvar', shape: [inputDim], value: b.alloc(inputDim), grad: b.alloc(inputDim) };
      this.fixedLogVar = null;
    } else {
      this.outputLogVar = null;
      this.fixedLogVar = likelihood === 'gaussian' ? b.alloc(inputDim).fill(logVar as number) : null;
    }
  }

  /** Named parameters (PyTorch-style names; see README for the module layout). */
  parameters(): Parameter[] {
    const heads: [string, Linear | null][] = [
      ['encoder.mu', this.muHead],
      ['encoder.logvar', this.logvarHead],
      ['encoder.cov', this.covarianceHead],
      ['encoder.flow', this.flowHead],
      ['encoder.context', this.contextHead],
    ];
    return [
      ...prefixParameters('encoder.net', this.encoder.parameters()),
      ...heads.flatMap(([name, head]) => (head ? prefixParameters(name, head.parameters()) : [])),
      ...(this.flow ? prefixParameters('flow', this.flow.parameters()) : []),
      ...prefixParameters('decoder.net', this.decoder.parameters()),
      ...(this.outputLogVar ? [this.outputLogVar] : []),
    ];
  }

  /**
   * Named state that is saved in checkpoints but not trained (e.g. ActNorm's
   * `flow.0.initialized`, a flow's fixed permutation).
   */
  namedBuffers(): NamedBuffer[] {
    return this.flow?.buffers ? prefixBuffers('flow', this.flow.buffers()) : [];
  }

  private buf(name: string, length: number): FloatArray {
    let a = this.buffers.get(name);
    if (!a || a.length !== length) {
      a = this.backend.alloc(length);
      this.buffers.set(name, a);
    }
    return a;
  }

  private get logVar(): FloatArray | null {
    return this.outputLogVar ? this.outputLogVar.value : this.fixedLogVar;
  }

  /** True when the KL term is computed in closed form (a Gaussian posterior with `kl: 'closed-form'`). */
  get closedFormKl(): boolean {
    return this.config.kl === 'closed-form';
  }

  // ---------------------------------------------------------------------------
  // Forward pass shared by training, evaluation and importance sampling.

  /** Encoder trunk and heads for `x` `[batch, inputDim]`: everything of q(z | x) that does not depend on the noise. */
  private encodeHeads(x: FloatArray, batch: number): PosteriorHeads {
    const h = this.encoder.forward(x, batch);
    return {
      mu: this.muHead.forward(h, batch),
      lv: this.logvarHead.forward(h, batch),
      cov: this.covarianceHead ? this.covarianceHead.forward(h, batch) : null,
      params: this.flowHead ? this.flowHead.forward(h, batch) : undefined,
      context: this.contextHead ? this.contextHead.forward(h, batch) : undefined,
    };
  }

  /** The heads of one example repeated `rows` times (in reusable buffers). */
  private tileHeads(one: PosteriorHeads, rows: number): PosteriorHeads {
    const tile = (name: string, src: FloatArray): FloatArray => {
      const dst = this.buf(`iw.${name}`, rows * src.length);
      for (let r = 0; r < rows; r++) dst.set(src, r * src.length);
      return dst;
    };
    return {
      mu: tile('mu', one.mu),
      lv: tile('lv', one.lv),
      cov: one.cov && tile('cov', one.cov),
      params: one.params && tile('params', one.params),
      context: one.context && tile('context', one.context),
    };
  }

  /**
   * Runs encoder → posterior sample → decoder for `x` `[batch, inputDim]` with
   * noise `eps` `[batch, latentDim]`; fills per-example terms in buffers
   * `logpx`, `kl` and, for importance weights, `logw` = log p(x, z) − log q(z | x).
   */
  private forward(x: FloatArray, eps: FloatArray, batch: number, heads?: PosteriorHeads, training = false): void {
    const b = this.backend;
    const D = this.latentDim;
    const posterior = heads ?? this.encodeHeads(x, batch);
    const { mu, lv, cov } = posterior;
    const zK = this.posteriorSample(posterior, eps, batch, training);
    const logq0 = this.buffers.get('logq0')!;
    const logDet = this.buffers.get('logDet')!;
    this.buffers.set('zK', zK);
    const out = this.decoder.forward(zK, batch);
    const logpx = this.buf('logpx', batch);
    if (this.config.likelihood === 'bernoulli') b.likelihood.bernoulli(x, out, logpx, batch, this.inputDim);
    else b.likelihood.gaussian(x, out, this.logVar!, logpx, batch, this.inputDim);
    const kl = this.buf('kl', batch);
    const logpz = this.buf('logpz', batch);
    b.gaussian.logStandard(zK, logpz, batch, D);
    const logw = this.buf('logw', batch);
    for (let r = 0; r < batch; r++) logw[r] = logpx[r] + logpz[r] - logq0[r] + logDet[r];
    if (this.closedFormKl) {
      b.gaussian.klStandard(mu, lv, kl, batch, D);
      if (cov) addHalfSquares(cov, kl, batch, (D * (D - 1)) / 2);
    } else {
      for (let r = 0; r < batch; r++) kl[r] = logq0[r] - logDet[r] - logpz[r];
    }
    this.lastBatch = batch;
  }

  /**
   * z_K = f_K ∘ … ∘ f_1(μ + L ε) for noise `eps` `[batch, latentDim]`, with
   * log q0(z0) and Σ log|det J_k| left in the buffers `logq0` and `logDet`.
   */
  private posteriorSample(heads: PosteriorHeads, eps: FloatArray, batch: number, training = false): FloatArray {
    const D = this.latentDim;
    const { mu, lv, cov, params, context } = heads;
    const z0 = this.buf('z0', batch * D);
    const logq0 = this.buf('logq0', batch);
    this.backend.gaussian.sampleDiag(mu, lv, eps, z0, logq0, batch, D);
    if (cov) addLowerTimes(cov, eps, z0, batch, D);
    const logDet = this.buf('logDet', batch);
    logDet.fill(0);
    if (!this.flow) return z0;
    const out = this.flow.forward(z0, batch, training ? { params, context, training } : { params, context });
    logDet.set(out.logDet);
    return out.y;
  }

  /**
   * Backward of the loss −mean(log p(x|z)) + klWeight · mean(KL) through the
   * last forward; accumulates parameter gradients.
   */
  private backward(x: FloatArray, eps: FloatArray, klWeight: number): void {
    const b = this.backend;
    const batch = this.lastBatch;
    const D = this.latentDim;
    const dRow = this.buf('dRow', batch);
    const out = this.decoder.layers[this.decoder.layers.length - 1].output;
    const dOut = this.buf('dOut', batch * this.inputDim);
    dRow.fill(-1 / batch);
    if (this.config.likelihood === 'bernoulli') b.likelihood.bernoulliBackward(x, out, dRow, dOut, batch, this.inputDim);
    else b.likelihood.gaussianBackward(x, out, this.logVar!, dRow, dOut, this.outputLogVar?.grad ?? null, batch, this.inputDim);
    const dzK = this.decoder.backward(dOut, true)!;
    const zK = this.buffers.get('zK')!;
    const w = klWeight / batch;
    const lv = this.logvarHead.output;
    const mu = this.muHead.output;
    const dMu = this.buf('dMu', batch * D);
    const dLv = this.buf('dLv', batch * D);
    let dz0 = dzK;
    // Input gradients of the heads that feed the flow, summed into dh below.
    const extraHeadGrads: FloatArray[] = [];
    if (this.closedFormKl) {
      // Reconstruction path through z0 = μ + σ ε (+ L* ε), then the closed-form KL.
      const zeroRows = this.buf('zeroRows', batch);
      zeroRows.fill(0);
      b.gaussian.sampleDiagBackward(lv, eps, dz0, zeroRows, dMu, dLv, batch, D);
      const dMuKl = this.buf('dMuKl', batch * D);
      const dLvKl = this.buf('dLvKl', batch * D);
      dRow.fill(w);
      b.gaussian.klStandardBackward(mu, lv, dRow, dMuKl, dLvKl, batch, D);
      for (let i = 0; i < batch * D; i++) {
        dMu[i] += dMuKl[i];
        dLv[i] += dLvKl[i];
      }
    } else {
      // KL = log q0(z0) − Σ log|det J| − log p(z_K), one sample (no flow: z_K = z0).
      const dzPrior = this.buf('dzPrior', batch * D);
      dRow.fill(-w);
      b.gaussian.logStandardBackward(zK, dRow, dzPrior, batch, D);
      for (let i = 0; i < batch * D; i++) dzK[i] += dzPrior[i];
      if (this.flow) {
        dRow.fill(-w);
        const grads = this.flow.backward(dzK, dRow);
        dz0 = grads.gradInput;
        if (this.flowHead) extraHeadGrads.push(this.flowHead.backward(grads.gradParams!, true)!);
        if (this.contextHead) extraHeadGrads.push(this.contextHead.backward(grads.gradContext!, true)!);
      }
      const dLogq = this.buf('dLogq', batch);
      dLogq.fill(w);
      b.gaussian.sampleDiagBackward(lv, eps, dz0, dLogq, dMu, dLv, batch, D);
    }
    const dh = this.buf('dh', batch * this.encoder.outDim);
    dh.set(this.muHead.backward(dMu, true)!);
    addInto(dh, this.logvarHead.backward(dLv, true)!);
    if (this.covarianceHead) {
      const m = (D * (D - 1)) / 2;
      const dL = this.buf('dL', batch * m);
      lowerTimesBackward(dz0, eps, dL, batch, D);
      if (this.closedFormKl) {
        const L = this.covarianceHead.output;
        for (let i = 0; i < batch * m; i++) dL[i] += w * L[i];
      }
      addInto(dh, this.covarianceHead.backward(dL, true)!);
    }
    for (const g of extraHeadGrads) addInto(dh, g);
    this.encoder.backward(dh, false);
  }

  /** Draws `batch · latentDim` normals from the model's noise stream. */
  private drawNoise(batch: number, offset?: number): FloatArray {
    const eps = this.buf('eps', batch * this.latentDim);
    const at = offset ?? this.noiseOffset;
    this.backend.rng.normal(this.config.seed * 1000 + 7, at, eps);
    if (offset === undefined) this.noiseOffset += eps.length;
    return eps;
  }

  /**
   * The rows of an input the caller passed: shape, finite values (in the
   * backend's float range) and, with a Bernoulli likelihood, values in
   * [0, 1]; errors name the argument, row and column.
   */
  private checkBatch(x: FloatArray, name = 'x', values = true): number {
    if (!(x instanceof Float32Array || x instanceof Float64Array)) throw typeError(expected('Float32Array or Float64Array', name, x));
    if (x.length === 0 || x.length % this.inputDim !== 0) {
      throw rangeError(expected(`array whose length is a positive multiple of inputDim ${this.inputDim}`, name, x), 'ERR_SHAPE');
    }
    if (!values) return x.length / this.inputDim;
    checkFiniteInput(x, this.inputDim, name, this.backend.dtype);
    if (this.config.likelihood === 'bernoulli') checkBernoulliRange(x, this.inputDim, `"${name}"`);
    return x.length / this.inputDim;
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
   * and backward, and returns the batch's ELBO terms. The optimizer step is
   * separate (see `train/`). The hot path of training: it checks the batch's
   * shape but not its values (`fit` checks the whole data set once; scanning
   * every batch again cost 10% of an epoch); bad values end as ERR_NAN.
   */
  computeGradients(x: FloatArray, options: StepOptions = {}): ElboTerms {
    const batch = this.checkBatch(x, 'x', false);
    const beta = options.beta ?? 1;
    const freeBits = options.freeBits ?? 0;
    const xb = this.onBackend(x, 'x');
    const eps = this.drawNoise(batch, options.noiseOffset);
    this.forward(xb, eps, batch, undefined, true);
    const terms = this.averages(batch);
    if (!Number.isFinite(terms.elbo)) {
      const which = !Number.isFinite(terms.reconstruction) ? 'reconstruction' : 'kl';
      throw new FlowVaeError('ERR_NAN', `The ELBO is not finite (${which} term is ${terms[which]})`);
    }
    // Free bits: below the floor the KL term is constant, so it contributes no gradient.
    const klWeight = freeBits > 0 && terms.kl < freeBits * this.latentDim ? 0 : beta;
    zeroGrad(this.parameters());
    this.backward(xb, eps, klWeight);
    return terms;
  }

  private averages(batch: number): ElboTerms {
    const logpx = this.buffers.get('logpx')!;
    const kl = this.buffers.get('kl')!;
    let rec = 0;
    let k = 0;
    for (let r = 0; r < batch; r++) {
      rec += logpx[r];
      k += kl[r];
    }
    return { elbo: (rec - k) / batch, reconstruction: rec / batch, kl: k / batch };
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
  static fromBytes(bytes: Uint8Array, options: { backend?: Backend | BackendName } = {}): VAE {
    const { contents, fail } = decodeCheckpoint(bytes, 'VAE bytes', 'VAE', CHECKPOINT_FORMAT);
    return VAE.fromCheckpoint(contents, fail, options);
  }

  private checkpointParts(): CheckpointParts {
    const metadata: Record<string, string> = {
      format: CHECKPOINT_FORMAT,
      version: '1',
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

  /** Loads a model saved by `save` onto any backend (default: the current one). */
  static load(dir: string, options: { backend?: Backend | BackendName } = {}): VAE {
    const file = checkpointFileForLoad(dir);
    const { contents, fail } = readCheckpoint(file, 'VAE', CHECKPOINT_FORMAT);
    return VAE.fromCheckpoint(contents, fail, options);
  }

  private static fromCheckpoint(
    contents: SafetensorsContents,
    fail: (what: string) => never,
    options: { backend?: Backend | BackendName },
  ): VAE {
    const meta = contents.metadata;
    const config = metadataJson<VAEConfig>(contents, 'config', fail);
    let vae: VAE;
    try {
      vae = new VAE({ ...config, backend: options.backend });
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
    if (byName.size > 0) fail(`unexpected tensor "${[...byName.keys()][0]}"`);
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
  logLikelihood(
    x: FloatArray,
    options: { samples?: number; batch?: number; seed?: number } = {},
  ): { mean: number; perExample: Float64Array } {
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
      const rep = this.buf('iw.x', chunk * D);
      const row = x.subarray(i * D, (i + 1) * D);
      for (let s = 0; s < chunk; s++) rep.set(row, s * D);
      // q(z | x) is the same for every sample of this example: encode it once
      // and repeat the head outputs, so each sample costs only the flow and decoder.
      const tiled = this.tileHeads(this.encodeHeads(this.onBackend(row, 'iw.row'), 1), chunk);
      // Streaming logsumexp over all S weights.
      let max = -Infinity;
      let sum = 0;
      for (let done = 0; done < S; done += chunk) {
        const m = Math.min(chunk, S - done);
        const xb = m === chunk ? rep : rep.subarray(0, m * D);
        const eps = this.buf(`iw.eps.${m}`, m * this.latentDim);
        this.backend.rng.normal(seed, offset, eps);
        offset += eps.length;
        this.forward(xb, eps, m, m === chunk ? tiled : sliceHeads(tiled, m, this.latentDim));
        const logw = this.buffers.get('logw')!;
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
      if (!this.flow) {
        means.set(heads.mu, start * D); // Gaussian posteriors: E_q[z] = μ
        continue;
      }
      const eps = this.buf('units.eps', rows * D);
      if (samples === 0) {
        eps.fill(0); // f(μ)
        means.set(this.posteriorSample(heads, eps, rows), start * D);
        continue;
      }
      for (let s = 0; s < samples; s++) {
        this.backend.rng.normal(seed, offset, eps);
        offset += eps.length;
        const z = this.posteriorSample(heads, eps, rows);
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
   * collapsed. Diagonal posteriors only (for the others the KL does not split
   * by dimension); null otherwise.
   */
  klPerDimension(x: FloatArray): Float64Array | null {
    const n = this.checkBatch(x);
    if (this.config.posterior !== 'diagonal') return null;
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
    const h = this.encoder.forward(this.onBackend(x, 'x'), n);
    return this.backend.from(this.muHead.forward(h, n));
  }

  /** Decoder means for latent codes `z` `[n, latentDim]`: Bernoulli probabilities or Gaussian means (a copy). */
  decode(z: FloatArray): FloatArray {
    if (!(z instanceof Float32Array || z instanceof Float64Array)) throw typeError(expected('Float32Array or Float64Array', 'z', z));
    if (z.length === 0 || z.length % this.latentDim !== 0) {
      throw rangeError(expected(`array whose length is a positive multiple of latentDim ${this.latentDim}`, 'z', z), 'ERR_SHAPE');
    }
    checkFiniteInput(z, this.latentDim, 'z', this.backend.dtype);
    const n = z.length / this.latentDim;
    const zb = this.backend.dtype === 'float32' ? (z instanceof Float32Array ? z : Float32Array.from(z)) : z instanceof Float64Array ? z : Float64Array.from(z);
    const out = this.backend.from(this.decoder.forward(zb, n));
    if (this.config.likelihood === 'bernoulli') this.backend.elementwise.forward('sigmoid', out, out, out.length, 0);
    return out;
  }

  /** Reconstructions: decode the posterior sample z_K of each input (noise from `seed`). */
  reconstruct(x: FloatArray, options: { seed?: number } = {}): FloatArray {
    const n = this.checkBatch(x);
    const eps = this.buf('eps', n * this.latentDim);
    this.backend.rng.normal(checkSize(options.seed ?? 777, 'seed'), 0, eps);
    this.forward(this.onBackend(x, 'x'), eps, n);
    const out = this.backend.from(this.decoder.layers[this.decoder.layers.length - 1].output);
    if (this.config.likelihood === 'bernoulli') this.backend.elementwise.forward('sigmoid', out, out, out.length, 0);
    return out;
  }

  /**
   * `n` samples from the model: decoder means at z ~ N(0, I). Without a seed
   * the draws continue the model's noise stream (fresh samples on every call,
   * as `FlowDistribution.sample`; the stream's position is saved with the
   * model); with `seed` they are elements 0… of stream `seed`.
   */
  sample(n: number, options: { seed?: number } = {}): FloatArray {
    checkPositiveInt(n, 'n');
    checkKnownKeys(options, 'options', ['seed']);
    if (options.seed === undefined) return this.decode(this.drawNoise(n));
    const z = this.backend.alloc(n * this.latentDim);
    this.backend.rng.normal(checkSize(options.seed, 'seed'), 0, z);
    return this.decode(z);
  }
}

// -----------------------------------------------------------------------------
// Full-covariance helpers: L* is stored per row as the strictly lower triangle
// in row-major order, (1,0), (2,0), (2,1), (3,0), …

/** z += L* ε per row. */
function addLowerTimes(lower: FloatArray, eps: FloatArray, z: FloatArray, batch: number, D: number): void {
  const m = (D * (D - 1)) / 2;
  for (let r = 0; r < batch; r++) {
    let k = r * m;
    for (let i = 1; i < D; i++) {
      let s = 0;
      for (let j = 0; j < i; j++) s += lower[k++] * eps[r * D + j];
      z[r * D + i] += s;
    }
  }
}

/** dL*_{ij} = dz_i ε_j per row. */
function lowerTimesBackward(dz: FloatArray, eps: FloatArray, dL: FloatArray, batch: number, D: number): void {
  const m = (D * (D - 1)) / 2;
  for (let r = 0; r < batch; r++) {
    let k = r * m;
    for (let i = 1; i < D; i++) for (let j = 0; j < i; j++) dL[k++] = dz[r * D + i] * eps[r * D + j];
  }
}

/** kl[r] += ½ Σ L*² (the off-diagonal part of tr Σ in the closed-form KL). */
function addHalfSquares(lower: FloatArray, kl: FloatArray, batch: number, m: number): void {
  for (let r = 0; r < batch; r++) {
    let s = 0;
    for (let k = r * m; k < (r + 1) * m; k++) s += lower[k] * lower[k];
    kl[r] += 0.5 * s;
  }
}

function meanOf(values: Float64Array): number {
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

function addInto(target: FloatArray, source: FloatArray): void {
  for (let i = 0; i < target.length; i++) target[i] += source[i];
}

/** What the encoder gives the posterior, per row: q0's mean and log-variance, and the optional heads. */
interface PosteriorHeads {
  mu: FloatArray;
  lv: FloatArray;
  cov: FloatArray | null;
  params: FloatArray | undefined;
  context: FloatArray | undefined;
}

/** The first `rows` rows of tiled heads. */
function sliceHeads(h: PosteriorHeads, rows: number, latentDim: number): PosteriorHeads {
  const first = (a: FloatArray, width: number) => a.subarray(0, rows * width);
  const per = (a: FloatArray) => a.length / (h.mu.length / latentDim);
  return {
    mu: first(h.mu, latentDim),
    lv: first(h.lv, latentDim),
    cov: h.cov && first(h.cov, per(h.cov)),
    params: h.params && first(h.params, per(h.params)),
    context: h.context && first(h.context, per(h.context)),
  };
}
