/**
 * Reference residual-flow kernels (float64), row by row: the definition the
 * native kernels are tested against (see kernels/residual.ts for the
 * mathematics, layouts and conventions).
 */
import {
  RESIDUAL_ACTIVATIONS,
  RESIDUAL_EXACT_MAX_DIM,
  residualNetSize,
  residualSeriesWeight,
  residualStashSize,
  type ResidualActivation,
  type ResidualKernels,
} from '../kernels/residual';
import type { FloatArray } from '../types';
import { expected, rangeError, typeError } from '../../errors';
import {
  checkArray,
  checkDisjoint,
  checkFinite,
  checkIntegerBetween,
  checkOneOf,
  checkOptionalArray,
  checkPositiveInt,
  checkSize,
  sizeProduct,
} from '../../validate';

const LIPSWISH_SCALE = 1 / 1.1;

/** φ(a), φ'(a), φ''(a) of a residual activation. */
export function residualActivation(kind: ResidualActivation, a: number, out: { f: number; d1: number; d2: number }): void {
  if (kind === 'lipswish') {
    const s = a >= 0 ? 1 / (1 + Math.exp(-a)) : Math.exp(a) / (1 + Math.exp(a));
    const ds = s * (1 - s);
    out.f = a * s * LIPSWISH_SCALE;
    out.d1 = (s + a * ds) * LIPSWISH_SCALE;
    out.d2 = ds * (2 + a * (1 - 2 * s)) * LIPSWISH_SCALE;
  } else if (a > 0) {
    out.f = a;
    out.d1 = 1;
    out.d2 = 0;
  } else {
    const e = Math.exp(a);
    out.f = Math.expm1(a);
    out.d1 = e;
    out.d2 = e;
  }
}

const SIZES_WHAT = 'layer widths [D, H..., D] as a Uint32Array of 2 to 65 integers in [1, 65536]';

/** Checks `sizes` `[L + 1]`: 1 ≤ L ≤ 64, every width in [1, 65536], first = last = D. Returns D. */
export function checkResidualSizes(sizes: unknown): number {
  if (!(sizes instanceof Uint32Array)) throw typeError(expected(SIZES_WHAT, 'sizes', sizes));
  let ok = sizes.length >= 2 && sizes.length <= 65 && sizes[sizes.length - 1] === sizes[0];
  for (let i = 0; ok && i < sizes.length; i++) ok = sizes[i] >= 1 && sizes[i] <= 65536;
  if (!ok) throw rangeError(expected(SIZES_WHAT, 'sizes', sizes));
  return sizes[0];
}

/** Per-call workspace of one row's passes through g (allocated once per call, reused for every row). */
class RowNet {
  readonly d: number;
  readonly layers: number;
  readonly hidden: number;
  /** Offsets of W_l, b_l in net, of hidden layer l in the hidden arrays. */
  readonly wOff: number[] = [];
  readonly bOff: number[] = [];
  readonly hOff: number[] = [];
  readonly pre: Float64Array;
  readonly act: Float64Array;
  readonly d1: Float64Array;
  readonly d2: Float64Array;
  readonly g: Float64Array;
  private readonly t0: Float64Array;
  private readonly t1: Float64Array;
  private readonly phi = { f: 0, d1: 0, d2: 0 };
  /** Tangents of the hidden pre-activations `[D, hidden]` and the Jacobian `[D, D]` (row i, column t). */
  readonly tangents: Float64Array;
  readonly jac: Float64Array;
  readonly inject: Float64Array;

  constructor(
    readonly sizes: Uint32Array,
    readonly net: FloatArray,
    readonly kind: ResidualActivation,
    tangents: number,
  ) {
    this.layers = sizes.length - 1;
    this.d = sizes[0];
    let w = 0;
    let h = 0;
    let maxWidth = this.d;
    for (let l = 0; l < this.layers; l++) {
      this.wOff.push(w);
      this.bOff.push(w + sizes[l + 1] * sizes[l]);
      w += sizes[l + 1] * (sizes[l] + 1);
      if (l + 1 < this.layers) {
        this.hOff.push(h);
        h += sizes[l + 1];
      }
      maxWidth = Math.max(maxWidth, sizes[l + 1]);
    }
    this.hidden = h;
    this.pre = new Float64Array(h);
    this.act = new Float64Array(h);
    this.d1 = new Float64Array(h);
    this.d2 = new Float64Array(h);
    this.g = new Float64Array(this.d);
    this.t0 = new Float64Array(maxWidth);
    this.t1 = new Float64Array(maxWidth);
    this.tangents = new Float64Array(tangents * h);
    this.jac = new Float64Array(tangents * this.d);
    this.inject = new Float64Array(h);
  }

