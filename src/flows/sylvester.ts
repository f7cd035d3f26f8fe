/**
 * SylvesterFlow: a stack of K Sylvester layers (van den Berg, Hasenclever,
 * Tomczak & Welling 2018),
 *
 *     f(z) = z + Q R tanh(R̃ Qᵀ z + b),   log|det J| = Σ_i log|1 + tanh'(a_i) R_ii R̃_ii|,
 *
 * run as one kernel call per batch. See src/backend/kernels/sylvester.ts for
 * the variants (orthogonal Q by Björck steps, Householder products, or the
 * identity/reversal of the triangular variant) and the parameter layout.
 *
 * Shared parameters (default) are named per kind for all layers at once:
 * `offDiagonal` [K, M, M] (R above the diagonal, R̃ transposed below it, the
 * diagonal unused), `diagonal` [K, M] and `diagonalTilde` [K, M] (raw values
 * of R_ii = tanh(·) and R̃_ii = tanh(·)), `bias` [K, M], and `q` [K, D, M]
 * (orthogonal) or `householder` [K, n, D] (householder). They start near the
 * identity map: R, R̃ and b uniform in ±0.01 (so Q R h is small whatever Q
 * is); Q's raw matrix a random matrix with orthonormal columns (Gram–Schmidt
 * of uniforms), Householder vectors uniform in ±1. All come from the
 * backend's counter-based generator, so every backend starts from the same
 * values.
 *
 * Amortized (`amortized: true`): the flow has no parameters of its own; each
 * call takes `options.params` `[batch, amortizedSize]` in the same layout
 * (one parameter set per row, e.g. an encoder's output head) and backward
 * returns its gradient.
 */
import { Buffer } from 'node:buffer';
import type { Backend } from '../backend/backend';
import { checkBackend } from './stack';
import {
  SYLVESTER_MAX_ITERATIONS,
  SYLVESTER_VARIANTS,
  sylvesterLayout,
  type SylvesterLayout,
  type SylvesterShape,
  type SylvesterVariant,
} from '../backend/kernels/sylvester';
import type { BackendName, FloatArray } from '../backend/types';
import { FlowVaeError, expected, rangeError, typeError } from '../errors';
import type { Parameter } from '../nn/parameter';
import {
  checkArray,
  checkBoolean,
  checkInRange,
  checkIntegerBetween,
  checkKnownKeys,
  checkOneOf,
  checkPositiveInt,
  firstNonFinite,
  sizeProduct,
} from '../validate';
import { Workspace, type Flow, type FlowCallOptions, type FlowForwardResult, type FlowGradients, type FlowInverseResult } from './flow';

export type { SylvesterVariant } from '../backend/kernels/sylvester';

export interface SylvesterFlowOptions {
  /** D: width of a row. */
  dim: number;
  /** K: layers in the stack (default 1). */
  layers?: number;
  variant: SylvesterVariant;
  /** M: columns of Q, orthogonal variant only (1..dim, default dim); the others use M = dim. */
  m?: number;
  /** Householder reflections per layer, householder variant only (default 8, the paper's choice). */
  householders?: number;
  /** Parameters come per row from `options.params` (default false: shared parameters). */
  amortized?: boolean;
  /** Seed of the initialization stream (default 0). */
  seed?: number;
  backend?: Backend | BackendName;
  /** Most Björck steps per matrix (orthogonal variant; default 100, as in the paper's code). */
  bjorckSteps?: number;
  /**
   * Björck stops once max|QᵀQ − I| ≤ this; needing more than bjorckSteps steps
   * throws ERR_NOT_CONVERGED. Default 1e-5 on float32 backends (safely above
   * float32 rounding of QᵀQ), 1e-12 on float64 (Björck converges
   * quadratically, so this costs one or two more steps).
   */
  bjorckTolerance?: number;
  /** inverse: a row is solved when max|f(x) − y| ≤ tolerance · (1 + max|y|) (default 1e-6). */
  inverseTolerance?: number;
  /** inverse: most Newton iterations per scalar equation and outer refinements per layer (default 100). */
  inverseMaxIterations?: number;
}

