/**
 * Reference Sylvester flows in float64: the definition the native kernels are
 * tested against (see kernels/sylvester.ts for the mathematics and layouts).
 * Written for clarity, row by row: each layer builds dense R and R̃ and
 * applies Q as a matrix (or permutation); shared parameters run the same
 * per-row code and sum the gradients.
 */
import {
  SYLVESTER_DIAGONAL_CLAMP,
  SYLVESTER_MAX_ITERATIONS,
  checkSylvesterShape,
  sylvesterLayout,
  type SylvesterBjorckOptions,
  type SylvesterInverseOptions,
  type SylvesterKernels,
  type SylvesterLayout,
  type SylvesterShape,
} from '../kernels/sylvester';
import type { FloatArray } from '../types';
import { expected, typeError } from '../../errors';
import { checkArray, checkBoolean, checkInRange, checkIntegerBetween, checkPositiveInt, sizeProduct } from '../../validate';

// ---------------------------------------------------------------------------
// Argument checks

function checkBjorck(options: unknown): SylvesterBjorckOptions {
  if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
  const o = options as Record<string, unknown>;
  const maxSteps = checkIntegerBetween(o.maxSteps, 'options.maxSteps', 0, SYLVESTER_MAX_ITERATIONS);
  const tolerance = checkInRange(o.tolerance, 'options.tolerance', 0, Infinity, { lo: true, hi: true });
  return { maxSteps, tolerance };
}

function checkInverseOptions(options: unknown): SylvesterInverseOptions {
  if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
  const o = options as Record<string, unknown>;
  const maxIterations = checkIntegerBetween(o.maxIterations, 'options.maxIterations', 1, SYLVESTER_MAX_ITERATIONS);
  const tolerance = checkInRange(o.tolerance, 'options.tolerance', 0, Infinity, { lo: true, hi: true });
  return { maxIterations, tolerance };
}

// ---------------------------------------------------------------------------
// Building blocks (row-major dense matrices in Float64Array)

/** Updates `worst` so that NaN, once seen, sticks. */
function worse(worst: number, r: number): number {
  return Number.isNaN(worst) ? worst : !(r <= worst) ? r : worst;
}

/** R_ii or R̃_ii from a raw value: tanh of the clamped value. */
function diagonalValue(raw: number): number {
  return Math.tanh(Math.min(Math.max(raw, -SYLVESTER_DIAGONAL_CLAMP), SYLVESTER_DIAGONAL_CLAMP));
}

/** d(diagonalValue)/d(raw): tanh' inside the clamp, 0 outside. */
function diagonalSlope(raw: number): number {
  if (!(Math.abs(raw) < SYLVESTER_DIAGONAL_CLAMP)) return 0;
  const t = Math.tanh(raw);
  return 1 - t * t;
}

interface LayerParams {
  /** Dense upper-triangular R and R̃, M×M. */
  r: Float64Array;
  rt: Float64Array;
  b: Float64Array;
}

/** Dense R, R̃ and b of layer k of the parameter set starting at `base`. */
function layerParams(lay: SylvesterLayout, m: number, params: FloatArray, base: number, k: number): LayerParams {
  const r = new Float64Array(m * m);
  const rt = new Float64Array(m * m);
  const b = new Float64Array(m);
  const s = base + lay.offDiagonal + k * m * m;
  for (let i = 0; i < m; i++) {
    r[i * m + i] = diagonalValue(params[base + lay.diagonal + k * m + i]);
    rt[i * m + i] = diagonalValue(params[base + lay.diagonalTilde + k * m + i]);
    b[i] = params[base + lay.bias + k * m + i];
    for (let j = i + 1; j < m; j++) {
      r[i * m + j] = params[s + i * m + j];
      rt[i * m + j] = params[s + j * m + i];
    }
  }
  return { r, rt, b };
}

