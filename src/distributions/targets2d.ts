/**
 * Two-dimensional target densities with exact formulas: the four potentials
 * of Rezende & Mohamed (2015, Table 1) for variational inference, and three
 * data-style mixtures (two moons, rings, eight Gaussians) with exact seeded
 * samplers for maximum likelihood. Everything here is float64 and
 * independent of the backend.
 *
 * Potentials (density ∝ exp(−U)), with w1 = sin(2πz1/4),
 * w2 = 3 exp(−½((z1 − 1)/0.6)²), w3 = 3 σ((z1 − 1)/0.3):
 *
 *   U1 = ½((‖z‖ − 2)/0.4)² − log(e^{−½((z1−2)/0.6)²} + e^{−½((z1+2)/0.6)²})
 *   U2 = ½((z2 − w1)/0.4)²                                              + E(z)
 *   U3 = −log(e^{−½((z2−w1)/0.35)²} + e^{−½((z2−w1+w2)/0.35)²})          + E(z)
 *   U4 = −log(e^{−½((z2−w1)/0.4)²}  + e^{−½((z2−w1+w3)/0.35)²})          + E(z)
 *
 * U2–U4 do not decay along z1, so exp(−U) has no finite integral on the
 * plane. They get the smooth envelope E(z) = (z1/4)⁴ (a weak quartic in z1
 * only, as normflows does with its ‖z‖₄⁴ term): it is ≤ 1 on |z1| ≤ 4, the
 * region RM15 plot, and confines the mass to |z1| ≲ 8. The envelope is part
 * of logDensity, of its gradient and of logZ, so training and the reported
 * reverse KL use the same target. (A hard box instead would make the reverse
 * KL of any full-support flow infinite.) U1 decays on its own and has none.
 *
 * logZ of U1–U4 is log ∫ exp(−U) over the plane, computed once (lazily) by
 * the trapezoidal rule on a grid of step 0.02 over a box outside which the
 * density is below e^−40 of its peak. For these smooth, rapidly decaying
 * integrands the rule converges exponentially in 1/step: halving the step
 * changes U2–U4 by < 1e−14 and U1 (whose ‖z‖ has a kink at the origin,
 * where the density is e^−12.5) by < 1e−12. test/targets2d.test.ts checks
 * every value against an independent polar-coordinate quadrature.
 *
 * The mixtures are normalized densities (logZ = 0 exactly):
 * - two moons: sklearn's make_moons (noise 0.1) centred and scaled by 2 — each
 *   moon an equal mixture of 64 isotropic Gaussians (σ = 0.2) at evenly
 *   spaced angles t_j = πj/63 (make_moons also spaces its points evenly),
 *   upper centres (2 cos t − 1, 2 sin t − 0.5), lower (1 − 2 cos t, 0.5 − 2 sin t);
 * - rings: equal mixture of three noisy circles of radii 1, 2, 3: a point
 *   uniform on the circle plus N(0, 0.15² I) noise, whose density is exactly
 *   exp(−(‖z‖ − r)²/2σ²) · I0e(‖z‖r/σ²) / (2πσ²) (I0e the scaled Bessel function);
 * - eight Gaussians: equal mixture of N(2 (cos kπ/4, sin kπ/4), 0.25² I), k = 0…7.
 */
import { referenceRng } from '../backend/reference/rng';
import { expected, rangeError, typeError } from '../errors';
import { checkSeed } from '../data/random';
import { sigmoid } from '../math';
import { checkPositiveInt } from '../validate';

/**
 * An unnormalized log-density to fit by reverse KL: `evaluate` writes
 * log p̃(z_r) into `logp[r]` and, when `grad` is non-null, ∇_z log p̃ into
 * `grad` (both float64), for `z` `[batch, dim]`. `logZ` = log ∫ p̃ when known.
 */
export interface TargetDensity {
  readonly dim: number;
  evaluate(z: Float64Array, batch: number, logp: Float64Array, grad: Float64Array | null): void;
  readonly logZ?: number;
}

