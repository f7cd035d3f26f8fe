/**
 * A fixed diagonal Gaussian N(μ, diag σ²) over rows of width `dim`, the base
 * distribution of a FlowDistribution (standard normal by default). Sampling
 * draws from the counter-based Philox stream (seed, offset), so the same
 * seed and offset give the same draws on every backend; densities go
 * through the backend's gaussian kernels.
 */
import type { Backend } from '../backend/backend';
import { resolveBackend } from '../backend';
import type { BackendName, FloatArray } from '../backend/types';
import { expected, rangeError, typeError } from '../errors';
import { checkSeed } from '../data/random';
import { checkArray, checkKnownKeys, checkPositiveInt, firstNonFinite } from '../validate';
import { Workspace } from '../flows/flow';
import type { Parameter } from '../nn/parameter';

export interface DiagonalGaussianOptions {
  dim: number;
  /** Mean `[dim]` (default 0). */
  mean?: ArrayLike<number>;
  /** log σ² `[dim]` (default 0). */
  logVar?: ArrayLike<number>;
  /** Backend of the arrays it reads and returns (default: the current backend). */
  backend?: Backend | BackendName;
}

const KEYS = ['dim', 'mean', 'logVar', 'backend'] as const;

function checkVector(value: unknown, name: string, dim: number): Float64Array {
  if (!(ArrayBuffer.isView(value) || Array.isArray(value))) throw typeError(expected(`array of ${dim} finite numbers`, name, value));
  const v = Float64Array.from(value as ArrayLike<number>);
  if (v.length !== dim || firstNonFinite(v) >= 0) throw rangeError(expected(`array of ${dim} finite numbers`, name, value));
  return v;
}

export class DiagonalGaussian {
  readonly dim: number;
  readonly backend: Backend;
  /** `[dim]`, read-only by convention. */
  readonly mean: FloatArray;
  /** `[dim]` log σ², read-only by convention. */
  readonly logVar: FloatArray;
  /** True for N(0, I), which takes the kernels' shortest path. */
  readonly standard: boolean;
  readonly kind = 'gaussian';
  /** Stream elements one draw takes. */
  get noisePerRow(): number {
    return this.dim;
  }
  /** A fixed base: nothing to train. */
  parameters(): Parameter[] {
    return [];
  }
  private readonly ws: Workspace;
  private readonly logDetSigma: number;
  private tiledRows = 0;

  constructor(options: DiagonalGaussianOptions) {
    if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
    checkKnownKeys(options, 'options', KEYS);
    this.dim = checkPositiveInt(options.dim, 'dim');
    const b = resolveBackend(options.backend);
    this.backend = b;
    const mean = options.mean === undefined ? new Float64Array(this.dim) : checkVector(options.mean, 'mean', this.dim);
    const logVar = options.logVar === undefined ? new Float64Array(this.dim) : checkVector(options.logVar, 'logVar', this.dim);
    this.mean = b.from(mean);
    this.logVar = b.from(logVar);
    this.standard = mean.every((v) => v === 0) && logVar.every((v) => v === 0);
    this.logDetSigma = logVar.reduce((s, v) => s + 0.5 * v, 0);
    this.ws = new Workspace(b);
  }

  /** μ and log σ² repeated over `batch` rows, as the per-row kernels take them (refilled when the batch changes). */
  private tiled(batch: number): { mu: FloatArray; lv: FloatArray } {
    const mu = this.ws.get('tiledMean', batch * this.dim);
    const lv = this.ws.get('tiledLogVar', batch * this.dim);
    if (this.tiledRows !== batch) {
      for (let r = 0; r < batch; r++) {
        mu.set(this.mean, r * this.dim);
        lv.set(this.logVar, r * this.dim);
      }
      this.tiledRows = batch;
    }
    return { mu, lv };
  }

  /**
   * Fills `x` `[batch, dim]` with draws whose standard normals are elements
   * `offset …` of the stream `seed`, and `logProb` `[batch]` with their log-density.
   * `eps` receives the standard normals.
   */
  sampleInto(seed: number, offset: number, eps: FloatArray, x: FloatArray, logProb: FloatArray, batch: number): void {
    this.backend.rng.normal(seed, offset, eps);
    if (this.standard) {
      x.set(eps);
      this.backend.gaussian.logStandard(x, logProb, batch, this.dim);
    } else {
      const { mu, lv } = this.tiled(batch);
      this.backend.gaussian.sampleDiag(mu, lv, eps, x, logProb, batch, this.dim);
    }
  }

  /** `n` draws (copies) from the stream (seed, offset): `{ x [n, dim], logProb [n] }`. */
  sample(n: number, options: { seed?: number; offset?: number } = {}): { x: FloatArray; logProb: FloatArray } {
    checkPositiveInt(n, 'n');
    if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
    checkKnownKeys(options, 'options', ['seed', 'offset']);
    const seed = checkSeed(options.seed ?? 0, 'seed');
    const offset = options.offset ?? 0;
    if (typeof offset !== 'number') throw typeError(expected('integer in [0, 2^53)', 'offset', offset));
    if (!Number.isSafeInteger(offset) || offset < 0) throw rangeError(expected('integer in [0, 2^53)', 'offset', offset));
    const b = this.backend;
    const eps = b.alloc(n * this.dim);
    const x = b.alloc(n * this.dim);
    const logProb = b.alloc(n);
    this.sampleInto(seed, offset, eps, x, logProb, n);
    return { x, logProb };
  }

  /** log N(x_r; μ, σ²) into `out` `[batch]` for `x` `[batch, dim]` (backend arrays). */
  logProbInto(x: FloatArray, out: FloatArray, batch: number): void {
    if (this.standard) {
      this.backend.gaussian.logStandard(x, out, batch, this.dim);
      return;
    }
    // log N(x; μ, σ²) = log N((x − μ)/σ; 0, I) − Σ log σ.
    const u = this.ws.get('standardized', batch * this.dim);
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < this.dim; j++) {
        const i = r * this.dim + j;
        u[i] = (x[i] - this.mean[j]) * Math.exp(-0.5 * this.logVar[j]);
      }
    }
    this.backend.gaussian.logStandard(u, out, batch, this.dim);
    for (let r = 0; r < batch; r++) out[r] -= this.logDetSigma;
  }

  /** log-density of each row of `x` `[n, dim]` (a new array). */
  logProb(x: FloatArray): FloatArray {
    if (!(x instanceof Float32Array || x instanceof Float64Array)) throw typeError(expected('Float32Array or Float64Array', 'x', x));
    if (x.length === 0 || x.length % this.dim !== 0) {
      throw rangeError(expected(`array whose length is a positive multiple of dim ${this.dim}`, 'x', x), 'ERR_SHAPE');
    }
    const n = x.length / this.dim;
    const native = this.backend.dtype === 'float32' ? x instanceof Float32Array : x instanceof Float64Array;
    const xb = native ? x : this.backend.from(x);
    const out = this.backend.alloc(n);
    this.logProbInto(xb, out, n);
    return out;
  }

  /** `dx = dOut[r] · ∇ log N(x_r)` = −dOut[r] (x − μ)/σ² (overwrites dx). */
  logProbBackward(x: FloatArray, dOut: FloatArray, dx: FloatArray, batch: number): void {
    if (this.standard) {
      this.backend.gaussian.logStandardBackward(x, dOut, dx, batch, this.dim);
      return;
    }
    checkArray(dx, 'dx', batch * this.dim);
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < this.dim; j++) {
        const i = r * this.dim + j;
        dx[i] = -dOut[r] * (x[i] - this.mean[j]) * Math.exp(-this.logVar[j]);
      }
    }
  }
}