  /** Primal pass at x (row `r` of `xs`, or the float64 vector `x` when given): pre, act, d1, d2 and g. */
  primal(xs: ArrayLike<number>, base: number): void {
    const { sizes, net } = this;
    let inp: ArrayLike<number> = xs;
    let inBase = base;
    for (let l = 0; l < this.layers; l++) {
      const m = sizes[l];
      const n = sizes[l + 1];
      const last = l + 1 === this.layers;
      const wo = this.wOff[l];
      const bo = this.bOff[l];
      const ho = last ? 0 : this.hOff[l];
      for (let i = 0; i < n; i++) {
        let s = net[bo + i];
        for (let j = 0; j < m; j++) s += net[wo + i * m + j] * inp[inBase + j];
        if (last) {
          this.g[i] = s;
        } else {
          residualActivation(this.kind, s, this.phi);
          this.pre[ho + i] = s;
          this.act[ho + i] = this.phi.f;
          this.d1[ho + i] = this.phi.d1;
          this.d2[ho + i] = this.phi.d2;
        }
      }
      if (!last) {
        inp = this.act;
        inBase = ho;
      }
    }
  }

  /** out = Jᵀ r (after primal). */
  vjp(r: Float64Array, out: Float64Array): void {
    const { sizes, net } = this;
    let cur = this.t0;
    let nxt = this.t1;
    for (let i = 0; i < this.d; i++) cur[i] = r[i];
    for (let l = this.layers - 1; l >= 0; l--) {
      const m = sizes[l];
      const n = sizes[l + 1];
      const wo = this.wOff[l];
      for (let j = 0; j < m; j++) nxt[j] = 0;
      for (let i = 0; i < n; i++) {
        const ci = cur[i];
        for (let j = 0; j < m; j++) nxt[j] += net[wo + i * m + j] * ci;
      }
      if (l > 0) {
        const ho = this.hOff[l - 1];
        for (let j = 0; j < m; j++) nxt[j] *= this.d1[ho + j];
      }
      const t = cur;
      cur = nxt;
      nxt = t;
    }
    for (let i = 0; i < this.d; i++) out[i] = cur[i];
  }

  /**
   * Tangent pass (after primal) for `count` tangent vectors: tangent t is
   * e_t when `v` is null, else v. Fills tangents (hidden pre-activation
   * tangents) and jac column t = J v_t (stored jac[t·D + i]).
   */
  tangent(v: Float64Array | null, count: number): void {
    const { sizes, net, hidden } = this;
    for (let t = 0; t < count; t++) {
      const tb = t * hidden;
      for (let l = 0; l < this.layers; l++) {
        const m = sizes[l];
        const n = sizes[l + 1];
        const wo = this.wOff[l];
        const last = l + 1 === this.layers;
        for (let i = 0; i < n; i++) {
          let s = 0;
          if (l === 0) {
            if (v) for (let j = 0; j < m; j++) s += net[wo + i * m + j] * v[j];
            else s = net[wo + i * m + t];
          } else {
            const po = this.hOff[l - 1];
            for (let j = 0; j < m; j++) s += net[wo + i * m + j] * this.d1[po + j] * this.tangents[tb + po + j];
          }
          if (last) this.jac[t * this.d + i] = s;
          else this.tangents[tb + this.hOff[l] + i] = s;
        }
      }
    }
  }

  /**
   * Adds ∂/∂(net, a) of `scale · wᵀ J v_t` for tangent t (after tangent()):
   * weight gradients into dNet, the pre-activation terms into inject.
   * v null means v_t = e_t.
   */
  tangentBackward(t: number, v: Float64Array | null, w: ArrayLike<number>, wBase: number, scale: number, dNet: FloatArray): void {
    const { sizes, net, hidden } = this;
    const tb = t * hidden;
    let cur = this.t0;
    let nxt = this.t1;
    for (let i = 0; i < this.d; i++) cur[i] = scale * w[wBase + i];
    for (let l = this.layers - 1; l >= 0; l--) {
      const m = sizes[l];
      const n = sizes[l + 1];
      const wo = this.wOff[l];
      if (l === 0) {
        for (let i = 0; i < n; i++) {
          if (v) for (let j = 0; j < m; j++) dNet[wo + i * m + j] += cur[i] * v[j];
          else dNet[wo + i * m + t] += cur[i];
        }
        break;
      }
      const po = this.hOff[l - 1];
      for (let j = 0; j < m; j++) nxt[j] = 0;
      for (let i = 0; i < n; i++) {
        const ci = cur[i];
        for (let j = 0; j < m; j++) {
          dNet[wo + i * m + j] += ci * this.d1[po + j] * this.tangents[tb + po + j];
          nxt[j] += net[wo + i * m + j] * ci;
        }
      }
      for (let j = 0; j < m; j++) {
        this.inject[po + j] += this.d2[po + j] * this.tangents[tb + po + j] * nxt[j];
        nxt[j] *= this.d1[po + j];
      }
      const tmp = cur;
      cur = nxt;
      nxt = tmp;
    }
  }

