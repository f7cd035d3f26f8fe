/**
 * Residual flows (i-ResNet: Behrmann et al. 2019; Residual Flows: Chen et
 * al. 2019): one block is f(x) = x + g(x), g an MLP
 * `D → hidden[0] → … → D` (LipSwish or ELU between the layers) whose linear
 * maps are spectrally normalized, `W · min(1, c/σ̂)` with σ̂ from power
 * iteration, so Lip(g) ≤ c < 1 and f is invertible (Banach fixed point).
 *
 * Parameters (PyTorch's nn.Sequential indices, activations at odd ones):
 * `g.0.weight [H1, D]`, `g.0.bias`, `g.2.weight`, …; buffers (saved in
 * checkpoints, not trained): the power-iteration vectors `g.<i>.weight_u
 * [out]` and `g.<i>.weight_v [in]` of every layer. The vectors are iterated
 * to convergence at construction and by `powerIterations` steps on every
 * training forward (`training: true`); evaluation, sampling and inverse
 * read them only, so scoring never changes the model. σ̂ = uᵀWv ≤ σ_max(W),
 * so the bound holds exactly only as far as the iteration has converged
 * (it tracks the weights as they train; see the Lipschitz tests).
 *
 * log|det(I + J_g)|: `logDet: 'exact'` (the full Jacobian, D ≤
 * RESIDUAL_EXACT_MAX_DIM; the default for D ≤ RESIDUAL_EXACT_DEFAULT_DIM) or
 * `'estimator'` (Chen et al.'s unbiased Russian-roulette power series with a
 * Hutchinson vector per row and the Neumann-series gradient; see
 * src/backend/kernels/residual.ts). The estimator's noise comes from the
 * Philox stream `seed · 1000 + 11` at `noiseOffset`, which every estimating
 * call advances by batch·(D + 1), so a run reproduces from its seed.
 *
 * Inverse: `x ← y − g(x)` from x = y in float64 until ‖Δx‖∞ ≤
 * `inverseTolerance` (so ‖x − f⁻¹(y)‖∞ ≤ tol·c/(1 − c)), at most
 * `maxInverseIterations` steps; rows still moving throw FlowVaeError
 * ERR_NOT_CONVERGED naming them.
 */
import type { Backend } from '../backend/backend';
import { RESIDUAL_ACTIVATIONS, RESIDUAL_EXACT_MAX_DIM, residualNetSize, residualStashSize, type ResidualActivation } from '../backend/kernels/residual';
import type { BackendName, FloatArray } from '../backend/types';
import { FlowVaeError, expected, rangeError, typeError } from '../errors';
import { createParameter, initNormal, initUniform, type NamedBuffer, type Parameter } from '../nn/parameter';
import {
  checkArray,
  checkBoolean,
  checkFinite,
  checkIntegerBetween,
  checkKnownKeys,
  checkOneOf,
  checkPositiveInt,
  checkSeed,
  checkSize,
  firstNonFinite,
} from '../validate';
import { Workspace, type Flow, type FlowCallOptions, type FlowForwardResult, type FlowGradients, type FlowInverseResult } from './flow';
import { checkBackend } from './stack';

/** Largest D for which the exact log-det is the default. */
export const RESIDUAL_EXACT_DEFAULT_DIM = 16;
/** Default Lipschitz bound c of g. */
export const RESIDUAL_DEFAULT_LIPSCHITZ = 0.97;
/** Power-iteration steps at construction (to convergence for any practical width). */
const INIT_POWER_ITERATIONS = 200;
/** Most terms a row's series may have beyond exactTerms (P(more) = (1 − p)^200). */
const MAX_EXTRA_TERMS = 200;

export type ResidualLogDet = 'exact' | 'estimator';

