/**
 * A normalizing flow as a distribution: a base N(μ, diag σ²) pushed through
 * a flow. Two directions, because a flow's cheap direction decides which
 * operations are cheap (Papamakarios et al. 2021, §2):
 *
 * - 'generative' (planar, radial, Sylvester, IAF, coupling…): x = f(z),
 *   z ~ base, so log q(x) = log base(z) − log|det ∂f/∂z|. Sampling and the
 *   reverse KL need only forward; logProb(x) and maximum likelihood need the
 *   inverse z = f⁻¹(x).
 * - 'normalizing' (MAF): u = f(x) maps data to noise, log q(x) =
 *   log base(u) + log|det ∂f/∂x|. logProb and maximum likelihood need only
 *   forward; sampling and the reverse KL need the inverse x = f⁻¹(u).
 *
 * The default is 'normalizing' for the families whose forward is the
 * density-estimation direction (NORMALIZING_FAMILIES: 'maf') and
 * 'generative' for every other family.
 *
 * Training through an inverse (maximum likelihood in the generative
 * direction, reverse KL in the normalizing one) differentiates the inverse
 * implicitly: with a = f⁻¹(b; θ) and a loss Σ c·logDet(a) + h(a),
 * dL/dθ = c ∂logDet/∂θ − λᵀ ∂f/∂θ where Jᵀλ = ∂h/∂a + c ∇_a logDet and
 * J = ∂f/∂a. J is read row by row with `dim` vector-Jacobian products, so a
 * step costs dim + 2 backward passes and a dim×dim solve per example: meant
 * for low-dimensional targets; in high dimension pick the direction whose
 * objective needs only forward.
 *
 * Randomness: draws come from the Philox stream `seed · 1000 + 7` at the
 * distribution's `noiseOffset`, which sampling and training advance; the
 * same seed and offsets reproduce a run on any backend up to float32 rounding.
 */
import { resolveBackend } from '../backend';
import type { Backend } from '../backend/backend';
import type { BackendName, FloatArray } from '../backend/types';
import { FlowVaeError, expected, rangeError, typeError } from '../errors';
import type { Flow } from '../flows/flow';
import { Workspace } from '../flows/flow';
import { FLOW_FAMILIES } from '../flows';
import { prefixBuffers, prefixParameters, zeroGrad, type NamedBuffer, type Parameter } from '../nn/parameter';
import { checkpointFileForLoad, checkpointFileForSave, metadataJson, readCheckpoint, restoreTensors, writeCheckpoint } from '../io/checkpoint';
import { checkKnownKeys, checkOneOf, checkPositiveInt, checkSize } from '../validate';
import type { Dataset } from '../data/dataset';
import { checkFiniteInput } from '../data/validate';
import {
  fitDensity,
  fitReverseKL,
  type DistributionTrainingState,
  type TrainableDistribution,
  type DensityFitOptions,
  type DistributionFitResult,
  type ReverseKLFitOptions,
} from '../train/fit-distribution';
import { trainExclusively } from '../train/exclusive';
import { DiagonalGaussian } from './diagonal-gaussian';
import { MixtureBase } from './mixture-base';
import type { TargetDensity } from './targets2d';

export type FlowDirection = 'generative' | 'normalizing';

/** Flow families whose forward maps data to noise (the default direction for them is 'normalizing'). */
export const NORMALIZING_FAMILIES: readonly string[] = ['maf'];

/** The direction a flow is used in when none is given. */
export function defaultDirection(flow: Flow): FlowDirection {
  return NORMALIZING_FAMILIES.includes(flow.kind) ? 'normalizing' : 'generative';
}

/** A target given as a function: writes log p̃(z_r) into logp[r] and ∇ log p̃ into grad (when non-null). */
export type LogDensityFunction = (z: Float64Array, batch: number, logp: Float64Array, grad: Float64Array | null) => void;

/** Checkpoint format tag of FlowDistribution.save. */
export const FLOW_DISTRIBUTION_FORMAT = 'flowvae-flow-distribution';

/** What FlowDistribution.create was given, as saved in a checkpoint. */
export interface FlowDistributionSpec {
  dim: number;
  flow: string;
  layers: number;
  seed: number;
  direction: FlowDirection;
  /** The family options (JSON values). */
  options: Record<string, unknown>;
  /** A learned mixture base (absent: the diagonal Gaussian `base.mean`, `base.logVar`). */
  base?: { kind: 'mixture'; components: number };
}

