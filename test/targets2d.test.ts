/**
 * The built-in 2-D targets: log Z against an independent quadrature (polar
 * coordinates, Gauss–Legendre in r and the periodic trapezoidal rule in θ,
 * with nodes computed here, not the implementation's Cartesian grid),
 * gradients against central finite differences, the formulas at hand-checked
 * points, the Bessel functions behind the rings against their integral
 * representation, and the samplers against moments of the densities.
 */
import { describe, expect, it } from 'vitest';
import { LOGZ_GRID_STEP, TARGET_2D_NAMES, target2d, type Target2D, type Target2DName } from '../src/distributions/targets2d';
import { besselI0I1, gridLogZ } from '../src/distributions/targets2d';
import { expectClose, numericalGradient, randomArray } from './helpers';

/** Gauss–Legendre nodes and weights on [−1, 1] (Newton on P_n, as in Numerical Recipes' gauleg). */
function gaussLegendre(n: number): { x: Float64Array; w: Float64Array } {
  const x = new Float64Array(n);
  const w = new Float64Array(n);
  for (let i = 0; i < Math.ceil(n / 2); i++) {
    let z = Math.cos((Math.PI * (i + 0.75)) / (n + 0.5));
    let dp = 0;
    for (let it = 0; it < 100; it++) {
      let p0 = 1;
      let p1 = 0;
      for (let k = 1; k <= n; k++) {
        const p2 = p1;
        p1 = p0;
        p0 = ((2 * k - 1) * z * p1 - (k - 1) * p2) / k;
      }
      dp = (n * (z * p0 - p1)) / (z * z - 1);
      const dz = p0 / dp;
      z -= dz;
      if (Math.abs(dz) < 1e-16) break;
    }
    x[i] = -z;
    x[n - 1 - i] = z;
    w[i] = w[n - 1 - i] = 2 / ((1 - z * z) * dp * dp);
  }
  return { x, w };
}

const GL = gaussLegendre(10);

function kahanSum(n: number, term: (k: number) => number): number {
  let sum = 0;
  let carry = 0;
  for (let k = 0; k < n; k++) {
    const y = term(k) - carry;
    const t = sum + y;
    carry = t - sum - y;
    sum = t;
  }
  return sum;
}

/** Asserts that fn throws an error of this class, code and exact message. */
function expectError(fn: () => unknown, ctor: ErrorConstructor | RangeErrorConstructor | TypeErrorConstructor, message: string, code = 'ERR_ARG'): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ctor);
  expect((caught as Error).message).toBe(message);
  expect((caught as { code?: string }).code).toBe(code);
}

/**
 * ∫∫ f(z) p̃(z) dz in polar coordinates over the disc of radius R for each f
 * in `fns` (f gets z1, z2 and log p̃): panels of width ≤ `dr` with 10-point
 * Gauss–Legendre in r, `nTheta` trapezoid points in θ (spectrally accurate for
 * periodic integrands). Measured against the grid log Z, dr = 0.5 and 400
 * angles already agree to < 5e−12 for every target; 600 angles are used.
 */
function polarIntegrals(t: Target2D, R: number, fns: ((z1: number, z2: number, logp: number) => number)[], dr = 0.5, nTheta = 600): number[] {
  const panels = Math.ceil(R / dr);
  const h = R / panels;
  const cos = new Float64Array(nTheta);
  const sin = new Float64Array(nTheta);
  for (let k = 0; k < nTheta; k++) {
    cos[k] = Math.cos((2 * Math.PI * k) / nTheta);
    sin[k] = Math.sin((2 * Math.PI * k) / nTheta);
  }
  const z = new Float64Array(2 * nTheta);
  const logp = new Float64Array(nTheta);
  const sums = fns.map(() => 0);
  for (let p = 0; p < panels; p++) {
    for (let g = 0; g < GL.x.length; g++) {
      const r = p * h + (h / 2) * (GL.x[g] + 1);
      const weight = (h / 2) * GL.w[g] * r * ((2 * Math.PI) / nTheta);
      for (let k = 0; k < nTheta; k++) {
        z[2 * k] = r * cos[k];
        z[2 * k + 1] = r * sin[k];
      }
      t.evaluate(z, nTheta, logp, null);
      for (let k = 0; k < nTheta; k++) {
        const d = weight * Math.exp(logp[k]);
        for (let i = 0; i < fns.length; i++) sums[i] += d * fns[i](z[2 * k], z[2 * k + 1], logp[k]);
      }
    }
  }
  return sums;
}