export type Target2DName = 'U1' | 'U2' | 'U3' | 'U4' | 'two-moons' | 'rings' | 'eight-gaussians';

export const TARGET_2D_NAMES: readonly Target2DName[] = ['U1', 'U2', 'U3', 'U4', 'two-moons', 'rings', 'eight-gaussians'];

/** The box holding all but a negligible part (< e^−40 of the peak density at its edge) of the mass. */
export interface Bounds2D {
  x: readonly [number, number];
  y: readonly [number, number];
}

const LOG_2PI = Math.log(2 * Math.PI);
/** Step of the logZ grid (see the file comment). */
export const LOGZ_GRID_STEP = 0.02;

/** log(e^a + e^b) and the weight e^a / (e^a + e^b), stably. */
function logAddExp(a: number, b: number): { value: number; weightA: number } {
  const m = Math.max(a, b);
  const ea = Math.exp(a - m);
  const eb = Math.exp(b - m);
  const s = ea + eb;
  return { value: m + Math.log(s), weightA: ea / s };
}

/** log p̃ and its gradient at one point; returns log p̃ and writes the gradient into g[0], g[1]. */
type PointDensity = (z1: number, z2: number, g: Float64Array) => number;

const HALF_PI = Math.PI / 2; // 2π/4

/** The envelope E(z) = (z1/4)⁴ of U2–U4, and dE/dz1 = z1³/64. */
function envelope(z1: number): number {
  const t = z1 / 4;
  return t * t * t * t;
}
function envelopeGrad(z1: number): number {
  return (z1 * z1 * z1) / 64;
}

const U1: PointDensity = (z1, z2, g) => {
  const r = Math.hypot(z1, z2);
  const ring = (r - 2) / 0.4;
  const a = -0.5 * ((z1 - 2) / 0.6) ** 2;
  const b = -0.5 * ((z1 + 2) / 0.6) ** 2;
  const lse = logAddExp(a, b);
  // −U = −½ ring² + log(e^a + e^b); ‖z‖ is not differentiable at 0, where the subgradient 0 is used.
  const dRing = r > 0 ? -ring / 0.4 / r : 0;
  const dLse = (lse.weightA * -(z1 - 2) + (1 - lse.weightA) * -(z1 + 2)) / 0.36;
  g[0] = dRing * z1 + dLse;
  g[1] = dRing * z2;
  return -0.5 * ring * ring + lse.value;
};

const U2: PointDensity = (z1, z2, g) => {
  const w1 = Math.sin(HALF_PI * z1);
  const dw1 = HALF_PI * Math.cos(HALF_PI * z1);
  const e = (z2 - w1) / 0.4;
  g[0] = (e / 0.4) * dw1 - envelopeGrad(z1);
  g[1] = -e / 0.4;
  return -0.5 * e * e - envelope(z1);
};

/**
 * −log(e^{−½(e1/s1)²} + e^{−½(e2/s2)²}) with e1 = z2 − w1, e2 = z2 − w1 + v(z1),
 * the shape shared by U3 (v = w2) and U4 (v = w3).
 */
function twoBranches(z1: number, z2: number, s1: number, s2: number, v: number, dv: number, g: Float64Array): number {
  const w1 = Math.sin(HALF_PI * z1);
  const dw1 = HALF_PI * Math.cos(HALF_PI * z1);
  const e1 = z2 - w1;
  const e2 = z2 - w1 + v;
  const lse = logAddExp(-0.5 * (e1 / s1) ** 2, -0.5 * (e2 / s2) ** 2);
  // ∂(log-sum)/∂e1 = −p1 e1/s1², ∂/∂e2 = −p2 e2/s2²; ∂e1/∂z = (−w1', 1), ∂e2/∂z = (−w1' + v', 1).
  const d1 = (-lse.weightA * e1) / (s1 * s1);
  const d2 = (-(1 - lse.weightA) * e2) / (s2 * s2);
  g[0] = -d1 * dw1 + d2 * (dv - dw1) - envelopeGrad(z1);
  g[1] = d1 + d2;
  return lse.value - envelope(z1);
}