export interface FlowDistributionOptions {
  /** 'generative' or 'normalizing' (default: defaultDirection(flow)). */
  direction?: FlowDirection;
  /** Seed of the sampling and training noise stream (default 0). */
  seed?: number;
}

export interface CreateFlowDistributionOptions {
  dim: number;
  /** A registered flow family ('planar', 'radial', 'maf', …). */
  flow: string;
  /** Flow layers K (default 4). */
  layers?: number;
  /** Seeds the flow's initialization and the noise stream (default 0). */
  seed?: number;
  backend?: Backend | BackendName;
  direction?: FlowDirection;
  /** Base mean `[dim]` (default 0). */
  baseMean?: ArrayLike<number>;
  /** Base log σ² `[dim]` (default 0). */
  baseLogVar?: ArrayLike<number>;
  /**
   * The base: 'gaussian' (default; N(baseMean, diag e^baseLogVar), fixed) or
   * { kind: 'mixture', components: K } (learned with the flow by `fit`).
   */
  base?: 'gaussian' | { kind: 'mixture'; components?: number };
  /** Width of a context c for a conditional density p(x | c) (families that condition: maf, iaf, coupling and spline flows, glow). */
  contextDim?: number;
  /** Family-specific options, passed to the family as in a VAE posterior (e.g. `hidden` for MAF). */
  [option: string]: unknown;
}

const OPTION_KEYS = ['direction', 'seed'] as const;

function isFlow(value: unknown): value is Flow {
  const f = value as Flow;
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof f.forward === 'function' &&
    typeof f.inverse === 'function' &&
    typeof f.backward === 'function' &&
    typeof f.parameters === 'function' &&
    typeof f.dim === 'number'
  );
}

function resolveBase(value: unknown): { kind: 'mixture'; components: number } | null {
  if (value === undefined || value === 'gaussian') return null;
  if (typeof value !== 'object' || value === null || (value as { kind?: unknown }).kind !== 'mixture') {
    throw (typeof value === 'string' ? rangeError : typeError)(expected('"gaussian" or { kind: "mixture", components }', 'base', value));
  }
  checkKnownKeys(value, 'base', ['kind', 'components']);
  return { kind: 'mixture', components: checkPositiveInt((value as { components?: number }).components ?? 10, 'base.components') };
}

/** Index of the first row of a `[batch, width]` array holding a non-finite value, or -1. */
function firstNonFiniteRow(a: ArrayLike<number>, width: number): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return Math.floor(i / width);
  return -1;
}

export class FlowDistribution implements TrainableDistribution {
  readonly base: DiagonalGaussian | MixtureBase;
  readonly flow: Flow;
  /** Width of the context of a conditional distribution (0: unconditional). */
  readonly contextDim: number;
  readonly direction: FlowDirection;
  readonly dim: number;
  readonly backend: Backend;
  readonly seed: number;
  /** Next element of the noise stream (advanced by sample() without a seed and by training). */
  noiseOffset = 0;
  /**
   * Where training stands (optimizer moments, epochs and steps done): the next
   * `fit`/`fitTarget` continues from it unless given `restart: true`. Kept in
   * memory only; `save` does not write it.
   */
  trainingState: DistributionTrainingState | undefined;
  private readonly ws: Workspace;

  constructor(base: DiagonalGaussian | MixtureBase, flow: Flow, options: FlowDistributionOptions = {}) {
    if (!(base instanceof DiagonalGaussian || base instanceof MixtureBase)) throw typeError(expected('DiagonalGaussian or MixtureBase', 'base', base));
    if (!isFlow(flow)) throw typeError(expected('Flow', 'flow', flow));
    if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
    checkKnownKeys(options, 'options', OPTION_KEYS);
    if (flow.dim !== base.dim) throw rangeError(expected(`flow of dim ${base.dim} (the base's)`, 'flow.dim', flow.dim), 'ERR_SHAPE');
    if (flow.backend !== base.backend) {
      throw rangeError(`Expected the flow on the base's backend "${base.backend.name}" but "flow" is on "${flow.backend.name}"`);
    }
    if (flow.amortizedSize > 0) {
      throw rangeError(`Expected a flow with shared parameters for "flow" but this ${flow.kind} flow is amortized`);
    }
    this.contextDim = flow.contextDim;
    this.base = base;
    this.flow = flow;
    this.dim = base.dim;
    this.backend = base.backend;
    this.direction = checkOneOf(options.direction ?? defaultDirection(flow), 'direction', ['generative', 'normalizing'] as const);
    this.seed = checkSize(options.seed ?? 0, 'seed');
    this.ws = new Workspace(this.backend);
  }