/** Q as an explicit D×M matrix for layer k (triangular: identity or reversal). */
function layerQ(shape: SylvesterShape, lay: SylvesterLayout, q: FloatArray, set: number, k: number): Float64Array {
  const { dim: d, m } = shape;
  const out = new Float64Array(d * m);
  if (shape.variant === 'triangular') {
    for (let i = 0; i < d; i++) out[(k % 2 === 0 ? i : d - 1 - i) * m + i] = 1;
  } else {
    const base = (set * shape.layers + k) * lay.qPerLayer;
    for (let i = 0; i < d * m; i++) out[i] = q[base + i];
  }
  return out;
}

/** out (cols) = Aᵀ x for A rows×cols. */
function mulT(a: Float64Array, rows: number, cols: number, x: ArrayLike<number>, out: Float64Array): Float64Array {
  out.fill(0);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j] += a[i * cols + j] * x[i];
  return out;
}

/** out (rows) = A x for A rows×cols. */
function mul(a: Float64Array, rows: number, cols: number, x: ArrayLike<number>, out: Float64Array): Float64Array {
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += a[i * cols + j] * x[j];
    out[i] = s;
  }
  return out;
}

/** C (n×p) = A (n×k) B (k×p), each optionally transposed in storage. */
function matmul(a: Float64Array, aT: boolean, b: Float64Array, bT: boolean, n: number, k: number, p: number): Float64Array {
  // Element (i, l) of A is a[i·aRow + l·aCol]; element (l, j) of B is b[l·bRow + j·bCol].
  const [aRow, aCol] = aT ? [1, n] : [k, 1];
  const [bRow, bCol] = bT ? [1, k] : [p, 1];
  const c = new Float64Array(n * p);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < p; j++) {
      let s = 0;
      for (let l = 0; l < k; l++) s += a[i * aRow + l * aCol] * b[l * bRow + j * bCol];
      c[i * p + j] = s;
    }
  }
  return c;
}

// ---------------------------------------------------------------------------
// Orthogonalization

/** Björck iterates Q_0 = A/‖A‖_F, …, Q_S for one D×M matrix; S is decided by the stopping rule. */
function bjorckIterates(a: Float64Array, d: number, m: number, options: SylvesterBjorckOptions): { iterates: Float64Array[]; norm: number; residual: number } {
  let norm = 0;
  for (const v of a) norm += v * v;
  norm = Math.sqrt(norm);
  let q: Float64Array = a.map((v) => v / norm);
  const iterates: Float64Array[] = [q];
  let residual: number;
  for (let step = 0; ; step++) {
    const g = matmul(q, true, q, false, m, d, m);
    residual = 0;
    for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) residual = worse(residual, Math.abs(g[i * m + j] - (i === j ? 1 : 0)));
    if (!(residual > options.tolerance) || step === options.maxSteps) break;
    // Q ← Q (3/2 I − 1/2 QᵀQ)
    const s = g.map((v, idx) => (idx % (m + 1) === 0 ? 1.5 : 0) - 0.5 * v);
    q = matmul(q, false, s, false, d, m, m);
    iterates.push(q);
  }
  return { iterates, norm, residual };
}

/** Partial products T_0 = I, T_{j+1} = H_j T_j of the Householder reflections; also the unit vectors and norms. */
function householderIterates(v: ArrayLike<number>, n: number, d: number): { iterates: Float64Array[]; units: Float64Array[]; norms: number[] } {
  let t = new Float64Array(d * d);
  for (let i = 0; i < d; i++) t[i * d + i] = 1;
  const iterates = [t];
  const units: Float64Array[] = [];
  const norms: number[] = [];
  for (let j = 0; j < n; j++) {
    let norm = 0;
    for (let i = 0; i < d; i++) norm += v[j * d + i] ** 2;
    norm = Math.sqrt(norm);
    const u = new Float64Array(d);
    for (let i = 0; i < d; i++) u[i] = v[j * d + i] / norm;
    const w = mulT(t, d, d, u, new Float64Array(d)); // Tᵀ û
    const next = new Float64Array(d * d);
    for (let r = 0; r < d; r++) for (let c = 0; c < d; c++) next[r * d + c] = t[r * d + c] - 2 * u[r] * w[c];
    t = next;
    iterates.push(t);
    units.push(u);
    norms.push(norm);
  }
  return { iterates, units, norms };
}

