/**
 * Invertible linear map in LU form (Kingma & Dhariwal 2018, Glow's
 * invertible 1×1 convolution, applied to vectors):
 *
 *   y = x Wᵀ,   W = P L (U + diag(s)),   s = sign ⊙ e^{logAbsDiag},
 *   log|det J| = Σ_j logAbsDiag[j]
 *
 * with P a fixed permutation (W[i, :] = (L V)[perm[i], :], V = U + diag(s)),
 * L unit lower triangular, U strictly upper triangular. Parametrizing
 * s = sign · e^{logAbsDiag} with a fixed sign (as in Glow) keeps s away from
 * zero, so W stays invertible and the log-det costs O(dim).
 *
 * Parameters: `lower` `[dim, dim]` (only the strictly lower triangle is used),
 * `upper` `[dim, dim]` (only the strictly upper triangle), `logAbsDiag`
 * `[dim]`; the entries outside the triangles are ignored and get zero
 * gradient (Glow's masks). Buffers (fixed, saved in checkpoints):
 * `permutation` `[dim]` and `sign` `[dim]` (±1).
 *
 * Initialization as in Glow: W is a random rotation (QR of a seeded Gaussian
 * matrix, in float64) factored by LU with partial pivoting, which fixes P and
 * the signs. Everything is computed in float64 from float32 normals, so every
 * backend starts from the same factors.
 *
 * Per call, W is assembled from the factors (M = L·V by the backend's GEMM,
 * then the row permutation) and the batch goes through the dense kernel:
 * O(dim³ + batch·dim²). Backward maps ∂L/∂W to the factors:
 *   ∂M = Pᵀ ∂W,  ∂L = strict_lower(∂M Vᵀ),  ∂V = Lᵀ ∂M,  ∂U = strict_upper(∂V),
 *   ∂logAbsDiag_j = ∂V_jj · s_j + Σ_rows ∂L/∂logDet.
 * Inverse: x = y W⁻ᵀ with W⁻¹ = V⁻¹ L⁻¹ Pᵀ from triangular solves in float64
 * (O(dim³), then one GEMM); on cpu W⁻¹ is rounded to float32 once, so the
 * round trip is exact to ~dim·cond(W)·2⁻²⁴ relative.
 *
 * Backward reads the input of the last forward: do not modify it before
 * calling backward.
 */
import type { Backend } from '../backend/backend';
import type { FloatArray } from '../backend/types';
import { expected, rangeError } from '../errors';
import { createParameter, type NamedBuffer, type Parameter } from '../nn/parameter';
import { Workspace, type Flow, type FlowCallOptions, type FlowForwardResult, type FlowGradients, type FlowInverseResult } from './flow';
import { checkBackwardCall, checkUnconditionalCall, readPermutation, resolvePieceOptions, type GlowPieceOptions } from './glow-common';

export interface InvertibleLinearLUOptions extends GlowPieceOptions {
  /** Seed of the random rotation W starts from (default 0). */
  seed?: number;
}

/**
 * A seeded random rotation `[dim, dim]` (row-major, float64): Householder QR
 * of a matrix of standard normals (float32 values from the stream, so the
 * same on every backend), columns signed by diag(R) (a Haar rotation).
 */
export function randomRotation(backend: Backend, dim: number, seed: number): Float64Array {
  const D = dim;
  const draws = backend.alloc(D * D);
  backend.rng.normal(seed, 0, draws);
  const a = Float64Array.from(draws, (v) => Math.fround(v));
  const q = new Float64Array(D * D);
  for (let i = 0; i < D; i++) q[i * D + i] = 1;
  const v = new Float64Array(D);
  for (let k = 0; k < D - 1; k++) {
    let norm2 = 0;
    for (let i = k; i < D; i++) norm2 += a[i * D + k] ** 2;
    const alpha = (a[k * D + k] >= 0 ? -1 : 1) * Math.sqrt(norm2);
    let vnorm2 = 0;
    for (let i = k; i < D; i++) {
      v[i] = a[i * D + k] - (i === k ? alpha : 0);
      vnorm2 += v[i] * v[i];
    }
    if (vnorm2 === 0) continue;
    // A ← H A on rows k.., Q ← Q H on columns k.., H = I − 2 v vᵀ / ‖v‖².
    for (let j = k; j < D; j++) {
      let s = 0;
      for (let i = k; i < D; i++) s += v[i] * a[i * D + j];
      s = (2 * s) / vnorm2;
      for (let i = k; i < D; i++) a[i * D + j] -= s * v[i];
    }
    for (let i = 0; i < D; i++) {
      let s = 0;
      for (let j = k; j < D; j++) s += q[i * D + j] * v[j];
      s = (2 * s) / vnorm2;
      for (let j = k; j < D; j++) q[i * D + j] -= s * v[j];
    }
  }
  for (let k = 0; k < D; k++) {
    if (a[k * D + k] < 0) for (let i = 0; i < D; i++) q[i * D + k] = -q[i * D + k];
  }
  return q;
}