  /**
   * Builds a distribution from a registered flow family on a base N(μ, σ²)
   * (standard normal by default). Conditional families (IAF) are built
   * unconditional (contextDim 0) unless `contextDim` is given.
   */
  static create(options: CreateFlowDistributionOptions): FlowDistribution {
    if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
    const { dim: dimIn, flow: name, layers: layersIn, seed: seedIn, backend: backendIn, direction, baseMean, baseLogVar, base: baseIn, ...extra } = options;
    const dim = checkPositiveInt(dimIn, 'dim');
    const flowName = checkOneOf(name, 'flow', Object.keys(FLOW_FAMILIES));
    const family = FLOW_FAMILIES[flowName];
    if (!family.shareable) throw rangeError(`The ${flowName} flow needs amortized parameters and cannot define a distribution`);
    const layers = checkPositiveInt(layersIn ?? 4, 'layers');
    const seed = checkSize(seedIn ?? 0, 'seed');
    const backend = resolveBackend(backendIn);
    const baseSpec = resolveBase(baseIn);
    if (baseSpec && (baseMean !== undefined || baseLogVar !== undefined)) {
      throw rangeError('"baseMean" and "baseLogVar" set a Gaussian base; a mixture base learns its own means and scales');
    }
    const base = baseSpec
      ? new MixtureBase(backend, dim, baseSpec.components, seed * 1000 + 300)
      : new DiagonalGaussian({ dim, mean: baseMean, logVar: baseLogVar, backend });
    // Flow initialization and the noise stream are spread apart so their Philox words never coincide.
    const make = (e: Record<string, unknown>) => family.create({ dim, layers, amortized: false, seed: seed * 1000 + 200, backend, extra: e });
    // Options left undefined mean "the family's default", as everywhere else.
    for (const key of Object.keys(extra)) if (extra[key] === undefined) delete extra[key];
    let flow = make(extra);
    let familyOptions = extra;
    if (flow.contextDim > 0 && !('contextDim' in extra)) {
      familyOptions = { ...extra, contextDim: 0 };
      flow = make(familyOptions);
    }
    const dist = new FlowDistribution(base, flow, { direction, seed });
    dist.recipe = { dim, flow: flowName, layers, seed, direction: dist.direction, options: familyOptions, ...(baseSpec ? { base: baseSpec } : {}) };
    return dist;
  }

  private recipe: FlowDistributionSpec | null = null;

  /**
   * How `create` built this distribution (null for one built with `new`,
   * whose flow may be any object): what `save` records so `load` can
   * rebuild it.
   */
  get spec(): FlowDistributionSpec | null {
    return this.recipe;
  }

  /**
   * Writes `<dir>/model.safetensors`: the base (`base.mean`, `base.logVar`),
   * every flow parameter and buffer under its name, and in the metadata how
   * the distribution was created and its noise offset. Atomic, like
   * `VAE.save`. Only distributions built by `FlowDistribution.create` can be
   * saved (a hand-built flow has no recipe to rebuild it from); the optimizer
   * state of `fit`/`fitTarget` is not kept.
   */
  save(dir: string): string {
    if (this.spec === null) {
      throw rangeError('Expected a distribution built by FlowDistribution.create for save() but this one was built with new FlowDistribution(base, flow)');
    }
    const file = checkpointFileForSave(dir);
    const gaussian = this.base instanceof DiagonalGaussian ? this.base : null;
    const tensors = [
      ...(gaussian
        ? [
            { name: 'base.mean', shape: [this.dim], value: gaussian.mean },
            { name: 'base.logVar', shape: [this.dim], value: gaussian.logVar },
          ]
        : []),
      ...this.parameters(),
      ...this.namedBuffers(),
    ];
    writeCheckpoint(file, {
      tensors,
      dtype: this.backend.dtype,
      metadata: {
        format: FLOW_DISTRIBUTION_FORMAT,
        version: '1',
        spec: JSON.stringify(this.spec),
        noiseOffset: String(this.noiseOffset),
      },
    });
    return file;
  }