function orthogonalize(shape: SylvesterShape, sets: number, params: FloatArray, q: FloatArray, options: SylvesterBjorckOptions): number {
  const s = checkSylvesterShape(shape);
  checkPositiveInt(sets, 'sets');
  const lay = sylvesterLayout(s);
  checkArray(params, 'params', sizeProduct(sets, lay.size));
  checkArray(q, 'q', sizeProduct(sets, s.layers, lay.qPerLayer));
  const opts = checkBjorck(options);
  const { dim: d, m, layers } = s;
  let worst = 0;
  for (let set = 0; set < sets; set++) {
    for (let k = 0; k < layers; k++) {
      const raw = set * lay.size + lay.q + k * lay.qRawPerLayer;
      const out = (set * layers + k) * lay.qPerLayer;
      if (s.variant === 'orthogonal') {
        const { iterates, residual } = bjorckIterates(Float64Array.from(params.subarray(raw, raw + d * m)), d, m, opts);
        q.set(iterates[iterates.length - 1], out);
        worst = worse(worst, residual);
      } else if (s.variant === 'householder') {
        const { iterates, norms } = householderIterates(params.subarray(raw, raw + s.householders * d), s.householders, d);
        q.set(iterates[iterates.length - 1], out);
        for (const norm of norms) if (!(norm > 0 && Number.isFinite(norm))) worst = NaN;
      }
    }
  }
  return worst;
}

