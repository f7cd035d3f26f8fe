/**
 * The VAE's approximate posterior q(z | x), fed by the encoder trunk's output
 * h. Built-in kinds, each a class here:
 *
 * - `diagonal`: z = μ + σ ⊙ ε, heads `encoder.mu` and `encoder.logvar`.
 * - `full-covariance`: z = μ + (L* + diag σ) ε with the strictly lower L*
 *   from the head `encoder.cov` (per row, row-major (1,0), (2,0), (2,1), …).
 * - flow: z_K = f_K ∘ … ∘ f_1(z0) with z0 diagonal; an amortized flow takes
 *   its parameters per example from `encoder.flow`, a conditional one a
 *   context from `encoder.context`; shared parameters live under `flow.*`.
 *
 * Each computes z, log q(z | x) = log q0(z0) − Σ log|det J_k| and, for the
 * Gaussian kinds, the closed-form KL to N(0, I). Backward runs in two steps so
 * that an objective drawing several samples per example (IWAE) can sum the
 * per-sample head gradients before the heads' own backward.
 */
import type { Backend } from '../backend/backend';
import type { FloatArray } from '../backend/types';
import { expected, rangeError, typeError } from '../errors';
import { FLOW_FAMILIES } from '../flows';
import { Workspace, type Flow } from '../flows/flow';
import { Linear } from '../nn/linear';
import { prefixBuffers, prefixParameters, type NamedBuffer, type Parameter } from '../nn/parameter';
import { checkOneOf, checkPositiveInt } from '../validate';

/** A flow posterior: a registered family after a diagonal Gaussian. */
export interface FlowPosteriorSpec {
  /** A registered flow family, e.g. 'planar', 'radial', 'sylvester-orthogonal', 'iaf'. */
  flow: string;
  /** Number of flow layers K (default 4). */
  layers?: number;
  /** Parameters produced per example by the encoder (default: true where the family allows it). */
  amortized?: boolean;
  /** Family-specific options passed to the flow (e.g. `m`, `householders`, `hidden`). */
  [option: string]: unknown;
}

export type PosteriorSpec = 'diagonal' | 'full-covariance' | FlowPosteriorSpec;
export type ResolvedPosterior = 'diagonal' | 'full-covariance' | (FlowPosteriorSpec & { layers: number; amortized: boolean });