const U3: PointDensity = (z1, z2, g) => {
  const t = (z1 - 1) / 0.6;
  const w2 = 3 * Math.exp(-0.5 * t * t);
  return twoBranches(z1, z2, 0.35, 0.35, w2, (-w2 * t) / 0.6, g);
};

const U4: PointDensity = (z1, z2, g) => {
  const s = sigmoid((z1 - 1) / 0.3);
  return twoBranches(z1, z2, 0.4, 0.35, 3 * s, (3 * s * (1 - s)) / 0.3, g);
};

// ---------------------------------------------------------------------------
// Mixtures of isotropic Gaussians (two moons, eight Gaussians).

/** log of an equal mixture of N(c_k, σ² I) and its gradient; `centres` is [K, 2]. */
function gaussianMixture(centres: Float64Array, sigma: number): PointDensity {
  const K = centres.length / 2;
  const inv2s2 = 1 / (2 * sigma * sigma);
  const logNorm = -Math.log(K) - LOG_2PI - 2 * Math.log(sigma);
  const logs = new Float64Array(K);
  return (z1, z2, g) => {
    let max = -Infinity;
    for (let k = 0; k < K; k++) {
      const d1 = z1 - centres[2 * k];
      const d2 = z2 - centres[2 * k + 1];
      const l = -(d1 * d1 + d2 * d2) * inv2s2;
      logs[k] = l;
      if (l > max) max = l;
    }
    let s = 0;
    let g1 = 0;
    let g2 = 0;
    for (let k = 0; k < K; k++) {
      const w = Math.exp(logs[k] - max);
      s += w;
      g1 += w * (centres[2 * k] - z1);
      g2 += w * (centres[2 * k + 1] - z2);
    }
    const scale = (2 * inv2s2) / s; // 1/σ² over the normalizer of the weights
    g[0] = g1 * scale;
    g[1] = g2 * scale;
    return max + Math.log(s) + logNorm;
  };
}

const MOON_COMPONENTS = 64;
const MOON_SIGMA = 0.2;
function moonCentres(): Float64Array {
  const c = new Float64Array(4 * MOON_COMPONENTS);
  for (let j = 0; j < MOON_COMPONENTS; j++) {
    const t = (Math.PI * j) / (MOON_COMPONENTS - 1);
    c[2 * j] = 2 * Math.cos(t) - 1;
    c[2 * j + 1] = 2 * Math.sin(t) - 0.5;
    c[2 * (MOON_COMPONENTS + j)] = 1 - 2 * Math.cos(t);
    c[2 * (MOON_COMPONENTS + j) + 1] = 0.5 - 2 * Math.sin(t);
  }
  return c;
}

const EIGHT_RADIUS = 2;
const EIGHT_SIGMA = 0.25;
function eightCentres(): Float64Array {
  const c = new Float64Array(16);
  for (let k = 0; k < 8; k++) {
    c[2 * k] = EIGHT_RADIUS * Math.cos((k * Math.PI) / 4);
    c[2 * k + 1] = EIGHT_RADIUS * Math.sin((k * Math.PI) / 4);
  }
  return c;
}

// ---------------------------------------------------------------------------
// Rings: noisy circles, through the modified Bessel functions I0 and I1.

/**
 * Scaled Bessel functions for x ≥ 0: i0e = e^{−x} I0(x) and
 * ratio = I1(x) / (x I0(x)) (which tends to ½ at 0). Power series (all terms
 * positive, so no cancellation) below 30, the Hankel asymptotic expansion
 * above (its terms shrink like k/(4x) up to k ≈ 4x, so 25 terms at x ≥ 30
 * are below 1e−17 relative).
 */