export interface ResidualBlockOptions {
  dim: number;
  /** Hidden widths of g (default `[w, w]`, w = clamp(4·dim, 16, 128)). */
  hidden?: readonly number[];
  /** 'lipswish' (default) or 'elu'. */
  activation?: ResidualActivation;
  /** Lipschitz bound c of g, in (0, 1) (default 0.97). */
  lipschitz?: number;
  /** Power-iteration steps per training forward (default 5; 0 freezes u and v). */
  powerIterations?: number;
  /** 'exact' (default for dim ≤ 16) or 'estimator'. */
  logDet?: ResidualLogDet;
  /** Terms of the series always taken (default 2). */
  exactTerms?: number;
  /** Success probability p of the geometric number of further terms (default 0.5: on average 1 more). */
  rouletteP?: number;
  /** Stop the inverse iteration when ‖Δx‖∞ ≤ this (default 1e-9). */
  inverseTolerance?: number;
  /** Iteration budget of the inverse (default 2000). */
  maxInverseIterations?: number;
  seed?: number;
  backend?: Backend | BackendName;
}

const OPTION_NAMES = [
  'dim',
  'hidden',
  'activation',
  'lipschitz',
  'powerIterations',
  'logDet',
  'exactTerms',
  'rouletteP',
  'inverseTolerance',
  'maxInverseIterations',
  'seed',
  'backend',
] as const;
/** The options a residual family takes in `extra` (a VAE posterior, a FlowDistribution). */
export const RESIDUAL_FAMILY_OPTIONS = OPTION_NAMES.filter((k) => k !== 'dim' && k !== 'seed' && k !== 'backend');

export function defaultResidualHidden(dim: number): number[] {
  const w = Math.min(128, Math.max(16, 4 * dim));
  return [w, w];
}

interface Layer {
  rows: number;
  cols: number;
  weight: Parameter;
  bias: Parameter;
  u: NamedBuffer;
  v: NamedBuffer;
  /** σ̂ of the last normalization. */
  sigma: FloatArray;
  /** Offsets of W and b in the packed network. */
  wOff: number;
  bOff: number;
}

/** One residual block f(x) = x + g(x). */
export class ResidualBlock implements Flow {
  readonly kind = 'residual';
  readonly dim: number;
  readonly backend: Backend;
  readonly amortizedSize = 0;
  readonly contextDim = 0;
  readonly hidden: readonly number[];
  readonly activation: ResidualActivation;
  readonly lipschitz: number;
  readonly powerIterations: number;
  readonly logDetMode: ResidualLogDet;
  readonly exactTerms: number;
  readonly rouletteP: number;
  readonly inverseTolerance: number;
  readonly maxInverseIterations: number;
  /** Next element of the estimator's noise stream. */
  noiseOffset = 0;
  readonly noiseSeed: number;
  readonly sizes: Uint32Array;
  private readonly layers: Layer[] = [];
  /** The normalized network, packed as the kernels take it, and its gradient. */
  private readonly net: FloatArray;
  private readonly dNet: FloatArray;
  private readonly ws: Workspace;
  private batch = 0;
  private input: FloatArray | null = null;
  private stash: FloatArray | null = null;
  private stashExact = true;