  /** Loads a distribution saved by `save` onto any backend (default: the current one). */
  static load(dir: string, options: { backend?: Backend | BackendName } = {}): FlowDistribution {
    const file = checkpointFileForLoad(dir);
    const { contents, fail } = readCheckpoint(file, 'flow distribution', FLOW_DISTRIBUTION_FORMAT);
    const spec = metadataJson<FlowDistributionSpec>(contents, 'spec', fail);
    if (typeof spec !== 'object' || spec === null || !Number.isSafeInteger(spec.dim) || spec.dim < 1) {
      fail('metadata "spec" is not a distribution recipe');
    }
    // The base goes into create (its constants are derived there), so it is read first, with the same checks.
    const mixture = spec.base?.kind === 'mixture';
    const baseMean = mixture ? undefined : new Float64Array(spec.dim);
    const baseLogVar = mixture ? undefined : new Float64Array(spec.dim);
    if (baseMean && baseLogVar) {
      restoreTensors(
        contents,
        [
          { name: 'base.mean', shape: [spec.dim], value: baseMean },
          { name: 'base.logVar', shape: [spec.dim], value: baseLogVar },
        ],
        fail,
      );
    }
    let dist: FlowDistribution;
    try {
      dist = FlowDistribution.create({
        ...spec.options,
        dim: spec.dim,
        flow: spec.flow,
        layers: spec.layers,
        seed: spec.seed,
        direction: spec.direction,
        baseMean,
        baseLogVar,
        ...(spec.base ? { base: spec.base } : {}),
        backend: options.backend,
      });
    } catch (err) {
      return fail(`its recipe is invalid (${(err as Error).message})`);
    }
    const left = restoreTensors(contents, [...dist.parameters(), ...dist.namedBuffers()], fail);
    left.delete('base.mean');
    left.delete('base.logVar');
    if (left.size > 0) fail(`unexpected tensor "${[...left.keys()][0]}"`);
    dist.noiseOffset = Number(contents.metadata.noiseOffset ?? 0);
    return dist;
  }

  /** The trained parameters: the flow's, named `flow.<name>`, then a mixture base's (`base.*`). */
  parameters(): Parameter[] {
    return [...prefixParameters('flow', this.flow.parameters()), ...this.base.parameters()];
  }

  /** The flow's untrained saved state (ActNorm's flag, permutations), named `flow.<name>`. */
  namedBuffers(): NamedBuffer[] {
    return this.flow.buffers ? prefixBuffers('flow', this.flow.buffers()) : [];
  }

  private get noiseStream(): number {
    return this.seed * 1000 + 7;
  }

  /** Reserves `count` elements of the noise stream and returns where they start. */
  private takeNoise(count: number): number {
    const at = this.noiseOffset;
    this.noiseOffset += count;
    return at;
  }

  /** A backend array holding `x` (no copy when it already is one). */
  private onBackend(x: FloatArray, name: string): FloatArray {
    const native = this.backend.dtype === 'float32' ? x instanceof Float32Array : x instanceof Float64Array;
    if (native) return x;
    const copy = this.ws.get(`input.${name}`, x.length);
    copy.set(x);
    return copy;
  }

  private rows(x: unknown, name: string): number {
    if (!(x instanceof Float32Array || x instanceof Float64Array)) throw typeError(expected('Float32Array or Float64Array', name, x));
    if (x.length === 0 || x.length % this.dim !== 0) {
      throw rangeError(expected(`array whose length is a positive multiple of dim ${this.dim}`, name, x), 'ERR_SHAPE');
    }
    return x.length / this.dim;
  }

  /**
   * Draws `batch` samples from the stream (stream, offset) into workspace
   * arrays: `x` `[batch, dim]`, `logProb` `[batch]`, and the base draw `z`.
   */
  private drawInto(stream: number, offset: number, batch: number, context?: FloatArray): { x: FloatArray; logProb: FloatArray; z: FloatArray } {
    const D = this.dim;
    const eps = this.ws.get('eps', batch * D);
    const z = this.ws.get('z', batch * D);
    const logBase = this.ws.get('logBase', batch);
    this.base.sampleInto(stream, offset, eps, z, logBase, batch);
    const logProb = this.ws.get('sampleLogProb', batch);
    let x: FloatArray;
    if (this.direction === 'generative') {
      const out = this.flow.forward(z, batch, { context });
      x = out.y;
      for (let r = 0; r < batch; r++) logProb[r] = logBase[r] - out.logDet[r];
    } else {
      const out = this.flow.inverse(z, batch, { context });
      x = out.x;
      // out.logDet = log|det ∂x/∂u|.
      for (let r = 0; r < batch; r++) logProb[r] = logBase[r] - out.logDet[r];
    }
    return { x, logProb, z };
  }