export function besselI0I1(x: number): { i0e: number; ratio: number } {
  if (x < 30) {
    const q = (x * x) / 4;
    let t0 = 1; // q^k / (k!)²
    let t1 = 0.5; // q^k / (2 · k! (k+1)!)  (so Σ t1 = I1(x)/x)
    let s0 = 1;
    let s1 = 0.5;
    for (let k = 1; k < 200; k++) {
      t0 *= q / (k * k);
      t1 *= q / (k * (k + 1));
      s0 += t0;
      s1 += t1;
      if (t0 < 1e-17 * s0 && t1 < 1e-17 * s1) break;
    }
    return { i0e: s0 * Math.exp(-x), ratio: s1 / s0 };
  }
  // I_ν(x) e^{−x} √(2πx) ≈ Σ_k (−1)^k Π_{j≤k} (4ν² − (2j−1)²) / (k! (8x)^k).
  let a0 = 1;
  let a1 = 1;
  let s0 = 1;
  let s1 = 1;
  for (let k = 1; k <= 25; k++) {
    const odd = (2 * k - 1) ** 2;
    a0 *= -(0 - odd) / (k * 8 * x);
    a1 *= -(4 - odd) / (k * 8 * x);
    s0 += a0;
    s1 += a1;
    if (Math.abs(a0) < 1e-17 * s0 && Math.abs(a1) < 1e-17 * Math.abs(s1)) break;
  }
  return { i0e: s0 / Math.sqrt(2 * Math.PI * x), ratio: s1 / s0 / x };
}

const RING_RADII = [1, 2, 3];
const RING_SIGMA = 0.15;

const ringLogs = new Float64Array(RING_RADII.length);
const ringSlopes = new Float64Array(RING_RADII.length);

const RINGS: PointDensity = (z1, z2, g) => {
  const rho = Math.hypot(z1, z2);
  const s2 = RING_SIGMA * RING_SIGMA;
  const K = RING_RADII.length;
  let max = -Infinity;
  const logs = ringLogs;
  const slopes = ringSlopes;
  for (let k = 0; k < K; k++) {
    const r = RING_RADII[k];
    const { i0e, ratio } = besselI0I1((rho * r) / s2);
    // log N ⋆ uniform circle = −log(2πσ²) − (ρ − r)²/2σ² + log I0e(ρr/σ²); ∇ = z (−1/σ² + r²/σ⁴ · I1/(x I0)).
    logs[k] = -((rho - r) ** 2) / (2 * s2) + Math.log(i0e);
    slopes[k] = -1 / s2 + ((r * r) / (s2 * s2)) * ratio;
    if (logs[k] > max) max = logs[k];
  }
  let s = 0;
  let slope = 0;
  for (let k = 0; k < K; k++) {
    const w = Math.exp(logs[k] - max);
    s += w;
    slope += w * slopes[k];
  }
  slope /= s;
  g[0] = slope * z1;
  g[1] = slope * z2;
  return max + Math.log(s) - Math.log(K) - LOG_2PI - Math.log(s2);
};

// ---------------------------------------------------------------------------
// Samplers: row i uses elements 4i … 4i+3 of the Philox stream `seed`:
// uniforms from lanes 0 and 1, normals from lanes 2 and 3 (disjoint words),
// so sample(n) is a prefix of sample(m) for m > n.

type PointSampler = (u0: number, u1: number, n0: number, n1: number, out: Float64Array, at: number) => void;

function mixtureSampler(centres: Float64Array, sigma: number): PointSampler {
  const K = centres.length / 2;
  return (u0, _u1, n0, n1, out, at) => {
    const k = Math.min(K - 1, Math.floor(u0 * K));
    out[at] = centres[2 * k] + sigma * n0;
    out[at + 1] = centres[2 * k + 1] + sigma * n1;
  };
}

const ringSampler: PointSampler = (u0, u1, n0, n1, out, at) => {
  const r = RING_RADII[Math.min(RING_RADII.length - 1, Math.floor(u0 * RING_RADII.length))];
  const t = 2 * Math.PI * u1;
  out[at] = r * Math.cos(t) + RING_SIGMA * n0;
  out[at + 1] = r * Math.sin(t) + RING_SIGMA * n1;
};

// ---------------------------------------------------------------------------