  constructor(options: ResidualBlockOptions) {
    if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
    checkKnownKeys(options, 'options', OPTION_NAMES);
    this.dim = checkPositiveInt(options.dim, 'dim');
    const hidden = options.hidden ?? defaultResidualHidden(this.dim);
    if (!Array.isArray(hidden)) throw typeError(expected('array of positive integers', 'hidden', hidden));
    this.hidden = hidden.map((h, i) => checkPositiveInt(h, `hidden[${i}]`));
    this.activation = checkOneOf(options.activation ?? 'lipswish', 'activation', RESIDUAL_ACTIVATIONS);
    this.lipschitz = checkFinite(options.lipschitz ?? RESIDUAL_DEFAULT_LIPSCHITZ, 'lipschitz');
    if (!(this.lipschitz > 0 && this.lipschitz < 1)) throw rangeError(expected('number in (0, 1)', 'lipschitz', options.lipschitz));
    this.powerIterations = options.powerIterations === undefined ? 5 : checkSize(options.powerIterations, 'powerIterations');
    this.logDetMode = checkOneOf(options.logDet ?? (this.dim <= RESIDUAL_EXACT_DEFAULT_DIM ? 'exact' : 'estimator'), 'logDet', ['exact', 'estimator'] as const);
    if (this.logDetMode === 'exact' && this.dim > RESIDUAL_EXACT_MAX_DIM) {
      throw rangeError(`Expected dim ≤ ${RESIDUAL_EXACT_MAX_DIM} for "logDet" "exact" but dim is ${this.dim}; use "estimator"`);
    }
    this.exactTerms = options.exactTerms === undefined ? 2 : checkSize(options.exactTerms, 'exactTerms');
    if (this.exactTerms > 1000) throw rangeError(expected('integer between 0 and 1000', 'exactTerms', options.exactTerms));
    this.rouletteP = checkFinite(options.rouletteP ?? 0.5, 'rouletteP');
    if (!(this.rouletteP > 0 && this.rouletteP <= 1)) throw rangeError(expected('number in (0, 1]', 'rouletteP', options.rouletteP));
    this.inverseTolerance = checkFinite(options.inverseTolerance ?? 1e-9, 'inverseTolerance');
    if (!(this.inverseTolerance > 0)) throw rangeError(expected('positive finite number', 'inverseTolerance', options.inverseTolerance));
    this.maxInverseIterations =
      options.maxInverseIterations === undefined ? 2000 : checkIntegerBetween(options.maxInverseIterations, 'maxInverseIterations', 1, 1e6);
    const seed = options.seed === undefined ? 0 : checkSeed(options.seed);
    this.noiseSeed = seed * 1000 + 11;
    this.backend = checkBackend(options.backend, 'residual');
    this.ws = new Workspace(this.backend);

    const widths = [this.dim, ...this.hidden, this.dim];
    this.sizes = Uint32Array.from(widths);
    this.net = this.backend.alloc(residualNetSize(widths));
    this.dNet = this.backend.alloc(this.net.length);
    let off = 0;
    for (let l = 0; l + 1 < widths.length; l++) {
      const rows = widths[l + 1];
      const cols = widths[l];
      const name = `g.${2 * l}`;
      const weight = createParameter(this.backend, `${name}.weight`, [rows, cols]);
      const bias = createParameter(this.backend, `${name}.bias`, [rows]);
      // PyTorch's nn.Linear initialization, from the backend-independent stream.
      const layerSeed = seed + 7919 * (l + 1);
      const bound = 1 / Math.sqrt(cols);
      initUniform(this.backend, weight.value, layerSeed, 0, -bound, bound);
      initUniform(this.backend, bias.value, layerSeed, rows * cols, -bound, bound);
      const u: NamedBuffer = { name: `${name}.weight_u`, shape: [rows], value: this.backend.alloc(rows) };
      const v: NamedBuffer = { name: `${name}.weight_v`, shape: [cols], value: this.backend.alloc(cols) };
      initNormal(this.backend, u.value, layerSeed + 1, 0, 1);
      initNormal(this.backend, v.value, layerSeed + 1, rows, 1);
      normalizeInPlace(u.value);
      normalizeInPlace(v.value);
      this.layers.push({ rows, cols, weight, bias, u, v, sigma: this.backend.alloc(1), wOff: off, bOff: off + rows * cols });
      off += rows * (cols + 1);
    }
    this.normalize(INIT_POWER_ITERATIONS);
  }

  parameters(): Parameter[] {
    return this.layers.flatMap((l) => [l.weight, l.bias]);
  }

  buffers(): NamedBuffer[] {
    return this.layers.flatMap((l) => [l.u, l.v]);
  }

  /**
   * The normalized layers `[out, in]` (copies) as g uses them now: their
   * spectral norms are ≤ c up to the power iteration's convergence.
   */
  normalizedWeights(): FloatArray[] {
    this.normalize(0);
    return this.layers.map((l) => this.net.slice(l.wOff, l.wOff + l.rows * l.cols));
  }

  /**
   * g(x) `[batch, D]` (a copy) with the current normalized weights, for tests
   * and diagnostics: one kernel forward with a series of 0 terms (no log-det work).
   */
  residual(x: FloatArray, batch: number): FloatArray {
    checkPositiveInt(batch, 'batch');
    checkArray(x, 'x', batch * this.dim, this.backend.dtype);
    this.normalize(0);
    const y = this.backend.alloc(batch * this.dim);
    const noise = this.backend.alloc(batch * this.dim);
    const terms = this.backend.alloc(batch);
    const stash = this.backend.alloc(batch * residualStashSize(this.sizes, false));
    this.backend.residual.forward(x, this.net, this.sizes, this.activation, noise, terms, 1, 0, y, this.backend.alloc(batch), stash, batch);
    for (let i = 0; i < y.length; i++) y[i] -= x[i];
    return y;
  }