  /** Primal backward from dy (row r of dys) plus inject: accumulates dNet, writes dx row. */
  primalBackward(xs: ArrayLike<number>, dys: ArrayLike<number>, base: number, dNet: FloatArray, dx: FloatArray): void {
    const { sizes, net } = this;
    let cur = this.t0;
    let nxt = this.t1;
    for (let i = 0; i < this.d; i++) cur[i] = dys[base + i];
    for (let l = this.layers - 1; l >= 0; l--) {
      const m = sizes[l];
      const n = sizes[l + 1];
      const wo = this.wOff[l];
      const bo = this.bOff[l];
      const po = l > 0 ? this.hOff[l - 1] : 0;
      for (let j = 0; j < m; j++) nxt[j] = 0;
      for (let i = 0; i < n; i++) {
        const ci = cur[i];
        dNet[bo + i] += ci;
        for (let j = 0; j < m; j++) {
          const input = l > 0 ? this.act[po + j] : xs[base + j];
          dNet[wo + i * m + j] += ci * input;
          nxt[j] += net[wo + i * m + j] * ci;
        }
      }
      if (l > 0) for (let j = 0; j < m; j++) nxt[j] = nxt[j] * this.d1[po + j] + this.inject[po + j];
      const tmp = cur;
      cur = nxt;
      nxt = tmp;
    }
    for (let i = 0; i < this.d; i++) dx[base + i] = dys[base + i] + cur[i];
  }
}

/**
 * LU with partial pivoting of `a [n, n]` (in place). Returns log|det a|, and
 * when `inv` is given writes a⁻¹ into it (row-major); -Infinity when singular.
 */
export function luLogAbsDet(a: Float64Array, n: number, inv: Float64Array | null, perm: Int32Array, col: Float64Array): number {
  let logDet = 0;
  for (let i = 0; i < n; i++) perm[i] = i;
  for (let k = 0; k < n; k++) {
    let p = k;
    for (let i = k + 1; i < n; i++) if (Math.abs(a[i * n + k]) > Math.abs(a[p * n + k])) p = i;
    if (a[p * n + k] === 0) return -Infinity;
    if (p !== k) {
      for (let j = 0; j < n; j++) {
        const t = a[k * n + j];
        a[k * n + j] = a[p * n + j];
        a[p * n + j] = t;
      }
      const t = perm[k];
      perm[k] = perm[p];
      perm[p] = t;
    }
    const piv = a[k * n + k];
    logDet += Math.log(Math.abs(piv));
    for (let i = k + 1; i < n; i++) {
      const f = (a[i * n + k] /= piv);
      if (f !== 0) for (let j = k + 1; j < n; j++) a[i * n + j] -= f * a[k * n + j];
    }
  }
  if (inv) {
    // Solve A X = I column by column: P A = L U, so x = U⁻¹ L⁻¹ P e_c.
    for (let c = 0; c < n; c++) {
      for (let i = 0; i < n; i++) col[i] = perm[i] === c ? 1 : 0;
      for (let i = 0; i < n; i++) {
        let s = col[i];
        for (let j = 0; j < i; j++) s -= a[i * n + j] * col[j];
        col[i] = s;
      }
      for (let i = n - 1; i >= 0; i--) {
        let s = col[i];
        for (let j = i + 1; j < n; j++) s -= a[i * n + j] * col[j];
        col[i] = s / a[i * n + i];
      }
      for (let i = 0; i < n; i++) inv[i * n + c] = col[i];
    }
  }
  return logDet;
}

/** What forward and inverse share: the log-det of one row after primal(), writing the stash tail. */
class LogDetRow {
  readonly lu: Float64Array;
  readonly inv: Float64Array;
  readonly perm: Int32Array;
  readonly col: Float64Array;
  readonly v: Float64Array;
  readonly r: Float64Array;
  readonly rNext: Float64Array;
  readonly w: Float64Array;