export function resolvePosterior(value: PosteriorSpec | undefined): ResolvedPosterior {
  const p = value ?? 'diagonal';
  if (p === 'diagonal' || p === 'full-covariance') return p;
  if (typeof p !== 'object' || p === null) {
    throw (typeof p === 'string' ? rangeError : typeError)(expected('"diagonal", "full-covariance" or { flow, layers, amortized }', 'posterior', p));
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

/** The encoder heads' outputs for a batch: named `[rows, width]` arrays (μ, log σ², and the kind's own). */
export type PosteriorHeads = Record<string, FloatArray>;

/** What the VAE needs of a posterior. */
export interface Posterior {
  readonly kind: string;
  readonly latentDim: number;
  /** Width of the encoder trunk output the heads read. */
  readonly inDim: number;
  /** True when `klStandard` gives KL(q ‖ N(0, I)) in closed form. */
  readonly hasClosedFormKl: boolean;
  /** The posterior flow, if any. */
  readonly flow: Flow | null;
  parameters(): Parameter[];
  buffers(): NamedBuffer[];
  /** The heads on the trunk output `h` `[batch, inDim]` (kept for `encodeBackward`). */
  encode(h: FloatArray, batch: number): PosteriorHeads;
  /** z `[rows, latentDim]` and log q(z | x) `[rows]` for heads of `rows` rows and noise `eps` (kept for `sampleBackward`). */
  sample(heads: PosteriorHeads, eps: FloatArray, rows: number, training?: boolean): { z: FloatArray; logq: FloatArray };
  /** kl[r] = KL(q(z | x_r) ‖ N(0, I)) in closed form (only where `hasClosedFormKl`). */
  klStandard(heads: PosteriorHeads, kl: FloatArray, rows: number): void;
  /**
   * After `sample`: the gradients of the heads' outputs, given ∂L/∂z (may be
   * overwritten) and per-row weights of log q(z | x) and of the closed-form
   * KL in the loss (null where the term is absent).
   */
  sampleBackward(dz: FloatArray, dLogq: FloatArray | null, dKl: FloatArray | null, rows: number): PosteriorHeads;
  /** After `encode`: ∂L/∂h from the gradients of the heads' outputs; accumulates the heads' parameter gradients. */
  encodeBackward(dHeads: PosteriorHeads): FloatArray;
}

export function createPosterior(backend: Backend, spec: ResolvedPosterior, inDim: number, latentDim: number, seed: number): Posterior {
  if (spec === 'diagonal') return new DiagonalPosterior(backend, inDim, latentDim, seed);
  if (spec === 'full-covariance') return new FullCovariancePosterior(backend, inDim, latentDim, seed);
  return new FlowPosterior(backend, spec, inDim, latentDim, seed);
}

/** q(z | x) = N(μ, diag σ²): the base of the other kinds too. */
export class DiagonalPosterior implements Posterior {
  readonly kind: string = 'diagonal';
  readonly hasClosedFormKl: boolean = true;
  readonly flow: Flow | null = null;
  readonly muHead: Linear;
  readonly logvarHead: Linear;
  protected readonly ws: Workspace;
  /** The heads and noise of the last `sample`. */
  protected last: { heads: PosteriorHeads; eps: FloatArray } | null = null;

  constructor(
    readonly backend: Backend,
    readonly inDim: number,
    readonly latentDim: number,
    protected readonly seed: number,
  ) {
    // Seeds as in the first VAE versions, so models start from the same weights.
    this.muHead = new Linear(backend, { inDim, outDim: latentDim, seed: seed * 1000 + 101 });
    this.logvarHead = new Linear(backend, { inDim, outDim: latentDim, seed: seed * 1000 + 102 });
    this.ws = new Workspace(backend);
  }

  /** Heads in the order their parameters (and gradients in backward) are listed. */
  protected heads(): [string, string, Linear][] {
    return [
      ['mu', 'encoder.mu', this.muHead],
      ['lv', 'encoder.logvar', this.logvarHead],
    ];
  }

  parameters(): Parameter[] {
    return this.heads().flatMap(([, name, head]) => prefixParameters(name, head.parameters()));
  }

  buffers(): NamedBuffer[] {
    return [];
  }

  encode(h: FloatArray, batch: number): PosteriorHeads {
    const out: PosteriorHeads = {};
    for (const [key, , head] of this.heads()) out[key] = head.forward(h, batch);
    return out;
  }

  /** z0 = μ + σ ⊙ ε and log q0(z0) (buffers `z0`, `logq0`). */
  protected sampleBase(heads: PosteriorHeads, eps: FloatArray, rows: number): { z0: FloatArray; logq0: FloatArray } {
    const D = this.latentDim;
    const z0 = this.ws.get('z0', rows * D);
    const logq0 = this.ws.get('logq0', rows);
    this.backend.gaussian.sampleDiag(heads.mu, heads.lv, eps, z0, logq0, rows, D);
    this.last = { heads, eps };
    return { z0, logq0 };
  }

  sample(heads: PosteriorHeads, eps: FloatArray, rows: number): { z: FloatArray; logq: FloatArray } {
    const { z0, logq0 } = this.sampleBase(heads, eps, rows);
    return { z: z0, logq: logq0 };
  }

  klStandard(heads: PosteriorHeads, kl: FloatArray, rows: number): void {
    this.backend.gaussian.klStandard(heads.mu, heads.lv, kl, rows, this.latentDim);
  }

  /** dμ, dlog σ² from ∂L/∂z0 and the log q0 / closed-form KL weights. */
  protected baseBackward(dz0: FloatArray, dLogq: FloatArray | null, dKl: FloatArray | null, rows: number): PosteriorHeads {
    const D = this.latentDim;
    const { heads, eps } = this.last!;
    const dMu = this.ws.get('dMu', rows * D);
    const dLv = this.ws.get('dLv', rows * D);
    let weights = dLogq;
    if (!weights) {
      weights = this.ws.get('zeroRows', rows);
      weights.fill(0);
    }
    this.backend.gaussian.sampleDiagBackward(heads.lv, eps, dz0, weights, dMu, dLv, rows, D);
    if (dKl) {
      const dMuKl = this.ws.get('dMuKl', rows * D);
      const dLvKl = this.ws.get('dLvKl', rows * D);
      this.backend.gaussian.klStandardBackward(heads.mu, heads.lv, dKl, dMuKl, dLvKl, rows, D);
      for (let i = 0; i < rows * D; i++) {
        dMu[i] += dMuKl[i];
        dLv[i] += dLvKl[i];
      }
    }
    return { mu: dMu, lv: dLv };
  }

  sampleBackward(dz: FloatArray, dLogq: FloatArray | null, dKl: FloatArray | null, rows: number): PosteriorHeads {
    return this.baseBackward(dz, dLogq, dKl, rows);
  }

  encodeBackward(dHeads: PosteriorHeads): FloatArray {
    let dh: FloatArray | null = null;
    for (const [key, , head] of this.heads()) {
      const g = head.backward(dHeads[key], true)!;
      if (!dh) {
        dh = this.ws.get('dh', g.length);
        dh.set(g);
      } else {
        for (let i = 0; i < dh.length; i++) dh[i] += g[i];
      }
    }
    return dh!;
  }
}

/** q(z | x) = N(μ, L Lᵀ), L = L* + diag σ. */
export class FullCovariancePosterior extends DiagonalPosterior {
  override readonly kind = 'full-covariance';
  /** Strictly lower-triangular factor L* per example (null when latentDim is 1). */
  readonly covarianceHead: Linear | null;

  constructor(backend: Backend, inDim: number, latentDim: number, seed: number) {
    super(backend, inDim, latentDim, seed);
    this.covarianceHead =
      latentDim > 1 ? new Linear(backend, { inDim, outDim: (latentDim * (latentDim - 1)) / 2, seed: seed * 1000 + 103, initScale: 0.1 }) : null;
  }

  protected override heads(): [string, string, Linear][] {
    return this.covarianceHead ? [...super.heads(), ['cov', 'encoder.cov', this.covarianceHead]] : super.heads();
  }

  override sample(heads: PosteriorHeads, eps: FloatArray, rows: number): { z: FloatArray; logq: FloatArray } {
    const { z0, logq0 } = this.sampleBase(heads, eps, rows);
    // log q is unchanged by L*: det L = Π σ_i for a triangular L.
    if (heads.cov) addLowerTimes(heads.cov, eps, z0, rows, this.latentDim);
    return { z: z0, logq: logq0 };
  }

  override klStandard(heads: PosteriorHeads, kl: FloatArray, rows: number): void {
    super.klStandard(heads, kl, rows);
    if (heads.cov) addHalfSquares(heads.cov, kl, rows, (this.latentDim * (this.latentDim - 1)) / 2);
  }

  override sampleBackward(dz: FloatArray, dLogq: FloatArray | null, dKl: FloatArray | null, rows: number): PosteriorHeads {
    const grads = this.baseBackward(dz, dLogq, dKl, rows);
    const { heads, eps } = this.last!;
    if (!heads.cov) return grads;
    const D = this.latentDim;
    const m = (D * (D - 1)) / 2;
    const dL = this.ws.get('dL', rows * m);
    lowerTimesBackward(dz, eps, dL, rows, D);
    if (dKl) {
      const L = heads.cov;
      for (let r = 0; r < rows; r++) for (let i = r * m; i < (r + 1) * m; i++) dL[i] += dKl[r] * L[i];
    }
    return { ...grads, cov: dL };
  }
}

/** q(z_K | x): a diagonal Gaussian followed by a flow (amortized or shared, with context where the family takes one). */
export class FlowPosterior extends DiagonalPosterior {
  override readonly kind: string;
  override readonly hasClosedFormKl = false;
  override readonly flow: Flow;
  /** Amortized flow parameters per example. */
  readonly flowHead: Linear | null;
  /** Context vector per example (conditional flows such as IAF). */
  readonly contextHead: Linear | null;

  constructor(backend: Backend, spec: Exclude<ResolvedPosterior, string>, inDim: number, latentDim: number, seed: number) {
    super(backend, inDim, latentDim, seed);
    const { flow, layers, amortized, ...extra } = spec;
    this.kind = flow;
    this.flow = FLOW_FAMILIES[flow].create({ dim: latentDim, layers, amortized, seed: seed * 1000 + 200, backend, extra });
    // Flow heads start small so the posterior starts close to the base Gaussian.
    this.flowHead =
      this.flow.amortizedSize > 0 ? new Linear(backend, { inDim, outDim: this.flow.amortizedSize, seed: seed * 1000 + 104, initScale: 0.1 }) : null;
    this.contextHead = this.flow.contextDim > 0 ? new Linear(backend, { inDim, outDim: this.flow.contextDim, seed: seed * 1000 + 105 }) : null;
  }

  protected override heads(): [string, string, Linear][] {
    const heads = super.heads();
    if (this.flowHead) heads.push(['params', 'encoder.flow', this.flowHead]);
    if (this.contextHead) heads.push(['context', 'encoder.context', this.contextHead]);
    return heads;
  }

  /** Head parameters, then the flow's shared ones (`flow.*`), the order checkpoints and the optimizer state use. */
  override parameters(): Parameter[] {
    return [...super.parameters(), ...prefixParameters('flow', this.flow.parameters())];
  }

  override buffers(): NamedBuffer[] {
    return this.flow.buffers ? prefixBuffers('flow', this.flow.buffers()) : [];
  }

  override sample(heads: PosteriorHeads, eps: FloatArray, rows: number, training = false): { z: FloatArray; logq: FloatArray } {
    const { z0, logq0 } = this.sampleBase(heads, eps, rows);
    const { params, context } = heads;
    const out = this.flow.forward(z0, rows, training ? { params, context, training } : { params, context });
    const logq = this.ws.get('logq', rows);
    for (let r = 0; r < rows; r++) logq[r] = logq0[r] - out.logDet[r];
    return { z: out.y, logq };
  }

  override klStandard(): void {
    throw rangeError('A flow posterior has no closed-form KL');
  }

  override sampleBackward(dz: FloatArray, dLogq: FloatArray | null, _dKl: FloatArray | null, rows: number): PosteriorHeads {
    // log q(z_K | x) = log q0(z0) − Σ log|det J|: the log-det's weight is −dLogq.
    const dLogDet = this.ws.get('dLogDet', rows);
    for (let r = 0; r < rows; r++) dLogDet[r] = dLogq ? -dLogq[r] : 0;
    const grads = this.flow.backward(dz, dLogDet);
    const out = this.baseBackward(grads.gradInput, dLogq, null, rows);
    if (grads.gradParams) out.params = grads.gradParams;
    if (grads.gradContext) out.context = grads.gradContext;
    return out;
  }
}

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