  /** Re-normalizes every layer into the packed network, `iterations` power steps first. */
  private normalize(iterations: number): void {
    const k = this.backend.residual;
    for (const l of this.layers) {
      const n = l.rows * l.cols;
      k.normalize(l.weight.value, l.u.value, l.v.value, this.net.subarray(l.wOff, l.wOff + n), l.sigma, l.rows, l.cols, this.lipschitz, iterations);
      this.net.set(l.bias.value, l.bOff);
    }
  }

  private checkCall(batch: number, options: FlowCallOptions | undefined): void {
    checkPositiveInt(batch, 'batch');
    if (options === undefined) return;
    if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
    checkKnownKeys(options, 'options', ['params', 'context', 'training']);
    if (options.context !== undefined) throw rangeError(expected('no context (the residual flow is not conditional)', 'context', options.context));
    if (options.params !== undefined) throw rangeError(expected('no params (the residual flow has shared parameters)', 'params', options.params));
    if (options.training !== undefined) checkBoolean(options.training, 'training');
  }

  /** Noise and series lengths of one estimating call `[batch, D]`, `[batch]`, advancing noiseOffset. */
  private drawNoise(batch: number): { noise: FloatArray; terms: FloatArray } {
    const d = this.dim;
    const noise = this.ws.get('noise', batch * d);
    const terms = this.ws.get('terms', batch);
    this.backend.rng.normal(this.noiseSeed, this.noiseOffset, noise);
    this.backend.rng.uniform(this.noiseSeed, this.noiseOffset + batch * d, terms);
    this.noiseOffset += batch * (d + 1);
    const q = 1 - this.rouletteP;
    for (let r = 0; r < batch; r++) {
      // N = exactTerms + G, P(G ≥ j) = q^j: G = ⌊log U / log q⌋ for U uniform on (0, 1).
      const extra = q <= 0 ? 0 : Math.min(MAX_EXTRA_TERMS, Math.floor(Math.log(terms[r]) / Math.log(q)));
      terms[r] = this.exactTerms + extra;
    }
    return { noise, terms };
  }

  private forwardWith(x: FloatArray, batch: number, iterations: number): FlowForwardResult {
    checkArray(x, 'x', batch * this.dim, this.backend.dtype);
    this.normalize(iterations);
    const exact = this.logDetMode === 'exact';
    const y = this.ws.get('y', batch * this.dim);
    const logDet = this.ws.get('logDet', batch);
    const stash = this.ws.get('stash', batch * residualStashSize(this.sizes, exact));
    const { noise, terms } = exact ? { noise: null, terms: null } : this.drawNoise(batch);
    this.batch = 0; // backward is refused until a forward succeeds
    const bad = this.backend.residual.forward(x, this.net, this.sizes, this.activation, noise, terms, this.rouletteP, this.exactTerms, y, logDet, stash, batch);
    if (bad > 0) throw this.nonFinite('forward', 'x', x, y, logDet);
    this.batch = batch;
    this.input = x;
    this.stash = stash;
    this.stashExact = exact;
    return { y, logDet };
  }

  forward(x: FloatArray, batch: number, options?: FlowCallOptions): FlowForwardResult {
    this.checkCall(batch, options);
    return this.forwardWith(x, batch, options?.training ? this.powerIterations : 0);
  }