const OPTION_KEYS = [
  'dim',
  'layers',
  'variant',
  'm',
  'householders',
  'amortized',
  'seed',
  'backend',
  'bjorckSteps',
  'bjorckTolerance',
  'inverseTolerance',
  'inverseMaxIterations',
] as const;

/** Spread of the uniform initialization around the identity map. */
const INIT_SCALE = 0.01;

export class SylvesterFlow implements Flow {
  readonly kind = 'sylvester';
  readonly dim: number;
  readonly backend: Backend;
  readonly amortizedSize: number;
  readonly contextDim = 0;
  readonly variant: SylvesterVariant;
  readonly layers: number;
  readonly m: number;
  readonly householders: number;
  readonly amortized: boolean;
  /** The kernel shape of this stack. */
  readonly shape: SylvesterShape;
  /** Offsets of each parameter kind inside one parameter set. */
  readonly layout: SylvesterLayout;
  /** max|QᵀQ − I| of the last forward or inverse (orthogonal variant; 0 otherwise). */
  lastOrthogonalityError = 0;

  private readonly bjorck: { maxSteps: number; tolerance: number };
  private readonly inverseOptions: { maxIterations: number; tolerance: number };
  private readonly value: FloatArray | null;
  private readonly grad: FloatArray | null;
  private readonly params: Parameter[];
  private readonly ws: Workspace;
  private batch = 0;
  private lastParams: FloatArray | null = null;

  constructor(options: SylvesterFlowOptions) {
    if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
    checkKnownKeys(options, 'options', OPTION_KEYS);
    this.dim = checkPositiveInt(options.dim, 'dim');
    this.layers = checkPositiveInt(options.layers ?? 1, 'layers');
    this.variant = checkOneOf(options.variant, 'variant', SYLVESTER_VARIANTS);
    if (this.variant === 'orthogonal') {
      this.m = checkPositiveInt(options.m ?? this.dim, 'm');
      if (this.m > this.dim) throw rangeError(expected(`integer between 1 and dim (${this.dim})`, 'm', this.m));
    } else {
      if (options.m !== undefined && options.m !== this.dim) {
        throw rangeError(expected(`dim (${this.dim}) for the ${this.variant} variant`, 'm', options.m));
      }
      this.m = this.dim;
    }
    if (this.variant === 'householder') {
      this.householders = checkPositiveInt(options.householders ?? 8, 'householders');
    } else {
      if (options.householders !== undefined) {
        throw rangeError(`Option "householders" applies to the householder variant only, not to "${this.variant}"`);
      }
      this.householders = 0;
    }
    this.amortized = checkBoolean(options.amortized ?? false, 'amortized');
    const seed = options.seed ?? 0;
    if (typeof seed !== 'number') throw typeError(expected('integer in [0, 2^53)', 'seed', seed));
    if (!Number.isSafeInteger(seed) || seed < 0) throw rangeError(expected('integer in [0, 2^53)', 'seed', seed));
    const backend = checkBackend(options.backend, 'sylvester');
    this.backend = backend;
    this.bjorck = {
      maxSteps: checkIntegerBetween(options.bjorckSteps ?? 100, 'bjorckSteps', 0, SYLVESTER_MAX_ITERATIONS),
      tolerance: checkInRange(options.bjorckTolerance ?? (backend.dtype === 'float64' ? 1e-12 : 1e-5), 'bjorckTolerance', 0, 1, {
        lo: true,
        hi: true,
      }),
    };
    this.inverseOptions = {
      maxIterations: checkIntegerBetween(options.inverseMaxIterations ?? 100, 'inverseMaxIterations', 1, SYLVESTER_MAX_ITERATIONS),
      tolerance: checkInRange(options.inverseTolerance ?? 1e-6, 'inverseTolerance', 0, 1, { lo: true, hi: true }),
    };
    this.shape = { variant: this.variant, dim: this.dim, m: this.m, layers: this.layers, householders: this.householders };
    sizeProduct(this.layers, this.m, Math.max(this.m, this.dim));
    this.layout = sylvesterLayout(this.shape);
    this.amortizedSize = this.amortized ? this.layout.size : 0;
    this.ws = new Workspace(backend);
    if (this.amortized) {
      this.value = null;
      this.grad = null;
      this.params = [];
    } else {
      this.value = backend.alloc(this.layout.size);
      this.grad = backend.alloc(this.layout.size);
      this.params = this.namedParameters();
      this.initialize(seed);
    }
  }