  /**
   * `n` samples with their log-densities (copies). Without a seed the draws
   * continue the distribution's own noise stream (advancing `noiseOffset`);
   * with `seed` they are elements 0… of the stream `seed`.
   */
  sample(n: number, options: { seed?: number; context?: FloatArray } = {}): { x: FloatArray; logProb: FloatArray } {
    checkPositiveInt(n, 'n');
    if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
    checkKnownKeys(options, 'options', ['seed', 'context']);
    const context = this.checkContext(options.context, n, 'sample');
    const stream = options.seed === undefined ? this.noiseStream : checkSize(options.seed, 'seed');
    const offset = options.seed === undefined ? this.takeNoise(n * this.base.noisePerRow) : 0;
    const { x, logProb } = this.drawInto(stream, offset, n, context);
    return { x: this.backend.from(x), logProb: this.backend.from(logProb) };
  }

  /** log q(x) per row into `out` (backend arrays). */
  private logProbInto(x: FloatArray, batch: number, out: FloatArray, context?: FloatArray): void {
    const logBase = this.ws.get('logProbBase', batch);
    if (this.direction === 'generative') {
      const { x: z, logDet } = this.flow.inverse(x, batch, { context });
      this.base.logProbInto(z, logBase, batch);
      for (let r = 0; r < batch; r++) out[r] = logBase[r] + logDet[r];
    } else {
      const { y: u, logDet } = this.flow.forward(x, batch, { context });
      this.base.logProbInto(u, logBase, batch);
      for (let r = 0; r < batch; r++) out[r] = logBase[r] + logDet[r];
    }
  }

  /** log q(x) (or log q(x | c) with `context` `[n, contextDim]`) of each row of `x` `[n, dim]` (a new backend array). */
  logProb(x: FloatArray, options: { context?: FloatArray } = {}): FloatArray {
    const n = this.rows(x, 'x');
    checkFiniteInput(x, this.dim, 'x', this.backend.dtype);
    if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
    checkKnownKeys(options, 'options', ['context']);
    const context = this.checkContext(options.context, n, 'logProb');
    const out = this.backend.alloc(n);
    this.logProbInto(this.onBackend(x, 'logProb'), n, out, context);
    return out;
  }

  /**
   * The context of `rows` rows for a call of `method`: required (a finite
   * `[rows, contextDim]` array) by a conditional distribution, refused by an
   * unconditional one. A backend array (copied when it is not one).
   */
  private checkContext(context: unknown, rows: number, method: string): FloatArray | undefined {
    if (this.contextDim === 0) {
      if (context !== undefined) throw rangeError(`This distribution is unconditional (contextDim 0) but ${method} was given "context"`);
      return undefined;
    }
    if (context === undefined)
      throw typeError(`This distribution is conditional (contextDim ${this.contextDim}): ${method} needs "context" [rows, ${this.contextDim}]`);
    if (!(context instanceof Float32Array || context instanceof Float64Array)) throw typeError(expected('Float32Array or Float64Array', 'context', context));
    if (context.length !== rows * this.contextDim) {
      throw rangeError(expected(`array of ${rows} rows × contextDim ${this.contextDim} = ${rows * this.contextDim} values`, 'context', context), 'ERR_SHAPE');
    }
    checkFiniteInput(context, this.contextDim, 'context', this.backend.dtype);
    return this.onBackend(context, `context.${method}`);
  }

  // ---------------------------------------------------------------------------
  // Gradients. Each zeroes the parameter gradients, accumulates those of its
  // loss and returns the loss (nats, mean over the batch).

  /**
   * Maximum likelihood on a batch `x` `[batch, dim]`: loss = −mean log q(x).
   * A non-finite loss is returned without touching the gradients.
   */
  densityGradients(x: FloatArray, contextIn?: FloatArray): number {
    const batch = this.rows(x, 'x');
    const xb = this.onBackend(x, 'density');
    const context = this.checkContext(contextIn, batch, 'densityGradients');
    const params = this.parameters();
    const c = 1 / batch;
    const logBase = this.ws.get('gradLogBase', batch);
    const weights = this.ws.get('rowWeights', batch);
    let loss = 0;
    if (this.direction === 'normalizing') {
      // Explicit: u = f(x); loss = −mean(log base(u) + logDet).
      const { y: u, logDet } = this.flow.forward(xb, batch, { training: true, context });
      this.base.logProbInto(u, logBase, batch);
      for (let r = 0; r < batch; r++) loss -= c * (logBase[r] + logDet[r]);
      if (!Number.isFinite(loss)) return loss;
      const du = this.ws.get('du', batch * this.dim);
      weights.fill(-c);
      zeroGrad(params);
      this.base.logProbBackward(u, weights, du, batch);
      this.flow.backward(du, weights);
      return loss;
    }
    // Implicit: z = f⁻¹(x); loss = mean(−log base(z) + logDet_f(z)).
    const inv = this.flow.inverse(xb, batch, { context });
    const z = this.ws.get('implicitPoint', batch * this.dim);
    z.set(inv.x);
    this.base.logProbInto(z, logBase, batch);
    // inv.logDet = −logDet_f(z), so −log base(z) + logDet_f(z) = −log base(z) − inv.logDet.
    for (let r = 0; r < batch; r++) loss += c * (-logBase[r] - inv.logDet[r]);
    if (!Number.isFinite(loss)) return loss;
    const dh = this.ws.get('dh', batch * this.dim);
    weights.fill(-c);
    zeroGrad(params);
    this.base.logProbBackward(z, weights, dh, batch);
    this.implicitBackward(z, batch, dh, c, context);
    return loss;
  }