// Radii beyond which each density is below e^−40 of its peak (see the bounds in targets2d.ts).
const RADIUS: Record<Target2DName, number> = { U1: 6.5, U2: 13, U3: 13, U4: 13, 'two-moons': 5.5, rings: 5, 'eight-gaussians': 5 };

describe('2-D targets: log Z', () => {
  it.each(TARGET_2D_NAMES.map((n) => [n]))('%s: log Z matches a polar Gauss–Legendre × trapezoid quadrature', (name) => {
    const t = target2d(name);
    const [mass] = polarIntegrals(t, RADIUS[name], [() => 1]);
    // Both rules converge exponentially here; the measured agreement is < 5e-12 (U1, whose grid is
    // limited by the kink of ‖z‖ at the origin, 1e-13). 1e-9 leaves room while catching any error
    // in a formula's normalization, the envelope or the grid.
    expect(Math.abs(Math.log(mass) - t.logZ)).toBeLessThan(1e-9);
    if (t.canSample) expect(t.logZ).toBe(0); // normalized mixtures
  });

  it('the log Z grid has converged: halving the step changes U1 (the slowest to converge) by < 1e-11', () => {
    const t = target2d('U1');
    expect(Math.abs(gridLogZ(t, LOGZ_GRID_STEP / 2) - t.logZ)).toBeLessThan(1e-11);
  });

  it('U2–U4 carry the documented envelope (z1/4)^4 and U1 none', () => {
    expect(target2d('U1').envelope).toBeNull();
    for (const name of ['U2', 'U3', 'U4'] as const) {
      const t = target2d(name);
      expect(t.envelope).toContain('(z1/4)^4');
      // Along z1 at the ridge z2 = w1 the log-density is exactly −(z1/4)^4 for U2.
      if (name === 'U2') {
        const z1 = 6.3;
        const ld = t.logDensity(Float64Array.of(z1, Math.sin((2 * Math.PI * z1) / 4)))[0];
        expect(ld).toBeCloseTo(-((z1 / 4) ** 4), 12);
      }
    }
  });
});