interface TargetSpec {
  name: Target2DName;
  formula: string;
  envelope: string | null;
  bounds: Bounds2D;
  density: PointDensity;
  /** Exact log-normalizer when known in closed form; else computed on the grid. */
  logZ?: number;
  sampler?: PointSampler;
}

export class Target2D implements TargetDensity {
  readonly dim = 2;
  readonly name: Target2DName;
  /** The formula of log p̃ (or of the data process), in words. */
  readonly formula: string;
  /** The confining term added to make the density normalizable (U2–U4), or null. */
  readonly envelope: string | null;
  readonly bounds: Bounds2D;
  private readonly density: PointDensity;
  private readonly sampler: PointSampler | undefined;
  private cachedLogZ: number | undefined;
  private readonly g = new Float64Array(2);

  constructor(spec: TargetSpec) {
    this.name = spec.name;
    this.formula = spec.formula;
    this.envelope = spec.envelope;
    this.bounds = spec.bounds;
    this.density = spec.density;
    this.sampler = spec.sampler;
    this.cachedLogZ = spec.logZ;
  }

  /** Whether `sample` is available (the data-style targets). */
  get canSample(): boolean {
    return this.sampler !== undefined;
  }

  evaluate(z: Float64Array, batch: number, logp: Float64Array, grad: Float64Array | null): void {
    const g = this.g;
    for (let r = 0; r < batch; r++) {
      logp[r] = this.density(z[2 * r], z[2 * r + 1], g);
      if (grad) {
        grad[2 * r] = g[0];
        grad[2 * r + 1] = g[1];
      }
    }
  }

  private rows(z: unknown): number {
    if (!(z instanceof Float64Array || z instanceof Float32Array)) throw typeError(expected('Float32Array or Float64Array', 'z', z));
    if (z.length === 0 || z.length % 2 !== 0) throw rangeError(expected('array of positive even length (rows of 2)', 'z', z), 'ERR_SHAPE');
    return z.length / 2;
  }

  private asFloat64(z: Float64Array | Float32Array): Float64Array {
    return z instanceof Float64Array ? z : Float64Array.from(z);
  }

  /** Unnormalized log-density log p̃ per row of `z` `[n, 2]` (float64). */
  logDensity(z: Float64Array | Float32Array): Float64Array {
    const n = this.rows(z);
    const out = new Float64Array(n);
    this.evaluate(this.asFloat64(z), n, out, null);
    return out;
  }

  /** log p̃ per row and its gradient ∇_z log p̃ `[n, 2]`. */
  logDensityGrad(z: Float64Array | Float32Array): { logDensity: Float64Array; grad: Float64Array } {
    const n = this.rows(z);
    const logDensity = new Float64Array(n);
    const grad = new Float64Array(2 * n);
    this.evaluate(this.asFloat64(z), n, logDensity, grad);
    return { logDensity, grad };
  }

  /**
   * log ∫ p̃ over the plane: exact (0) for the normalized mixtures; for
   * U1–U4 the trapezoidal rule on a grid of step LOGZ_GRID_STEP over `bounds`
   * (computed on first use, then cached).
   */
  get logZ(): number {
    if (this.cachedLogZ === undefined) this.cachedLogZ = gridLogZ(this, LOGZ_GRID_STEP);
    return this.cachedLogZ;
  }

  /** `n` seeded samples `[n, 2]` (data-style targets only): row i is a pure function of (seed, i). */
  sample(n: number, seed = 0): Float64Array {
    if (!this.sampler) throw rangeError(`The ${this.name} target has no sampler; sampling is offered for ${SAMPLEABLE.join(', ')}`);
    checkPositiveInt(n, 'n');
    checkSeed(seed);
    const u = new Float64Array(4 * n);
    const e = new Float64Array(4 * n);
    referenceRng.uniform(seed, 0, u);
    referenceRng.normal(seed, 0, e);
    const out = new Float64Array(2 * n);
    for (let i = 0; i < n; i++) this.sampler(u[4 * i], u[4 * i + 1], e[4 * i + 2], e[4 * i + 3], out, 2 * i);
    return out;
  }
}