  /** Shared parameters as named views of one packed array (empty when amortized). */
  parameters(): Parameter[] {
    return this.params;
  }

  private namedParameters(): Parameter[] {
    const { dim: d, m, layers: k, householders: n } = this;
    const lay = this.layout;
    const view = (name: string, offset: number, shape: number[]): Parameter => {
      const size = shape.reduce((a, b) => a * b, 1);
      return { name, shape, value: this.value!.subarray(offset, offset + size), grad: this.grad!.subarray(offset, offset + size) };
    };
    const list = [
      view('offDiagonal', lay.offDiagonal, [k, m, m]),
      view('diagonal', lay.diagonal, [k, m]),
      view('diagonalTilde', lay.diagonalTilde, [k, m]),
      view('bias', lay.bias, [k, m]),
    ];
    if (this.variant === 'orthogonal') list.push(view('q', lay.q, [k, d, m]));
    if (this.variant === 'householder') list.push(view('householder', lay.q, [k, n, d]));
    return list;
  }

  private initialize(seed: number): void {
    const v = this.value!;
    const lay = this.layout;
    const { dim: d, m } = this;
    // Uniforms of the stream are float32-exact, so every backend reads the same
    // u; each value is then computed in float64 and rounded once on storing.
    this.backend.rng.uniform(seed, 0, v);
    const u = Float64Array.from(v, (x) => 2 * x - 1);
    for (let i = 0; i < lay.q; i++) {
      const offDiagonalEntry = i < lay.diagonal && (i % (m * m)) % (m + 1) === 0; // S's unused diagonal
      v[i] = offDiagonalEntry ? 0 : INIT_SCALE * u[i];
    }
    if (this.variant === 'householder') {
      for (let i = lay.q; i < v.length; i++) v[i] = u[i];
    } else if (this.variant === 'orthogonal') {
      // A random matrix with orthonormal columns: Björck then needs few steps,
      // and the directions Q does not depend on (A → A·S, S symmetric) are
      // spread over all entries, so no single entry has a vanishing gradient
      // that Adam would magnify.
      for (let k = 0; k < this.layers; k++) {
        const a = u.subarray(lay.q + k * d * m, lay.q + (k + 1) * d * m);
        for (let c = 0; c < m; c++) {
          for (let prev = 0; prev < c; prev++) {
            let dotp = 0;
            for (let r = 0; r < d; r++) dotp += a[r * m + c] * a[r * m + prev];
            for (let r = 0; r < d; r++) a[r * m + c] -= dotp * a[r * m + prev];
          }
          let norm = 0;
          for (let r = 0; r < d; r++) norm += a[r * m + c] ** 2;
          norm = Math.sqrt(norm);
          for (let r = 0; r < d; r++) a[r * m + c] /= norm;
        }
        for (let i = 0; i < d * m; i++) v[lay.q + k * d * m + i] = a[i];
      }
    }
  }

  private sets(batch: number): number {
    return this.amortized ? batch : 1;
  }