describe('2-D targets: formulas at hand-computed points', () => {
  // Values worked out from the Table 1 formulas by hand (float64 arithmetic written out here).
  const w1 = (z1: number) => Math.sin((2 * Math.PI * z1) / 4);
  const w2 = (z1: number) => 3 * Math.exp(-0.5 * ((z1 - 1) / 0.6) ** 2);
  const w3 = (z1: number) => 3 / (1 + Math.exp(-(z1 - 1) / 0.3));
  const env = (z1: number) => (z1 / 4) ** 4;
  const U: Record<'U1' | 'U2' | 'U3' | 'U4', (a: number, b: number) => number> = {
    U1: (a, b) => 0.5 * ((Math.sqrt(a * a + b * b) - 2) / 0.4) ** 2 - Math.log(Math.exp(-0.5 * ((a - 2) / 0.6) ** 2) + Math.exp(-0.5 * ((a + 2) / 0.6) ** 2)),
    U2: (a, b) => 0.5 * ((b - w1(a)) / 0.4) ** 2 + env(a),
    U3: (a, b) => -Math.log(Math.exp(-0.5 * ((b - w1(a)) / 0.35) ** 2) + Math.exp(-0.5 * ((b - w1(a) + w2(a)) / 0.35) ** 2)) + env(a),
    U4: (a, b) => -Math.log(Math.exp(-0.5 * ((b - w1(a)) / 0.4) ** 2) + Math.exp(-0.5 * ((b - w1(a) + w3(a)) / 0.35) ** 2)) + env(a),
  };
  it.each(['U1', 'U2', 'U3', 'U4'] as const)('%s = −log p̃ at moderate points', (name) => {
    const z = Float64Array.of(0.3, -1.1, 2.1, 0.4, -1.7, 1.2, 1.0, -2.0, 3.5, 0.9);
    const ld = target2d(name).logDensity(z);
    // Moderate points: the direct formula loses nothing to underflow, so agreement is to rounding.
    for (let r = 0; r < 5; r++) expect(ld[r]).toBeCloseTo(-U[name](z[2 * r], z[2 * r + 1]), 12);
  });

  it('stays finite far out, where the direct formula underflows', () => {
    for (const name of TARGET_2D_NAMES) {
      const ld = target2d(name).logDensityGrad(Float64Array.of(40, -35, -60, 0.5));
      expect(Array.from(ld.logDensity).every(Number.isFinite), name).toBe(true);
      expect(Array.from(ld.grad).every(Number.isFinite), name).toBe(true);
    }
  });

  it('eight Gaussians is the stated mixture', () => {
    const z = Float64Array.of(1.3, 0.2);
    let p = 0;
    for (let k = 0; k < 8; k++) {
      const c1 = 2 * Math.cos((k * Math.PI) / 4);
      const c2 = 2 * Math.sin((k * Math.PI) / 4);
      p += Math.exp(-((z[0] - c1) ** 2 + (z[1] - c2) ** 2) / (2 * 0.0625)) / (2 * Math.PI * 0.0625) / 8;
    }
    expect(target2d('eight-gaussians').logDensity(z)[0]).toBeCloseTo(Math.log(p), 12);
  });

  it('rings: the closed form equals the circle average of the Gaussian (numerical integral over the angle)', () => {
    for (const [z1, z2] of [
      [0, 0],
      [0.9, 0.5],
      [2.1, -0.3],
      [-1.5, 2.4],
    ]) {
      let p = 0;
      const n = 20000; // trapezoid on a periodic integrand: exact to rounding at this resolution
      for (const r of [1, 2, 3]) {
        for (let k = 0; k < n; k++) {
          const t = (2 * Math.PI * k) / n;
          const d2 = (z1 - r * Math.cos(t)) ** 2 + (z2 - r * Math.sin(t)) ** 2;
          p += Math.exp(-d2 / (2 * 0.0225)) / (2 * Math.PI * 0.0225) / n / 3;
        }
      }
      expect(target2d('rings').logDensity(Float64Array.of(z1, z2))[0]).toBeCloseTo(Math.log(p), 10);
    }
  });

  it('Bessel I0 and I1 against their integral representation (series below 30, asymptotic above)', () => {
    for (const x of [0, 1e-3, 0.7, 4, 12.5, 29.99, 30, 30.01, 75, 400, 5000]) {
      // e^{−x} I_n(x) = (1/π) ∫_0^π e^{x(cos t − 1)} cos(nt) dt, by the periodic trapezoid rule.
      const n = 40000;
      // Kahan sums: plain summation of 40000 terms would itself be off by ~1e-12.
      const i0 = kahanSum(n, (k) => Math.exp(x * (Math.cos((Math.PI * (k + 0.5)) / n) - 1)) / n);
      const i1 = kahanSum(n, (k) => {
        const t = (Math.PI * (k + 0.5)) / n;
        return (Math.exp(x * (Math.cos(t) - 1)) * Math.cos(t)) / n;
      });
      const { i0e, ratio } = besselI0I1(x);
      expect(Math.abs(i0e - i0) / i0, `I0e(${x})`).toBeLessThan(1e-12);
      const expectedRatio = x === 0 ? 0.5 : i1 / i0 / x;
      expect(Math.abs(ratio - expectedRatio) / expectedRatio, `I1/(x I0) at ${x}`).toBeLessThan(1e-10);
    }
  });
});

describe('2-D targets: gradients', () => {
  it.each(TARGET_2D_NAMES.map((n) => [n]))('%s: ∇ log p̃ matches central finite differences', (name) => {
    const t = target2d(name);
    const z = randomArray(2 * 12, 11, -3.5, 3.5);
    // Points near the rings' centre and at U1's kink-free region included explicitly.
    z.set([0.01, -0.02, 2.5, 0.1], 0);
    const { grad } = t.logDensityGrad(z);
    for (let r = 0; r < 12; r++) {
      const point = z.subarray(2 * r, 2 * r + 2);
      const num = numericalGradient(() => t.logDensity(point)[0], point, 1e-6);
      // h = 1e-6: truncation ~h²·|f'''| ≲ 1e-9, rounding ~1e-16·|log p̃|/h ≲ 1e-8 (|log p̃| < 100 here).
      expectClose(grad.subarray(2 * r, 2 * r + 2), num, { atol: 2e-6, rtol: 1e-6 }, `${name} row ${r}`);
    }
  });
});