  /**
   * Reverse KL on `batch` draws: loss = mean(log q(x) − β log p̃(x)) with
   * x ~ q, which is KL(q ‖ p) − log Z at β = 1. Noise from the stream at
   * `offset` (default: the distribution's own, advanced). Returns the
   * β = 1 loss; a non-finite loss (the target is −∞ at a draw) is returned
   * without touching the gradients, and a NaN from the target throws ERR_NAN.
   */
  reverseKLGradients(target: TargetDensity | LogDensityFunction, batch: number, options: { beta?: number; offset?: number } = {}): number {
    const t = this.checkTarget(target);
    checkPositiveInt(batch, 'batch');
    const beta = options.beta ?? 1;
    const D = this.dim;
    if (this.contextDim > 0) throw rangeError('The reverse KL fits an unconditional target; this distribution is conditional (contextDim > 0)');
    if (!(this.base instanceof DiagonalGaussian))
      throw rangeError('The reverse KL trains the flow on a fixed Gaussian base; a mixture base is learned by fit (maximum likelihood)');
    const offset = options.offset ?? this.takeNoise(batch * D);
    const params = this.flow.parameters();
    const c = 1 / batch;
    const eps = this.ws.get('eps', batch * D);
    const z = this.ws.get('z', batch * D);
    const logBase = this.ws.get('logBase', batch);
    this.base.sampleInto(this.noiseStream, offset, eps, z, logBase, batch);
    const x64 = this.ws64('x64', batch * D);
    const logp = this.ws64('logp', batch);
    const grad = this.ws64('gradLogp', batch * D);
    const weights = this.ws.get('rowWeights', batch);
    let loss = 0;
    if (this.direction === 'generative') {
      // Explicit: x = f(z); loss = mean(log base(z) − logDet − β log p̃(x)).
      const { y: x, logDet } = this.flow.forward(z, batch, { training: true });
      x64.set(x);
      t.evaluate(x64, batch, logp, grad);
      for (let r = 0; r < batch; r++) loss += c * (logBase[r] - logDet[r] - logp[r]);
      if (!Number.isFinite(loss)) return this.badTarget(loss, logp, grad, D);
      const dx = this.ws.get('dx', batch * D);
      for (let i = 0; i < batch * D; i++) dx[i] = -beta * c * grad[i];
      weights.fill(-c);
      zeroGrad(params);
      this.flow.backward(dx, weights);
      return loss;
    }
    // Implicit: x = f⁻¹(u); log q(x) = log base(u) + logDet_f(x) = log base(u) − inv.logDet.
    const inv = this.flow.inverse(z, batch);
    const a = this.ws.get('implicitPoint', batch * D);
    a.set(inv.x);
    x64.set(a);
    t.evaluate(x64, batch, logp, grad);
    for (let r = 0; r < batch; r++) loss += c * (logBase[r] - inv.logDet[r] - logp[r]);
    if (!Number.isFinite(loss)) return this.badTarget(loss, logp, grad, D);
    const dh = this.ws.get('dh', batch * D);
    for (let i = 0; i < batch * D; i++) dh[i] = -beta * c * grad[i];
    this.implicitBackward(a, batch, dh, c, undefined);
    return loss;
  }