/**
 * LU factorization with partial pivoting of `w` `[dim, dim]` (float64):
 * W[i, :] = (L U)[perm[i], :] with L unit lower and U upper triangular,
 * returned packed (strict lower part = L, upper part with diagonal = U).
 */
export function luFactor(w: Float64Array, dim: number): { lu: Float64Array; perm: Uint32Array } {
  const D = dim;
  const a = Float64Array.from(w);
  // rows[i]: the original row now at position i.
  const rows = new Uint32Array(D).map((_, i) => i);
  for (let k = 0; k < D; k++) {
    let p = k;
    for (let i = k + 1; i < D; i++) if (Math.abs(a[i * D + k]) > Math.abs(a[p * D + k])) p = i;
    if (p !== k) {
      for (let j = 0; j < D; j++) {
        const t = a[k * D + j];
        a[k * D + j] = a[p * D + j];
        a[p * D + j] = t;
      }
      const t = rows[k];
      rows[k] = rows[p];
      rows[p] = t;
    }
    const pivot = a[k * D + k];
    if (pivot === 0) throw rangeError('luFactor: the matrix is singular');
    for (let i = k + 1; i < D; i++) {
      const f = (a[i * D + k] /= pivot);
      for (let j = k + 1; j < D; j++) a[i * D + j] -= f * a[k * D + j];
    }
  }
  // (L U)[i, :] = W[rows[i], :], so W[rows[i], :] = (LU)[i, :]: perm = rows⁻¹.
  const perm = new Uint32Array(D);
  for (let i = 0; i < D; i++) perm[rows[i]] = i;
  return { lu: a, perm };
}

export class InvertibleLinearLU implements Flow {
  readonly kind = 'linear-lu';
  readonly dim: number;
  readonly backend: Backend;
  readonly amortizedSize = 0;
  readonly contextDim = 0;
  /** `[dim, dim]`: the strictly lower triangle of L (the rest is ignored). */
  readonly lower: Parameter;
  /** `[dim, dim]`: the strictly upper triangle U (the rest is ignored). */
  readonly upper: Parameter;
  /** `[dim]`: log|s|. */
  readonly logAbsDiag: Parameter;
  private readonly permutationBuffer: NamedBuffer;
  private readonly signBuffer: NamedBuffer;
  private readonly indices: Uint32Array;
  private readonly ws: Workspace;
  private input: FloatArray | null = null;
  private batch = 0;

  constructor(options: InvertibleLinearLUOptions) {
    const { dim, backend, seed } = resolvePieceOptions(options, ['dim', 'seed', 'backend'], 'dense');
    const D = dim;
    this.dim = D;
    this.backend = backend;
    this.lower = createParameter(backend, 'lower', [D, D]);
    this.upper = createParameter(backend, 'upper', [D, D]);
    this.logAbsDiag = createParameter(backend, 'logAbsDiag', [D]);
    const { lu, perm } = luFactor(randomRotation(backend, D, seed), D);
    const sign = backend.alloc(D);
    for (let i = 0; i < D; i++) {
      for (let j = 0; j < D; j++) {
        if (i > j) this.lower.value[i * D + j] = lu[i * D + j];
        else if (i < j) this.upper.value[i * D + j] = lu[i * D + j];
      }
      const s = lu[i * D + i];
      sign[i] = s < 0 ? -1 : 1;
      this.logAbsDiag.value[i] = Math.log(Math.abs(s));
    }
    this.permutationBuffer = { name: 'permutation', shape: [D], value: backend.from(perm) };
    this.signBuffer = { name: 'sign', shape: [D], value: sign };
    this.indices = new Uint32Array(D);
    this.ws = new Workspace(backend);
  }

  parameters(): Parameter[] {
    return [this.lower, this.upper, this.logAbsDiag];
  }

  buffers(): NamedBuffer[] {
    return [this.permutationBuffer, this.signBuffer];
  }

  /** The fixed permutation (a copy): W[i, :] = (L V)[perm[i], :]. */
  get permutation(): Uint32Array {
    return readPermutation(this.permutationBuffer.value, new Uint32Array(this.dim), 'permutation');
  }

  /** The signs of s (a copy). */
  get sign(): FloatArray {
    return this.backend.from(this.signBuffer.value);
  }

  private checkedSigns(): FloatArray {
    const sign = this.signBuffer.value;
    for (let j = 0; j < this.dim; j++) {
      if (sign[j] !== 1 && sign[j] !== -1) {
        throw rangeError(expected(`array of ±1 (element ${j} is ${sign[j]})`, 'sign', sign));
      }
    }
    return sign;
  }

  /** Σ log|s| in float64. */
  private logDetValue(): number {
    let s = 0;
    for (let j = 0; j < this.dim; j++) s += this.logAbsDiag.value[j];
    return s;
  }