  constructor(
    readonly row: RowNet,
    readonly exact: boolean,
    readonly p: number,
    readonly exactTerms: number,
  ) {
    const d = row.d;
    this.lu = new Float64Array(exact ? d * d : 0);
    this.inv = new Float64Array(exact ? d * d : 0);
    this.perm = new Int32Array(d);
    this.col = new Float64Array(d);
    this.v = new Float64Array(d);
    this.r = new Float64Array(d);
    this.rNext = new Float64Array(d);
    this.w = new Float64Array(d);
  }

  /** log|det(I + J)| of the row last passed through primal(); tail = stash values after the hidden ones. */
  compute(noise: FloatArray | null, terms: FloatArray | null, r: number, tail: FloatArray | null, tailBase: number): number {
    const { row } = this;
    const d = row.d;
    if (this.exact) {
      row.tangent(null, d);
      for (let i = 0; i < d; i++) for (let t = 0; t < d; t++) this.lu[i * d + t] = (i === t ? 1 : 0) + row.jac[t * d + i];
      const ld = luLogAbsDet(this.lu, d, tail ? this.inv : null, this.perm, this.col);
      if (tail) for (let i = 0; i < d * d; i++) tail[tailBase + i] = this.inv[i];
      return ld;
    }
    const n = seriesLength(terms![r]);
    for (let i = 0; i < d; i++) {
      this.v[i] = noise![r * d + i];
      this.r[i] = this.v[i];
      this.w[i] = this.v[i];
    }
    let logDet = 0;
    for (let k = 1; k <= n; k++) {
      row.vjp(this.r, this.rNext);
      this.r.set(this.rNext);
      const coef = residualSeriesWeight(k, this.p, this.exactTerms);
      let vr = 0;
      for (let i = 0; i < d; i++) {
        vr += this.v[i] * this.r[i];
        this.w[i] += (k % 2 === 0 ? coef : -coef) * this.r[i];
      }
      logDet += ((k % 2 === 1 ? 1 : -1) / k) * coef * vr;
    }
    if (tail) {
      for (let i = 0; i < d; i++) {
        tail[tailBase + i] = this.v[i];
        tail[tailBase + d + i] = this.w[i];
      }
    }
    return logDet;
  }
}

/** A row's series length: floored, clamped to [0, 1e6], NaN as 0 (as the native kernels). */
function seriesLength(t: number): number {
  if (!(t > 0)) return 0;
  return t >= 1e6 ? 1e6 : Math.floor(t);
}

function checkActivation(kind: unknown): ResidualActivation {
  return checkOneOf(kind, 'activation', RESIDUAL_ACTIVATIONS);
}

function checkEstimator(
  noise: unknown,
  terms: unknown,
  p: unknown,
  exactTerms: unknown,
  batch: number,
  d: number,
): { noise: FloatArray | null; terms: FloatArray | null; p: number; exactTerms: number } {
  const n = checkOptionalArray(noise, 'noise', batch * d);
  const t = n ? checkArray(terms, 'terms', batch) : checkOptionalArray(terms, 'terms', 0);
  const pp = checkFinite(p, 'p');
  if (!(pp > 0 && pp <= 1)) throw rangeError(expected('number in (0, 1]', 'p', p));
  const e = checkSize(exactTerms, 'exactTerms');
  if (!n && d > RESIDUAL_EXACT_MAX_DIM) {
    throw rangeError(expected(`Float32Array (the estimator's noise: the exact log-det takes D ≤ ${RESIDUAL_EXACT_MAX_DIM})`, 'noise', noise));
  }
  return { noise: n, terms: t, p: pp, exactTerms: e };
}

function rowNotFinite(a: FloatArray, base: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (!Number.isFinite(a[base + i])) return true;
  return false;
}