  /** A non-finite loss, or an error when the target returned NaN (its log-density or gradient). */
  private badTarget(loss: number, logp: Float64Array, grad: Float64Array, D: number): number {
    const row = Math.max(firstNonFiniteRow(logp, 1), 0);
    if (Number.isNaN(logp[row]) || firstNonFiniteRow(grad, D) >= 0) {
      const badGradRow = firstNonFiniteRow(grad, D);
      const what = Number.isNaN(logp[row]) ? `log-density is NaN at row ${row}` : `gradient is not finite at row ${badGradRow}`;
      throw new FlowVaeError('ERR_NAN', `The target's ${what}`);
    }
    return loss;
  }

  private readonly ws64Map = new Map<string, Float64Array>();
  /** Reusable float64 arrays (targets and the implicit solve work in float64 on every backend). */
  private ws64(name: string, length: number): Float64Array {
    let a = this.ws64Map.get(name);
    if (!a || a.length !== length) {
      a = new Float64Array(length);
      this.ws64Map.set(name, a);
    }
    return a;
  }

  /**
   * Parameter gradients of L = Σ_r c·logDet_f(a_r) + h(a_r) where a = f⁻¹(b; θ)
   * is held by the constraint f(a; θ) = b, given dh = ∂h/∂a `[batch, dim]`:
   * dL/dθ = c ∂logDet/∂θ − λᵀ ∂f/∂θ with Jᵀλ = dh + c ∇_a logDet.
   */
  private implicitBackward(a: FloatArray, batch: number, dh: FloatArray, c: number, context: FloatArray | undefined): void {
    const D = this.dim;
    this.flow.forward(a, batch, { context });
    const jac = this.ws64('jacobian', batch * D * D);
    const probe = this.ws.get('probe', batch * D);
    const zeroRows = this.ws.get('zeroRows', batch);
    zeroRows.fill(0);
    // Row i of each example's Jacobian J = ∂f/∂a is Jᵀ e_i (a vector-Jacobian product).
    for (let i = 0; i < D; i++) {
      probe.fill(0);
      for (let r = 0; r < batch; r++) probe[r * D + i] = 1;
      const { gradInput } = this.flow.backward(probe, zeroRows);
      for (let r = 0; r < batch; r++) for (let j = 0; j < D; j++) jac[(r * D + i) * D + j] = gradInput[r * D + j];
    }
    const weights = this.ws.get('implicitWeights', batch);
    weights.fill(c);
    probe.fill(0);
    const gLogDet = this.flow.backward(probe, weights).gradInput;
    const rhs = this.ws64('rhs', D);
    const lambda = this.ws.get('lambda', batch * D);
    const lu = this.ws64('lu', D * D);
    const sol = this.ws64('solution', D);
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < D; j++) rhs[j] = dh[r * D + j] + gLogDet[r * D + j];
      // Jᵀ λ = rhs: transpose into lu, then solve.
      for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) lu[j * D + i] = jac[(r * D + i) * D + j];
      solveInPlace(lu, rhs, sol, D);
      for (let j = 0; j < D; j++) lambda[r * D + j] = -sol[j];
    }
    zeroGrad(this.flow.parameters()); // the probes above accumulated into the flow's gradients
    this.flow.backward(lambda, weights);
  }

  private checkTarget(target: unknown): TargetDensity {
    if (typeof target === 'function') {
      return { dim: this.dim, evaluate: target as LogDensityFunction };
    }
    const t = target as TargetDensity;
    if (typeof target !== 'object' || target === null || typeof t.evaluate !== 'function' || typeof t.dim !== 'number') {
      throw typeError(expected('target ({ dim, evaluate }) or log-density function', 'target', target));
    }
    if (t.dim !== this.dim) throw rangeError(expected(`target of dim ${this.dim}`, 'target.dim', t.dim), 'ERR_SHAPE');
    return t;
  }

  // ---------------------------------------------------------------------------
  // Training.

  /** Maximum likelihood on samples `data` `[n, dim]` (or a Dataset) with Adam. */
  fit(data: FloatArray | Dataset, options: DensityFitOptions = {}): Promise<DistributionFitResult> {
    return trainExclusively(this, 'This FlowDistribution', () => fitDensity(this, data, options));
  }

  /** Variational inference: minimizes the reverse KL to the unnormalized `target` with Adam. */
  async fitTarget(target: TargetDensity | LogDensityFunction, options: ReverseKLFitOptions = {}): Promise<DistributionFitResult> {
    const checked = this.checkTarget(target);
    return trainExclusively(this, 'This FlowDistribution', () => fitReverseKL(this, checked, options));
  }

  /** Internal: validates a target for the trainer. */
  resolveTarget(target: TargetDensity | LogDensityFunction): TargetDensity {
    return this.checkTarget(target);
  }

  /**
   * Draws `batch` samples from stream `stream` at `offset` and writes
   * log q(x) − log p̃(x) per row into `out` (float64); used by reverseKL.
   */
  logRatioInto(target: TargetDensity, stream: number, offset: number, batch: number, out: Float64Array): void {
    const { x, logProb } = this.drawInto(stream, offset, batch);
    const x64 = this.ws64('x64', batch * this.dim);
    x64.set(x);
    const logp = this.ws64('logp', batch);
    target.evaluate(x64, batch, logp, null);
    for (let r = 0; r < batch; r++) out[r] = logProb[r] - logp[r];
  }
}