  inverse(y: FloatArray, batch: number, options?: FlowCallOptions): FlowInverseResult {
    this.checkCall(batch, options);
    checkArray(y, 'y', batch * this.dim, this.backend.dtype);
    this.normalize(0);
    const x = this.ws.get('inverseX', batch * this.dim);
    const logDet = this.ws.get('inverseLogDet', batch);
    const exact = this.logDetMode === 'exact';
    const { noise, terms } = exact ? { noise: null, terms: null } : this.drawNoise(batch);
    const bad = this.backend.residual.inverse(
      y,
      this.net,
      this.sizes,
      this.activation,
      noise,
      terms,
      this.rouletteP,
      this.exactTerms,
      this.inverseTolerance,
      this.maxInverseIterations,
      x,
      logDet,
      batch,
    );
    if (bad > 0) {
      const badY = firstNonFinite(y);
      if (badY >= 0) throw new FlowVaeError('ERR_NAN', `ResidualFlow.inverse: row ${Math.floor(badY / this.dim)} of "y" is not finite`);
      const rows: number[] = [];
      for (let r = 0; r < batch; r++) if (!Number.isFinite(logDet[r])) rows.push(r);
      const shown = rows.slice(0, 10).join(', ') + (rows.length > 10 ? ', …' : '');
      throw new FlowVaeError(
        'ERR_NOT_CONVERGED',
        `ResidualFlow.inverse did not converge for row${rows.length === 1 ? '' : 's'} ${shown} (${rows.length} in all) within ` +
          `${this.maxInverseIterations} iterations (tolerance ${this.inverseTolerance})`,
      );
    }
    return { x, logDet };
  }

  backward(gradOutput: FloatArray, gradLogDet: FloatArray): FlowGradients {
    const batch = this.batch;
    if (batch === 0) throw rangeError('ResidualFlow.backward called before a successful forward');
    checkArray(gradOutput, 'gradOutput', batch * this.dim, this.backend.dtype);
    checkArray(gradLogDet, 'gradLogDet', batch, this.backend.dtype);
    const dx = this.ws.get('gradInput', batch * this.dim);
    this.dNet.fill(0);
    const k = this.backend.residual;
    const bad = k.backward(this.input!, this.net, this.sizes, this.activation, this.stashExact, this.stash!, gradOutput, gradLogDet, dx, this.dNet, batch);
    if (bad > 0) {
      const i = Math.max(firstNonFinite(dx), 0);
      const row = Math.floor(i / this.dim);
      for (const [label, a, w] of [
        ['gradOutput', gradOutput, this.dim],
        ['gradLogDet', gradLogDet, 1],
      ] as const) {
        if (firstNonFinite(a.subarray(row * w, (row + 1) * w)) >= 0) {
          throw new FlowVaeError('ERR_NAN', `ResidualFlow.backward: row ${row} of "${label}" is not finite`);
        }
      }
      throw new FlowVaeError('ERR_NAN', `ResidualFlow.backward produced a non-finite value in row ${row} (its inputs are finite)`);
    }
    for (const l of this.layers) {
      const n = l.rows * l.cols;
      k.normalizeBackward(
        l.weight.value,
        l.u.value,
        l.v.value,
        l.sigma[0],
        this.dNet.subarray(l.wOff, l.wOff + n),
        l.weight.grad,
        l.rows,
        l.cols,
        this.lipschitz,
      );
      const db = this.dNet.subarray(l.bOff, l.bOff + l.rows);
      for (let i = 0; i < l.rows; i++) l.bias.grad[i] += db[i];
    }
    for (const p of this.parameters()) {
      const i = firstNonFinite(p.grad);
      if (i >= 0) throw new FlowVaeError('ERR_NAN', `ResidualFlow.backward: the gradient of parameter "${p.name}" is not finite`);
    }
    return { gradInput: dx, gradParams: null, gradContext: null };
  }

  private nonFinite(what: string, label: string, input: FloatArray, y: FloatArray, logDet: FloatArray): FlowVaeError {
    const d = this.dim;
    const bx = firstNonFinite(input);
    if (bx >= 0) return new FlowVaeError('ERR_NAN', `ResidualFlow.${what}: row ${Math.floor(bx / d)} of "${label}" is not finite`);
    const by = firstNonFinite(y);
    const bl = firstNonFinite(logDet);
    const row = by < 0 ? bl : bl < 0 ? Math.floor(by / d) : Math.min(Math.floor(by / d), bl);
    return new FlowVaeError('ERR_NAN', `ResidualFlow.${what} produced a non-finite value in row ${row} (its inputs are finite)`);
  }
}

function normalizeInPlace(a: FloatArray): void {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  s = Math.sqrt(s);
  if (s > 0) for (let i = 0; i < a.length; i++) a[i] /= s;
}