/**
 * log of the trapezoidal rule for ∫ p̃ over the target's box with step ≤ h
 * (the same step count on each axis spans the box exactly). The values at
 * the box edges are below e^−40 of the peak, so edge weights do not matter.
 */
export function gridLogZ(target: TargetDensity & { bounds: Bounds2D }, h: number): number {
  const [x0, x1] = target.bounds.x;
  const [y0, y1] = target.bounds.y;
  const nx = Math.ceil((x1 - x0) / h);
  const ny = Math.ceil((y1 - y0) / h);
  const hx = (x1 - x0) / nx;
  const hy = (y1 - y0) / ny;
  const row = new Float64Array(2 * (nx + 1));
  const logp = new Float64Array(nx + 1);
  // p̃ ≤ e^3 for every target here, so plain sums of exp cannot overflow.
  let total = 0;
  for (let j = 0; j <= ny; j++) {
    const y = y0 + j * hy;
    for (let i = 0; i <= nx; i++) {
      row[2 * i] = x0 + i * hx;
      row[2 * i + 1] = y;
    }
    target.evaluate(row, nx + 1, logp, null);
    let s = 0;
    for (let i = 0; i <= nx; i++) s += (i === 0 || i === nx ? 0.5 : 1) * Math.exp(logp[i]);
    total += (j === 0 || j === ny ? 0.5 : 1) * s;
  }
  return Math.log(total * hx * hy);
}

const ENVELOPE = 'E(z) = (z1/4)^4 added to U (smooth, weak quartic in z1; U alone is not normalizable along z1)';

const SPECS: Record<Target2DName, () => TargetSpec> = {
  U1: () => ({
    name: 'U1',
    formula: 'U1 = 1/2((|z| - 2)/0.4)^2 - log(exp(-1/2((z1 - 2)/0.6)^2) + exp(-1/2((z1 + 2)/0.6)^2))',
    envelope: null,
    bounds: { x: [-6, 6], y: [-6, 6] },
    density: U1,
  }),
  U2: () => ({
    name: 'U2',
    formula: 'U2 = 1/2((z2 - w1)/0.4)^2 + E(z), w1 = sin(2 pi z1/4)',
    envelope: ENVELOPE,
    bounds: { x: [-12, 12], y: [-6, 6] },
    density: U2,
  }),
  U3: () => ({
    name: 'U3',
    formula: 'U3 = -log(exp(-1/2((z2 - w1)/0.35)^2) + exp(-1/2((z2 - w1 + w2)/0.35)^2)) + E(z), w2 = 3 exp(-1/2((z1 - 1)/0.6)^2)',
    envelope: ENVELOPE,
    bounds: { x: [-12, 12], y: [-8.5, 5.5] },
    density: U3,
  }),
  U4: () => ({
    name: 'U4',
    formula: 'U4 = -log(exp(-1/2((z2 - w1)/0.4)^2) + exp(-1/2((z2 - w1 + w3)/0.35)^2)) + E(z), w3 = 3 sigmoid((z1 - 1)/0.3)',
    envelope: ENVELOPE,
    bounds: { x: [-12, 12], y: [-9, 6] },
    density: U4,
  }),
  'two-moons': () => ({
    name: 'two-moons',
    formula: 'equal mixture of N(c_j, 0.2^2 I) over 64 centres per moon, c = (2cos t - 1, 2sin t - 0.5) and (1 - 2cos t, 0.5 - 2sin t), t = pi j/63',
    envelope: null,
    bounds: { x: [-5.5, 5.5], y: [-4.5, 4.5] },
    density: gaussianMixture(moonCentres(), MOON_SIGMA),
    logZ: 0,
    sampler: mixtureSampler(moonCentres(), MOON_SIGMA),
  }),
  rings: () => ({
    name: 'rings',
    formula: 'equal mixture of circles of radii 1, 2, 3 (uniform angle) plus N(0, 0.15^2 I) noise',
    envelope: null,
    bounds: { x: [-5, 5], y: [-5, 5] },
    density: RINGS,
    logZ: 0,
    sampler: ringSampler,
  }),
  'eight-gaussians': () => ({
    name: 'eight-gaussians',
    formula: 'equal mixture of N(2(cos k pi/4, sin k pi/4), 0.25^2 I), k = 0..7',
    envelope: null,
    bounds: { x: [-5, 5], y: [-5, 5] },
    density: gaussianMixture(eightCentres(), EIGHT_SIGMA),
    logZ: 0,
    sampler: mixtureSampler(eightCentres(), EIGHT_SIGMA),
  }),
};