export const referenceResidual: ResidualKernels = {
  normalize(weight, u, v, out, sigma, rows, cols, c, iterations) {
    checkPositiveInt(rows, 'rows');
    checkPositiveInt(cols, 'cols');
    const n = sizeProduct(rows, cols);
    checkArray(weight, 'weight', n);
    checkArray(u, 'u', rows);
    checkArray(v, 'v', cols);
    checkArray(out, 'out', n);
    checkArray(sigma, 'sigma', 1);
    checkDisjoint(out, 'out', { weight, u, v, sigma });
    const cc = checkFinite(c, 'c');
    if (!(cc > 0)) throw rangeError(expected('positive finite number', 'c', c));
    checkSize(iterations, 'iterations');
    const tv = new Float64Array(cols);
    const tu = new Float64Array(rows);
    for (let it = 0; it < iterations; it++) {
      let nv = 0;
      for (let j = 0; j < cols; j++) {
        let s = 0;
        for (let i = 0; i < rows; i++) s += weight[i * cols + j] * u[i];
        tv[j] = s;
        nv += s * s;
      }
      if (!(nv > 0) || !Number.isFinite(nv)) break;
      nv = Math.sqrt(nv);
      let nu = 0;
      for (let i = 0; i < rows; i++) {
        let s = 0;
        for (let j = 0; j < cols; j++) s += (weight[i * cols + j] * tv[j]) / nv;
        tu[i] = s;
        nu += s * s;
      }
      if (!(nu > 0) || !Number.isFinite(nu)) break;
      nu = Math.sqrt(nu);
      for (let j = 0; j < cols; j++) v[j] = tv[j] / nv;
      for (let i = 0; i < rows; i++) u[i] = tu[i] / nu;
    }
    let s = 0;
    for (let i = 0; i < rows; i++) {
      let wi = 0;
      for (let j = 0; j < cols; j++) wi += weight[i * cols + j] * v[j];
      s += u[i] * wi;
    }
    sigma[0] = s;
    const scale = s > cc ? cc / s : 1;
    for (let i = 0; i < n; i++) out[i] = weight[i] * scale;
  },

  normalizeBackward(weight, u, v, sigma, dOut, dWeight, rows, cols, c) {
    checkPositiveInt(rows, 'rows');
    checkPositiveInt(cols, 'cols');
    const n = sizeProduct(rows, cols);
    checkArray(weight, 'weight', n);
    checkArray(u, 'u', rows);
    checkArray(v, 'v', cols);
    checkArray(dOut, 'dOut', n);
    checkArray(dWeight, 'dWeight', n);
    checkDisjoint(dWeight, 'dWeight', { weight, u, v, dOut });
    const s = checkFinite(sigma, 'sigma');
    const cc = checkFinite(c, 'c');
    if (!(s > cc)) {
      for (let i = 0; i < n; i++) dWeight[i] += dOut[i];
      return;
    }
    let gw = 0;
    for (let i = 0; i < n; i++) gw += dOut[i] * weight[i];
    const a = cc / s;
    const b = (cc / (s * s)) * gw;
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) dWeight[i * cols + j] += a * dOut[i * cols + j] - b * u[i] * v[j];
  },

  forward(x, net, sizes, activation, noise, terms, p, exactTerms, y, logDet, stash, batch) {
    // The activation first, as the cpu backend's wrapper maps it to the binding's index before the call.
    const kind = checkActivation(activation);
    const d = checkResidualSizes(sizes);
    checkSize(batch, 'batch');
    const est = checkEstimator(noise, terms, p, exactTerms, batch, d);
    const exact = est.noise === null;
    const width = residualStashSize(sizes, exact);
    checkArray(x, 'x', sizeProduct(batch, d));
    checkArray(net, 'net', residualNetSize(sizes));
    checkArray(y, 'y', sizeProduct(batch, d));
    checkArray(logDet, 'logDet', batch);
    checkArray(stash, 'stash', sizeProduct(batch, width));
    const inputs = { x, net, noise: est.noise, terms: est.terms };
    checkDisjoint(y, 'y', inputs);
    checkDisjoint(logDet, 'logDet', { ...inputs, y });
    checkDisjoint(stash, 'stash', { ...inputs, y, logDet });
    const row = new RowNet(sizes, net, kind, exact ? d : 1);
    const ld = new LogDetRow(row, exact, est.p, est.exactTerms);
    let bad = 0;
    for (let r = 0; r < batch; r++) {
      const base = r * d;
      row.primal(x, base);
      for (let i = 0; i < d; i++) y[base + i] = x[base + i] + row.g[i];
      const sb = r * width;
      for (let i = 0; i < row.hidden; i++) stash[sb + i] = row.pre[i];
      logDet[r] = ld.compute(est.noise, est.terms, r, stash, sb + row.hidden);
      if (rowNotFinite(y, base, d) || !Number.isFinite(logDet[r])) bad++;
    }
    return bad;
  },

  backward(x, net, sizes, activation, exact, stash, dy, dLogDet, dx, dNet, batch) {
    // The activation first, as the cpu backend's wrapper maps it to the binding's index before the call.
    const kind = checkActivation(activation);
    const d = checkResidualSizes(sizes);
    checkSize(batch, 'batch');
    if (typeof exact !== 'boolean') throw typeError(expected('boolean', 'exact', exact));
    if (exact && d > RESIDUAL_EXACT_MAX_DIM) throw rangeError(expected(`false (the exact log-det takes D ≤ ${RESIDUAL_EXACT_MAX_DIM})`, 'exact', exact));
    const width = residualStashSize(sizes, exact);
    checkArray(x, 'x', sizeProduct(batch, d));
    checkArray(net, 'net', residualNetSize(sizes));
    checkArray(stash, 'stash', sizeProduct(batch, width));
    checkArray(dy, 'dy', sizeProduct(batch, d));
    checkArray(dLogDet, 'dLogDet', batch);
    checkArray(dx, 'dx', sizeProduct(batch, d));
    checkArray(dNet, 'dNet', net.length);
    const inputs = { x, net, stash, dy, dLogDet };
    checkDisjoint(dx, 'dx', inputs);
    checkDisjoint(dNet, 'dNet', { ...inputs, dx });
    const row = new RowNet(sizes, net, kind, exact ? d : 1);
    const v = new Float64Array(d);
    let bad = 0;
    for (let r = 0; r < batch; r++) {
      const base = r * d;
      const sb = r * width;
      const tail = sb + row.hidden;
      row.primal(x, base);
      row.inject.fill(0);
      const scale = dLogDet[r];
      if (scale !== 0) {
        if (exact) {
          row.tangent(null, d);
          // ∂ log|det A| = tr(A⁻¹ ∂J) = Σ_t (row t of A⁻¹) ∂J e_t.
          for (let t = 0; t < d; t++) row.tangentBackward(t, null, stash, tail + t * d, scale, dNet);
        } else {
          for (let i = 0; i < d; i++) v[i] = stash[tail + i];
          row.tangent(v, 1);
          row.tangentBackward(0, v, stash, tail + d, scale, dNet);
        }
      }
      row.primalBackward(x, dy, base, dNet, dx);
      if (rowNotFinite(dx, base, d)) bad++;
    }
    return bad;
  },

  inverse(y, net, sizes, activation, noise, terms, p, exactTerms, tol, maxIterations, x, logDet, batch) {
    // The activation first, as the cpu backend's wrapper maps it to the binding's index before the call.
    const kind = checkActivation(activation);
    const d = checkResidualSizes(sizes);
    checkSize(batch, 'batch');
    const est = checkEstimator(noise, terms, p, exactTerms, batch, d);
    const tolerance = checkFinite(tol, 'tol');
    if (!(tolerance > 0)) throw rangeError(expected('positive finite number', 'tol', tol));
    const budget = checkIntegerBetween(maxIterations, 'maxIterations', 1, 1e6);
    checkArray(y, 'y', sizeProduct(batch, d));
    checkArray(net, 'net', residualNetSize(sizes));
    checkArray(x, 'x', sizeProduct(batch, d));
    checkArray(logDet, 'logDet', batch);
    const inputs = { y, net, noise: est.noise, terms: est.terms };
    checkDisjoint(x, 'x', inputs);
    checkDisjoint(logDet, 'logDet', { ...inputs, x });
    const exact = est.noise === null;
    const row = new RowNet(sizes, net, kind, exact ? d : 1);
    const ld = new LogDetRow(row, exact, est.p, est.exactTerms);
    const z = new Float64Array(d);
    let bad = 0;
    for (let r = 0; r < batch; r++) {
      const base = r * d;
      for (let i = 0; i < d; i++) z[i] = y[base + i];
      let converged = false;
      for (let it = 0; it < budget; it++) {
        row.primal(z, 0);
        let delta = 0;
        for (let i = 0; i < d; i++) {
          const next = y[base + i] - row.g[i];
          const dz = Math.abs(next - z[i]);
          if (!(dz <= delta)) delta = dz; // NaN propagates
          z[i] = next;
        }
        if (!(delta === delta)) break;
        if (delta <= tolerance) {
          converged = true;
          break;
        }
      }
      for (let i = 0; i < d; i++) x[base + i] = z[i];
      if (!converged) {
        logDet[r] = NaN;
        bad++;
        continue;
      }
      row.primal(z, 0);
      logDet[r] = -ld.compute(est.noise, est.terms, r, null, 0);
      if (!Number.isFinite(logDet[r])) bad++;
    }
    return bad;
  },
};