  /** The parameter array for this call: the caller's per-row array (amortized) or the packed shared one. */
  private callParams(batch: number, options: FlowCallOptions | undefined): FloatArray {
    if (this.amortized) return checkArray(options?.params, 'params', sizeProduct(batch, this.layout.size), this.backend.dtype);
    if (options?.params !== undefined) {
      throw rangeError('The sylvester flow has shared parameters; "params" must not be given unless it is amortized');
    }
    return this.value!;
  }

  private checkFinite(a: FloatArray, name: string, width: number): void {
    const i = firstNonFinite(a);
    if (i >= 0) {
      throw new FlowVaeError('ERR_NAN', `Non-finite value ${a[i]} in "${name}" at row ${Math.floor(i / width)} (column ${i % width})`);
    }
  }

  /** First row of each run of consecutive rows whose raw Q values are bitwise equal. */
  private repeatedRuns(batch: number, params: FloatArray): number[] {
    // Byte comparison (memcmp): exact, so -0/+0 or NaN payloads never merge rows that could differ.
    const bytes = params.BYTES_PER_ELEMENT;
    const rowBytes = this.layout.size * bytes;
    const qBytes = this.layers * this.layout.qRawPerLayer * bytes;
    const qAt = (r: number) => new Uint8Array(params.buffer, params.byteOffset + r * rowBytes + this.layout.q * bytes, qBytes);
    const starts = [0];
    let previous = qAt(0);
    for (let r = 1; r < batch; r++) {
      const current = qAt(r);
      if (Buffer.compare(current, previous) !== 0) starts.push(r);
      previous = current;
    }
    return starts;
  }

  /**
   * Orthogonalizes Q into the named workspace, throwing on undefined or
   * unconverged matrices. Consecutive amortized rows with bit-identical raw Q
   * values (one example's parameters repeated for many samples, as
   * `VAE.logLikelihood` does) share one orthogonalization: Björck costs
   * hundreds of times what the flow itself does per row.
   */
  private orthogonalize(batch: number, params: FloatArray, name: string): FloatArray {
    const sets = this.sets(batch);
    const perSet = this.layers * this.layout.qPerLayer;
    const q = this.ws.get(name, sizeProduct(sets, perSet));
    if (this.variant === 'triangular') {
      this.lastOrthogonalityError = 0;
      return q;
    }
    const starts = this.amortized ? this.repeatedRuns(batch, params) : null;
    let residual: number;
    if (starts && starts.length < sets) {
      const size = this.layout.size;
      const unique = this.ws.get(`${name}.uniqueParams`, starts.length * size);
      starts.forEach((row, i) => unique.set(params.subarray(row * size, (row + 1) * size), i * size));
      const uniqueQ = this.ws.get(`${name}.uniqueQ`, starts.length * perSet);
      residual = this.backend.sylvester.orthogonalize(this.shape, starts.length, unique, uniqueQ, this.bjorck);
      starts.forEach((row, i) => {
        const end = i + 1 < starts.length ? starts[i + 1] : batch;
        const qi = uniqueQ.subarray(i * perSet, (i + 1) * perSet);
        for (let r = row; r < end; r++) q.set(qi, r * perSet);
      });
    } else {
      residual = this.backend.sylvester.orthogonalize(this.shape, sets, params, q, this.bjorck);
    }
    this.lastOrthogonalityError = residual;
    if (Number.isNaN(residual)) {
      this.checkFinite(params, 'params', this.layout.size);
      const what = this.variant === 'orthogonal' ? 'raw Q matrix' : 'Householder vector';
      throw new FlowVaeError('ERR_NAN', `Q is undefined: some ${what} is zero`);
    }
    if (residual > this.bjorck.tolerance) {
      throw new FlowVaeError(
        'ERR_NOT_CONVERGED',
        `Björck orthogonalization did not converge in ${this.bjorck.maxSteps} steps: max|QᵀQ − I| = ${residual.toExponential(2)} ` +
          `> bjorckTolerance ${this.bjorck.tolerance} (raise bjorckSteps or bjorckTolerance)`,
      );
    }
    return q;
  }