const SAMPLEABLE = TARGET_2D_NAMES.filter((n) => SPECS[n]().sampler !== undefined);

const cache = new Map<Target2DName, Target2D>();

/** The built-in 2-D target with this name (one shared instance per name, so logZ is computed once). */
export function target2d(name: Target2DName | Lowercase<Target2DName>): Target2D {
  const canonical = checkTargetName(name);
  const spec = SPECS[canonical];
  let t = cache.get(canonical);
  if (!t) {
    t = new Target2D(spec());
    cache.set(canonical, t);
  }
  return t;
}

/** The target's name as listed in TARGET_2D_NAMES; case does not matter ('u1' is 'U1', as on the command line). */
function checkTargetName(name: unknown): Target2DName {
  const found = typeof name === 'string' ? TARGET_2D_NAMES.find((n) => n.toLowerCase() === name.toLowerCase()) : undefined;
  if (found === undefined) {
    const what = `one of ${TARGET_2D_NAMES.map((n) => `"${n}"`).join(', ')}`;
    throw (typeof name === 'string' ? rangeError : typeError)(expected(what, 'name', name));
  }
  return found;
}

// ---------------------------------------------------------------------------
// A conditional target: p(x | c) for maximum likelihood with a context.

/**
 * `ring-radius`: a ring whose radius is the context, x = c (cos θ, sin θ) +
 * N(0, 0.15² I) with θ uniform, and c uniform on [1, 3] in the samples.
 * log p(x | c) is exact (the rings' formula with one radius).
 */
export const RING_RADIUS = {
  name: 'ring-radius' as const,
  contextDim: 1,
  /** Range of the context in the samples. */
  contextRange: [1, 3] as const,
  formula: 'x = c (cos t, sin t) + N(0, 0.15^2 I), t uniform; the context c is the radius',

  /** log p(x_r | c_r) for `x` `[n, 2]` and `context` `[n]`. */
  logDensity(x: ArrayLike<number>, context: ArrayLike<number>): Float64Array {
    const n = context.length;
    const s2 = RING_SIGMA * RING_SIGMA;
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const rho = Math.hypot(x[2 * i], x[2 * i + 1]);
      const r = context[i];
      const { i0e } = besselI0I1((rho * r) / s2);
      out[i] = -Math.log(2 * Math.PI * s2) - (rho - r) ** 2 / (2 * s2) + Math.log(i0e);
    }
    return out;
  },

  /** `n` seeded draws: points `[n, 2]` and their radii `[n]` (uniform on the context range unless given). */
  sample(n: number, seed = 0, radii?: ArrayLike<number>): { x: Float64Array; context: Float64Array } {
    checkPositiveInt(n, 'n');
    checkSeed(seed);
    const u = new Float64Array(2 * n);
    const e = new Float64Array(2 * n);
    referenceRng.uniform(seed, 0, u);
    referenceRng.normal(seed, 2 * n, e);
    const x = new Float64Array(2 * n);
    const context = new Float64Array(n);
    const [lo, hi] = RING_RADIUS.contextRange;
    for (let i = 0; i < n; i++) {
      const r = radii ? radii[i] : lo + (hi - lo) * u[2 * i];
      const t = 2 * Math.PI * u[2 * i + 1];
      context[i] = r;
      x[2 * i] = r * Math.cos(t) + RING_SIGMA * e[2 * i];
      x[2 * i + 1] = r * Math.sin(t) + RING_SIGMA * e[2 * i + 1];
    }
    return { x, context };
  },
};