function orthogonalizeBackward(
  shape: SylvesterShape,
  sets: number,
  params: FloatArray,
  gradQ: FloatArray,
  gradParams: FloatArray,
  options: SylvesterBjorckOptions,
): void {
  const s = checkSylvesterShape(shape);
  checkPositiveInt(sets, 'sets');
  const lay = sylvesterLayout(s);
  checkArray(params, 'params', sizeProduct(sets, lay.size));
  checkArray(gradQ, 'gradQ', sizeProduct(sets, s.layers, lay.qPerLayer));
  checkArray(gradParams, 'gradParams', sizeProduct(sets, lay.size));
  const opts = checkBjorck(options);
  const { dim: d, m, layers } = s;
  for (let set = 0; set < sets; set++) {
    for (let k = 0; k < layers; k++) {
      const raw = set * lay.size + lay.q + k * lay.qRawPerLayer;
      const gq = (set * layers + k) * lay.qPerLayer;
      if (s.variant === 'orthogonal') {
        const { iterates, norm } = bjorckIterates(Float64Array.from(params.subarray(raw, raw + d * m)), d, m, opts);
        let bar = Float64Array.from(gradQ.subarray(gq, gq + d * m));
        // Q_{s+1} = 3/2 Q − 1/2 Q QᵀQ  ⇒  Q̄_s = 3/2 X̄ − 1/2 X̄ G − 1/2 Q (X̄ᵀQ + QᵀX̄)
        for (let step = iterates.length - 2; step >= 0; step--) {
          const qs = iterates[step];
          const g = matmul(qs, true, qs, false, m, d, m);
          const xg = matmul(bar, false, g, false, d, m, m);
          const qtx = matmul(qs, true, bar, false, m, d, m);
          const sym = new Float64Array(m * m);
          for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) sym[i * m + j] = qtx[i * m + j] + qtx[j * m + i];
          const qsym = matmul(qs, false, sym, false, d, m, m);
          bar = bar.map((v, idx) => 1.5 * v - 0.5 * xg[idx] - 0.5 * qsym[idx]);
        }
        // Q_0 = A/‖A‖  ⇒  Ā = (Q̄_0 − Q_0 ⟨Q̄_0, Q_0⟩) / ‖A‖
        const q0 = iterates[0];
        let inner = 0;
        for (let i = 0; i < d * m; i++) inner += bar[i] * q0[i];
        for (let i = 0; i < d * m; i++) gradParams[raw + i] = (bar[i] - q0[i] * inner) / norm;
      } else if (s.variant === 'householder') {
        const n = s.householders;
        const { iterates, units, norms } = householderIterates(params.subarray(raw, raw + n * d), n, d);
        let bar = Float64Array.from(gradQ.subarray(gq, gq + d * d));
        for (let j = n - 1; j >= 0; j--) {
          // T_{j+1} = T_j − 2 û (T_jᵀ û)ᵀ:  ū = −2 (X̄ w + T_j X̄ᵀ û), w = T_jᵀ û;  T̄_j = X̄ − 2 û (ûᵀ X̄)
          const t = iterates[j];
          const u = units[j];
          const w = mulT(t, d, d, u, new Float64Array(d));
          const xw = mul(bar, d, d, w, new Float64Array(d));
          const xtu = mulT(bar, d, d, u, new Float64Array(d));
          const txtu = mul(t, d, d, xtu, new Float64Array(d));
          const ubar = new Float64Array(d);
          for (let i = 0; i < d; i++) ubar[i] = -2 * (xw[i] + txtu[i]);
          const next = new Float64Array(d * d);
          for (let r = 0; r < d; r++) for (let c = 0; c < d; c++) next[r * d + c] = bar[r * d + c] - 2 * u[r] * xtu[c];
          bar = next;
          // û = v/‖v‖  ⇒  v̄ = (ū − û (û·ū)) / ‖v‖
          let dot = 0;
          for (let i = 0; i < d; i++) dot += u[i] * ubar[i];
          for (let i = 0; i < d; i++) gradParams[raw + j * d + i] = (ubar[i] - u[i] * dot) / norms[j];
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Forward / backward

function checkCall(shape: SylvesterShape, batch: number, amortized: boolean): { s: SylvesterShape; lay: SylvesterLayout; sets: number } {
  const s = checkSylvesterShape(shape);
  checkPositiveInt(batch, 'batch');
  checkBoolean(amortized, 'amortized');
  const sets = amortized ? batch : 1;
  return { s, lay: sylvesterLayout(s), sets };
}

function forward(
  shape: SylvesterShape,
  batch: number,
  amortized: boolean,
  x: FloatArray,
  params: FloatArray,
  q: FloatArray,
  y: FloatArray,
  logDet: FloatArray,
  saved: FloatArray | null,
): void {
  const { s, lay, sets } = checkCall(shape, batch, amortized);
  const { dim: d, m, layers } = s;
  checkArray(x, 'x', sizeProduct(batch, d));
  checkArray(params, 'params', sizeProduct(sets, lay.size));
  checkArray(q, 'q', sizeProduct(sets, layers, lay.qPerLayer));
  checkArray(y, 'y', sizeProduct(batch, d));
  checkArray(logDet, 'logDet', batch);
  if (saved !== null) checkArray(saved, 'saved', sizeProduct(batch, lay.savedPerRow));
  const u = new Float64Array(m);
  const a = new Float64Array(m);
  const v = new Float64Array(m);
  const dz = new Float64Array(d);
  let cache: { qm: Float64Array; p: LayerParams }[] = [];
  for (let row = 0; row < batch; row++) {
    const set = amortized ? row : 0;
    if (amortized || row === 0) {
      cache = [];
      for (let k = 0; k < layers; k++) cache.push({ qm: layerQ(s, lay, q, set, k), p: layerParams(lay, m, params, set * lay.size, k) });
    }
    const z = Float64Array.from(x.subarray(row * d, (row + 1) * d));
    let ld = 0;
    for (let k = 0; k < layers; k++) {
      const { qm, p } = cache[k];
      const sv = row * lay.savedPerRow + k * (d + m);
      if (saved) saved.set(z, sv);
      mulT(qm, d, m, z, u);
      mul(p.rt, m, m, u, a);
      const t = new Float64Array(m);
      for (let i = 0; i < m; i++) {
        t[i] = Math.tanh(a[i] + p.b[i]);
        ld += Math.log1p((1 - t[i] * t[i]) * p.r[i * m + i] * p.rt[i * m + i]);
      }
      if (saved) saved.set(t, sv + d);
      mul(p.r, m, m, t, v);
      mul(qm, d, m, v, dz);
      for (let i = 0; i < d; i++) z[i] += dz[i];
    }
    y.set(z, row * d);
    logDet[row] = ld;
  }
}

function backward(
  shape: SylvesterShape,
  batch: number,
  amortized: boolean,
  params: FloatArray,
  q: FloatArray,
  saved: FloatArray,
  gradY: FloatArray,
  gradLogDet: FloatArray,
  gradX: FloatArray,
  gradParams: FloatArray,
  gradQ: FloatArray,
): void {
  const { s, lay, sets } = checkCall(shape, batch, amortized);
  const { dim: d, m, layers } = s;
  checkArray(params, 'params', sizeProduct(sets, lay.size));
  checkArray(q, 'q', sizeProduct(sets, layers, lay.qPerLayer));
  checkArray(saved, 'saved', sizeProduct(batch, lay.savedPerRow));
  checkArray(gradY, 'gradY', sizeProduct(batch, d));
  checkArray(gradLogDet, 'gradLogDet', batch);
  checkArray(gradX, 'gradX', sizeProduct(batch, d));
  checkArray(gradParams, 'gradParams', sizeProduct(sets, lay.size));
  checkArray(gradQ, 'gradQ', sizeProduct(sets, layers, lay.qPerLayer));

  // Everything but the q section is overwritten; accumulate in float64 first.
  const acc = new Float64Array(sets * lay.q);
  const accQ = new Float64Array(gradQ.length);
  const u = new Float64Array(m);
  const v = new Float64Array(m);
  const dv = new Float64Array(m);
  const dt = new Float64Array(m);
  const da = new Float64Array(m);
  const du = new Float64Array(m);
  const qdu = new Float64Array(d);
  let cache: { qm: Float64Array; p: LayerParams }[] = [];
  for (let row = 0; row < batch; row++) {
    const set = amortized ? row : 0;
    if (amortized || row === 0) {
      cache = [];
      for (let k = 0; k < layers; k++) cache.push({ qm: layerQ(s, lay, q, set, k), p: layerParams(lay, m, params, set * lay.size, k) });
    }
    const base = set * lay.q;
    const g = Float64Array.from(gradY.subarray(row * d, (row + 1) * d));
    const gl = gradLogDet[row];
    for (let k = layers - 1; k >= 0; k--) {
      const { qm, p } = cache[k];
      const sv = row * lay.savedPerRow + k * (d + m);
      const z = saved.subarray(sv, sv + d);
      const t = saved.subarray(sv + d, sv + d + m);
      mulT(qm, d, m, z, u);
      mul(p.r, m, m, t, v);
      mulT(qm, d, m, g, dv);
      // dt = Rᵀ dv;  dR_ij += dv_i t_j (i ≤ j)
      mulT(p.r, m, m, dv, dt);
      const sBase = base + lay.offDiagonal + k * m * m;
      for (let i = 0; i < m; i++) for (let j = i + 1; j < m; j++) acc[sBase + i * m + j] += dv[i] * t[j];
      for (let i = 0; i < m; i++) {
        const rii = p.r[i * m + i];
        const rtii = p.rt[i * m + i];
        const dd = rii * rtii;
        const h1 = 1 - t[i] * t[i];
        const h2 = -2 * t[i] * h1;
        const den = 1 + h1 * dd;
        da[i] = dt[i] * h1 + (gl * dd * h2) / den;
        const gdd = (gl * h1) / den; // ∂L/∂(R_ii R̃_ii)
        const gR = dv[i] * t[i] + gdd * rtii;
        const gRt = da[i] * u[i] + gdd * rii;
        acc[base + lay.diagonal + k * m + i] += gR * diagonalSlope(params[set * lay.size + lay.diagonal + k * m + i]);
        acc[base + lay.diagonalTilde + k * m + i] += gRt * diagonalSlope(params[set * lay.size + lay.diagonalTilde + k * m + i]);
        acc[base + lay.bias + k * m + i] += da[i];
      }
      // dR̃_ij += da_i u_j (i < j), stored at S_ji
      for (let i = 0; i < m; i++) for (let j = i + 1; j < m; j++) acc[sBase + j * m + i] += da[i] * u[j];
      mulT(p.rt, m, m, da, du);
      if (s.variant !== 'triangular') {
        const qb = (set * layers + k) * lay.qPerLayer;
        for (let r = 0; r < d; r++) for (let c = 0; c < m; c++) accQ[qb + r * m + c] += g[r] * v[c] + z[r] * du[c];
      }
      mul(qm, d, m, du, qdu);
      for (let i = 0; i < d; i++) g[i] += qdu[i];
    }
    gradX.set(g, row * d);
  }
  for (let set = 0; set < sets; set++) {
    for (let i = 0; i < lay.q; i++) gradParams[set * lay.size + i] = acc[set * lay.q + i];
  }
  gradQ.set(accQ);
}

// ---------------------------------------------------------------------------
// Inverse

/**
 * Solves u + α tanh(β u + c) = r for u. With αβ > −1 the left side is
 * strictly increasing and the root lies in [r − |α|, r + |α|]: Newton steps,
 * replaced by bisection whenever they leave the bracket. Returns NaN when it
 * does not converge within maxIterations.
 */
export function solveScalar(alpha: number, beta: number, c: number, r: number, maxIterations: number): number {
  let lo = r - Math.abs(alpha);
  let hi = r + Math.abs(alpha);
  let u = Math.min(Math.max(r - alpha * Math.tanh(beta * r + c), lo), hi);
  for (let it = 0; it < maxIterations; it++) {
    const th = Math.tanh(beta * u + c);
    const f = u + alpha * th - r;
    if (f === 0) return u;
    if (f > 0) hi = u;
    else lo = u;
    const slope = 1 + alpha * beta * (1 - th * th);
    let next = u - f / slope;
    if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
    if (Math.abs(next - u) <= 1e-13 * (1 + Math.abs(u)) || !(hi - lo > 1e-13 * (1 + Math.abs(u)))) return next;
    u = next;
  }
  return NaN;
}

function inverse(
  shape: SylvesterShape,
  batch: number,
  amortized: boolean,
  y: FloatArray,
  params: FloatArray,
  q: FloatArray,
  x: FloatArray,
  logDet: FloatArray,
  options: SylvesterInverseOptions,
): number {
  const { s, lay, sets } = checkCall(shape, batch, amortized);
  const { dim: d, m, layers } = s;
  checkArray(y, 'y', sizeProduct(batch, d));
  checkArray(params, 'params', sizeProduct(sets, lay.size));
  checkArray(q, 'q', sizeProduct(sets, layers, lay.qPerLayer));
  checkArray(x, 'x', sizeProduct(batch, d));
  checkArray(logDet, 'logDet', batch);
  const opts = checkInverseOptions(options);
  let failed = 0;
  let cache: { qm: Float64Array; p: LayerParams; e: Float64Array | null }[] = [];
  for (let row = 0; row < batch; row++) {
    const set = amortized ? row : 0;
    if (amortized || row === 0) {
      cache = [];
      for (let k = 0; k < layers; k++) {
        const qm = layerQ(s, lay, q, set, k);
        // E = QᵀQ − I: zero for the permutation of the triangular variant.
        let e: Float64Array | null = null;
        if (s.variant !== 'triangular') {
          e = matmul(qm, true, qm, false, m, d, m);
          for (let i = 0; i < m; i++) e[i * m + i] -= 1;
        }
        cache.push({ qm, p: layerParams(lay, m, params, set * lay.size, k), e });
      }
    }
    let cur: Float64Array = Float64Array.from(y.subarray(row * d, (row + 1) * d));
    let ld = 0;
    let ok = true;
    for (let k = layers - 1; k >= 0 && ok; k--) {
      const res = invertLayer(s, cache[k].qm, cache[k].p, cache[k].e, cur, opts);
      if (!res) {
        ok = false;
        break;
      }
      ld -= res.logDet;
      cur = res.x;
    }
    if (ok) {
      x.set(cur, row * d);
      logDet[row] = ld;
    } else {
      failed++;
      x.fill(NaN, row * d, (row + 1) * d);
      logDet[row] = NaN;
    }
  }
  return failed;
}

/** One layer's inverse for one row; null when it does not converge. */
function invertLayer(
  s: SylvesterShape,
  qm: Float64Array,
  p: LayerParams,
  e: Float64Array | null,
  y: Float64Array,
  opts: SylvesterInverseOptions,
): { x: Float64Array; logDet: number } | null {
  const { dim: d, m } = s;
  const yHat = mulT(qm, d, m, y, new Float64Array(m));
  // Fixed point of w = Qᵀy − QᵀQ R h(R̃ w + b), written as
  // w + R h(R̃ w + b) = ŷ − E R h(R̃ w + b) with the right side lagged.
  let w = Float64Array.from(yHat);
  const rhs = new Float64Array(m);
  const hv = new Float64Array(m);
  const a = new Float64Array(m);
  const v = new Float64Array(m);
  let converged = false;
  for (let outer = 0; outer < opts.maxIterations; outer++) {
    rhs.set(yHat);
    if (e) {
      mul(p.rt, m, m, w, a);
      for (let i = 0; i < m; i++) hv[i] = Math.tanh(a[i] + p.b[i]);
      mul(p.r, m, m, hv, v);
      const ev = mul(e, m, m, v, new Float64Array(m));
      for (let i = 0; i < m; i++) rhs[i] -= ev[i];
    }
    // Back substitution: coordinate i depends on coordinates ≥ i only.
    const next = new Float64Array(m);
    const hNext = new Float64Array(m);
    for (let i = m - 1; i >= 0; i--) {
      let c = p.b[i];
      for (let j = i + 1; j < m; j++) c += p.rt[i * m + j] * next[j];
      let r = rhs[i];
      for (let j = i + 1; j < m; j++) r -= p.r[i * m + j] * hNext[j];
      const ui = solveScalar(p.r[i * m + i], p.rt[i * m + i], c, r, opts.maxIterations);
      if (Number.isNaN(ui)) return null;
      next[i] = ui;
      hNext[i] = Math.tanh(p.rt[i * m + i] * ui + c);
    }
    let delta = 0;
    let size = 0;
    for (let i = 0; i < m; i++) {
      delta = Math.max(delta, Math.abs(next[i] - w[i]));
      size = Math.max(size, Math.abs(next[i]));
    }
    w = next;
    if (!e || delta <= 1e-3 * opts.tolerance * (1 + size)) {
      converged = true;
      break;
    }
  }
  if (!converged) return null;
  // x = y − Q R h(R̃ w + b), then check f(x) = y and take the log-det at x.
  mul(p.rt, m, m, w, a);
  for (let i = 0; i < m; i++) hv[i] = Math.tanh(a[i] + p.b[i]);
  mul(p.r, m, m, hv, v);
  const qv = mul(qm, d, m, v, new Float64Array(d));
  const x = new Float64Array(d);
  for (let i = 0; i < d; i++) x[i] = y[i] - qv[i];
  const u = mulT(qm, d, m, x, new Float64Array(m));
  mul(p.rt, m, m, u, a);
  let ld = 0;
  for (let i = 0; i < m; i++) {
    const t = Math.tanh(a[i] + p.b[i]);
    hv[i] = t;
    ld += Math.log1p((1 - t * t) * p.r[i * m + i] * p.rt[i * m + i]);
  }
  mul(p.r, m, m, hv, v);
  mul(qm, d, m, v, qv);
  let residual = 0;
  let scale = 0;
  for (let i = 0; i < d; i++) {
    residual = worse(residual, Math.abs(x[i] + qv[i] - y[i]));
    scale = Math.max(scale, Math.abs(y[i]));
  }
  if (!(residual <= opts.tolerance * (1 + scale)) || !Number.isFinite(ld)) return null;
  return { x, logDet: ld };
}

export const referenceSylvester: SylvesterKernels = {
  orthogonalize,
  orthogonalizeBackward,
  forward,
  backward,
  inverse,
};