describe('2-D targets: samplers', () => {
  it.each(['two-moons', 'rings', 'eight-gaussians'] as const)('%s: samples have the moments of the density', (name) => {
    const t = target2d(name);
    const n = 20000;
    const x = t.sample(n, 3);
    const fns = [
      (a: number) => a,
      (_a: number, b: number) => b,
      (a: number) => a * a,
      (_a: number, b: number) => b * b,
      (a: number, b: number) => a * b,
      (_a: number, _b: number, logp: number) => logp,
    ];
    const withSquares = [...fns, ...fns.map((f) => (a: number, b: number, l: number) => f(a, b, l) ** 2)];
    const integrals = polarIntegrals(t, RADIUS[name], withSquares, 0.5, 400);
    const exact = integrals.slice(0, fns.length);
    const sd = exact.map((m, i) => Math.sqrt(Math.max(integrals[fns.length + i] - m * m, 0)));
    const logp = t.logDensity(x);
    for (let i = 0; i < fns.length; i++) {
      let s = 0;
      for (let r = 0; r < n; r++) s += fns[i](x[2 * r], x[2 * r + 1], logp[r]);
      // 5 standard errors: a correct sampler fails this with probability < 1e-6 per moment.
      expect(Math.abs(s / n - exact[i]), `${name} moment ${i}`).toBeLessThan((5 * sd[i]) / Math.sqrt(n));
    }
  });

  it('samples are seeded: same seed same rows, prefixes agree, other seeds differ', () => {
    const t = target2d('two-moons');
    const a = t.sample(100, 9);
    expect(Array.from(t.sample(100, 9))).toEqual(Array.from(a));
    expect(Array.from(t.sample(40, 9))).toEqual(Array.from(a.subarray(0, 80)));
    expect(Array.from(t.sample(100, 10))).not.toEqual(Array.from(a));
  });
});

describe('2-D targets: bad arguments', () => {
  it('rejects unknown names, bad arrays, and sampling from the potentials', () => {
    expectError(
      () => target2d('U5' as Target2DName),
      RangeError,
      'Expected one of "U1", "U2", "U3", "U4", "two-moons", "rings", "eight-gaussians" for "name" but received "U5" (string)',
    );
    expectError(
      () => target2d(3 as unknown as Target2DName),
      TypeError,
      'Expected one of "U1", "U2", "U3", "U4", "two-moons", "rings", "eight-gaussians" for "name" but received 3 (number)',
    );
    const u1 = target2d('U1');
    expectError(
      () => u1.logDensity(new Float64Array(3)),
      RangeError,
      'Expected array of positive even length (rows of 2) for "z" but received Float64Array(3)',
      'ERR_SHAPE',
    );
    expectError(() => u1.logDensityGrad([1, 2] as unknown as Float64Array), TypeError, 'Expected Float32Array or Float64Array for "z" but received Array(2)');
    expectError(() => u1.sample(10), RangeError, 'The U1 target has no sampler; sampling is offered for two-moons, rings, eight-gaussians');
    expectError(() => target2d('rings').sample(0), RangeError, 'Expected positive integer for "n" but received 0 (number)');
    expectError(() => target2d('rings').sample(5, -1), RangeError, 'Expected integer in [0, 2^53) for "seed" but received -1 (number)');
  });
});

describe('target names', () => {
  it('take any case, as the command line does (u1 is U1), and still refuse unknown names', () => {
    const t2d = target2d;
    expect(t2d('u1')).toBe(t2d('U1'));
    expect(t2d('Two-Moons' as never)).toBe(t2d('two-moons'));
    expect(() => t2d('u9' as never)).toThrow(
      'Expected one of "U1", "U2", "U3", "U4", "two-moons", "rings", "eight-gaussians" for "name" but received "u9" (string)',
    );
  });
});