/**
 * Solves A s = b for a small dense `[n, n]` A (row-major) by Gaussian
 * elimination with partial pivoting; A and b are overwritten. A singular A
 * gives non-finite s.
 */
export function solveInPlace(A: Float64Array, b: Float64Array, s: Float64Array, n: number): void {
  for (let k = 0; k < n; k++) {
    let p = k;
    for (let i = k + 1; i < n; i++) if (Math.abs(A[i * n + k]) > Math.abs(A[p * n + k])) p = i;
    if (p !== k) {
      for (let j = 0; j < n; j++) {
        const t = A[k * n + j];
        A[k * n + j] = A[p * n + j];
        A[p * n + j] = t;
      }
      const t = b[k];
      b[k] = b[p];
      b[p] = t;
    }
    const pivot = A[k * n + k];
    for (let i = k + 1; i < n; i++) {
      const f = A[i * n + k] / pivot;
      if (f === 0) continue;
      for (let j = k; j < n; j++) A[i * n + j] -= f * A[k * n + j];
      b[i] -= f * b[k];
    }
  }
  for (let i = n - 1; i >= 0; i--) {
    let v = b[i];
    for (let j = i + 1; j < n; j++) v -= A[i * n + j] * s[j];
    s[i] = v / A[i * n + i];
  }
}

/** Options of reverseKL. */
export interface ReverseKLOptions {
  /** Number of samples S (default 100 000). */
  samples?: number;
  /** Samples per batch (default 4096). */
  batch?: number;
  /** Seed of the evaluation noise stream (default 12345), independent of training. */
  seed?: number;
  /** log Z of the target (default: `target.logZ`). */
  logZ?: number;
}

export interface ReverseKLEstimate {
  /** KL(q ‖ p) in nats: mean(log q − log p̃) + log Z. */
  kl: number;
  /** Monte Carlo standard error of `kl` (sample standard deviation / √S). */
  standardError: number;
  samples: number;
  logZ: number;
}

/**
 * KL(q ‖ p) = E_q[log q(x) − log p̃(x)] + log Z estimated with S samples of
 * q (in batches, so any S fits in memory), with its standard error.
 */
export function reverseKL(dist: FlowDistribution, target: TargetDensity | LogDensityFunction, options: ReverseKLOptions = {}): ReverseKLEstimate {
  if (!(dist instanceof FlowDistribution)) throw typeError(expected('FlowDistribution', 'dist', dist));
  const t = dist.resolveTarget(target);
  if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
  checkKnownKeys(options, 'options', ['samples', 'batch', 'seed', 'logZ']);
  const S = checkPositiveInt(options.samples ?? 100_000, 'samples');
  const chunk = Math.min(S, checkPositiveInt(options.batch ?? 4096, 'batch'));
  const seed = checkSize(options.seed ?? 12345, 'seed');
  const logZ = options.logZ ?? t.logZ;
  if (typeof logZ !== 'number' || !Number.isFinite(logZ)) {
    throw rangeError(expected('finite log normalizer (the target has no logZ; pass "logZ")', 'logZ', logZ));
  }
  const ratios = new Float64Array(chunk);
  // Welford's running mean and variance: numerically stable for any S.
  let mean = 0;
  let m2 = 0;
  let count = 0;
  for (let done = 0; done < S; done += chunk) {
    const m = Math.min(chunk, S - done);
    const out = m === chunk ? ratios : ratios.subarray(0, m);
    dist.logRatioInto(t, seed, done * dist.dim, m, out);
    for (let i = 0; i < m; i++) {
      count += 1;
      const d = out[i] - mean;
      mean += d / count;
      m2 += d * (out[i] - mean);
    }
  }
  const variance = count > 1 ? m2 / (count - 1) : 0;
  return { kl: mean + logZ, standardError: Math.sqrt(variance / count), samples: S, logZ };
}