  /** The weight `[dim, dim]` from the current factors; keeps L and V (in `ws`) for backward. */
  assembleWeight(): FloatArray {
    const D = this.dim;
    const perm = readPermutation(this.permutationBuffer.value, this.indices, 'permutation');
    const sign = this.checkedSigns();
    const l = this.ws.get('L', D * D);
    const v = this.ws.get('V', D * D);
    const lower = this.lower.value;
    const upper = this.upper.value;
    const logAbs = this.logAbsDiag.value;
    for (let i = 0; i < D; i++) {
      for (let j = 0; j < D; j++) {
        const k = i * D + j;
        l[k] = i > j ? lower[k] : i === j ? 1 : 0;
        v[k] = i < j ? upper[k] : i === j ? sign[i] * Math.exp(logAbs[i]) : 0;
      }
    }
    const m = this.ws.get('M', D * D);
    this.backend.dense.gemm(false, false, D, D, D, 1, l, v, 0, m);
    const w = this.ws.get('W', D * D);
    for (let i = 0; i < D; i++) w.set(m.subarray(perm[i] * D, (perm[i] + 1) * D), i * D);
    return w;
  }

  /** W⁻¹ = V⁻¹ L⁻¹ Pᵀ `[dim, dim]`, by triangular solves in float64. */
  inverseWeight(): FloatArray {
    const D = this.dim;
    const perm = readPermutation(this.permutationBuffer.value, this.indices, 'permutation');
    const sign = this.checkedSigns();
    const lower = this.lower.value;
    const upper = this.upper.value;
    const n = new Float64Array(D * D);
    // N = L⁻¹: forward substitution, column by column (L unit lower).
    for (let c = 0; c < D; c++) {
      for (let i = 0; i < D; i++) {
        let s = i === c ? 1 : 0;
        for (let k = c; k < i; k++) s -= lower[i * D + k] * n[k * D + c];
        n[i * D + c] = s;
      }
    }
    // N ← V⁻¹ N: back substitution (V upper with diagonal s).
    for (let c = 0; c < D; c++) {
      for (let i = D - 1; i >= 0; i--) {
        let s = n[i * D + c];
        for (let k = i + 1; k < D; k++) s -= upper[i * D + k] * n[k * D + c];
        n[i * D + c] = s / (sign[i] * Math.exp(this.logAbsDiag.value[i]));
      }
    }
    // (M⁻¹ Pᵀ)[:, j] = M⁻¹[:, perm[j]].
    const winv = this.ws.get('Winv', D * D);
    for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) winv[i * D + j] = n[i * D + perm[j]];
    return winv;
  }

  forward(x: FloatArray, batch: number, options?: FlowCallOptions): FlowForwardResult {
    checkUnconditionalCall(this.kind, this.backend, x, 'x', batch, this.dim, options);
    const w = this.assembleWeight();
    const y = this.ws.get('y', batch * this.dim);
    const logDet = this.ws.get('logDet', batch);
    this.backend.dense.forward(x, w, null, y, batch, this.dim, this.dim);
    logDet.fill(this.logDetValue());
    this.input = x;
    this.batch = batch;
    return { y, logDet };
  }

  inverse(y: FloatArray, batch: number, options?: FlowCallOptions): FlowInverseResult {
    checkUnconditionalCall(this.kind, this.backend, y, 'y', batch, this.dim, options);
    const winv = this.inverseWeight();
    const x = this.ws.get('inverseX', batch * this.dim);
    const logDet = this.ws.get('inverseLogDet', batch);
    this.backend.dense.forward(y, winv, null, x, batch, this.dim, this.dim);
    logDet.fill(-this.logDetValue());
    return { x, logDet };
  }

  backward(gradOutput: FloatArray, gradLogDet: FloatArray): FlowGradients {
    const batch = this.batch;
    const D = this.dim;
    checkBackwardCall('InvertibleLinearLU', this.backend, batch, D, gradOutput, gradLogDet);
    const w = this.ws.get('W', D * D);
    const l = this.ws.get('L', D * D);
    const v = this.ws.get('V', D * D);
    const dx = this.ws.get('gradInput', batch * D);
    const dW = this.ws.get('dW', D * D);
    this.backend.dense.backward(this.input!, w, gradOutput, dx, dW, null, batch, D, D, false);
    // ∂M = Pᵀ ∂W: row perm[i] of ∂M is row i of ∂W.
    const dM = this.ws.get('dM', D * D);
    for (let i = 0; i < D; i++) dM.set(dW.subarray(i * D, (i + 1) * D), this.indices[i] * D);
    const dL = this.ws.get('dL', D * D);
    const dV = this.ws.get('dV', D * D);
    this.backend.dense.gemm(false, true, D, D, D, 1, dM, v, 0, dL);
    this.backend.dense.gemm(true, false, D, D, D, 1, l, dM, 0, dV);
    const gLower = this.lower.grad;
    const gUpper = this.upper.grad;
    for (let i = 0; i < D; i++) {
      for (let j = 0; j < D; j++) {
        const k = i * D + j;
        if (i > j) gLower[k] += dL[k];
        else if (i < j) gUpper[k] += dV[k];
      }
    }
    let sumLogDet = 0;
    for (let r = 0; r < batch; r++) sumLogDet += gradLogDet[r];
    const gLog = this.logAbsDiag.grad;
    for (let j = 0; j < D; j++) gLog[j] += dV[j * D + j] * v[j * D + j] + sumLogDet;
    return { gradInput: dx, gradParams: null, gradContext: null };
  }
}