  forward(x: FloatArray, batch: number, options?: FlowCallOptions): FlowForwardResult {
    checkPositiveInt(batch, 'batch');
    checkArray(x, 'x', sizeProduct(batch, this.dim), this.backend.dtype);
    const params = this.callParams(batch, options);
    this.checkFinite(x, 'x', this.dim);
    const q = this.orthogonalize(batch, params, 'q');
    const y = this.ws.get('y', batch * this.dim);
    const logDet = this.ws.get('logDet', batch);
    const saved = this.ws.get('saved', sizeProduct(batch, this.layout.savedPerRow));
    this.backend.sylvester.forward(this.shape, batch, this.amortized, x, params, q, y, logDet, saved);
    if (firstNonFinite(logDet) >= 0 || firstNonFinite(y) >= 0) {
      if (this.amortized) this.checkFinite(params, 'params', this.layout.size);
      const rows = [firstNonFinite(logDet), Math.floor(firstNonFinite(y) / this.dim)].filter((r) => r >= 0);
      throw new FlowVaeError('ERR_NAN', `The sylvester flow produced a non-finite output at row ${Math.min(...rows)} (parameters too large?)`);
    }
    this.batch = batch;
    this.lastParams = params;
    return { y, logDet };
  }

  inverse(y: FloatArray, batch: number, options?: FlowCallOptions): FlowInverseResult {
    checkPositiveInt(batch, 'batch');
    checkArray(y, 'y', sizeProduct(batch, this.dim), this.backend.dtype);
    const params = this.callParams(batch, options);
    this.checkFinite(y, 'y', this.dim);
    const q = this.orthogonalize(batch, params, 'inverseQ');
    const x = this.ws.get('inverseX', batch * this.dim);
    const logDet = this.ws.get('inverseLogDet', batch);
    const failed = this.backend.sylvester.inverse(this.shape, batch, this.amortized, y, params, q, x, logDet, this.inverseOptions);
    if (failed > 0) {
      const first = Math.floor(firstNonFinite(x) / this.dim);
      throw new FlowVaeError(
        'ERR_NOT_CONVERGED',
        `The sylvester inverse did not converge for ${failed} of ${batch} rows (first: row ${first}) within ` +
          `${this.inverseOptions.maxIterations} iterations to tolerance ${this.inverseOptions.tolerance}`,
      );
    }
    return { x, logDet };
  }

  backward(gradOutput: FloatArray, gradLogDet: FloatArray): FlowGradients {
    const batch = this.batch;
    if (batch === 0 || !this.lastParams) throw rangeError('SylvesterFlow.backward called before forward');
    checkArray(gradOutput, 'gradOutput', batch * this.dim, this.backend.dtype);
    checkArray(gradLogDet, 'gradLogDet', batch, this.backend.dtype);
    const sets = this.sets(batch);
    const gradX = this.ws.get('gradX', batch * this.dim);
    const gradParams = this.ws.get(this.amortized ? 'gradParams' : 'gradShared', sizeProduct(sets, this.layout.size));
    const q = this.ws.get('q', sizeProduct(sets, this.layers, this.layout.qPerLayer));
    const gradQ = this.ws.get('gradQ', q.length);
    const saved = this.ws.get('saved', sizeProduct(batch, this.layout.savedPerRow));
    const params = this.lastParams;
    this.backend.sylvester.backward(this.shape, batch, this.amortized, params, q, saved, gradOutput, gradLogDet, gradX, gradParams, gradQ);
    if (this.variant !== 'triangular') {
      this.backend.sylvester.orthogonalizeBackward(this.shape, sets, params, gradQ, gradParams, this.bjorck);
    }
    if (!this.amortized) {
      const grad = this.grad!;
      for (let i = 0; i < grad.length; i++) grad[i] += gradParams[i];
    }
    return { gradInput: gradX, gradParams: this.amortized ? gradParams : null, gradContext: null };
  }
}
