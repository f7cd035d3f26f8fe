import { describe, expect, it } from 'vitest';
import { backendByName } from '../src/backend';
import { referenceGaussian as ref } from '../src/backend/reference/gaussian';
import { asFloat32Values, dot, expectClose, hasCpu, numericalGradient, randomArray } from './helpers';
import type { Backend } from '../src/backend/backend';
import { describeBackends } from './helpers';

const SHAPES: [number, number][] = [
  [1, 1],
  [1, 7],
  [3, 2],
  [5, 33],
  [17, 40],
  [300, 257],
];

describe('gaussian: reference definitions', () => {
  it('sampleDiag computes z and log q against the explicit density', () => {
    const mu = randomArray(6, 1);
    const lv = randomArray(6, 2, -2, 2);
    const eps = randomArray(6, 3, -2, 2);
    const z = new Float64Array(6);
    const logq = new Float64Array(2);
    ref.sampleDiag(mu, lv, eps, z, logq, 2, 3);
    for (let r = 0; r < 2; r++) {
      let want = 0;
      for (let j = 0; j < 3; j++) {
        const i = r * 3 + j;
        const sigma = Math.sqrt(Math.exp(lv[i]));
        expect(z[i]).toBeCloseTo(mu[i] + sigma * eps[i], 14);
        want += Math.log(Math.exp(-0.5 * ((z[i] - mu[i]) / sigma) ** 2) / (sigma * Math.sqrt(2 * Math.PI)));
      }
      expect(logq[r]).toBeCloseTo(want, 12);
    }
  });

  it('klStandard matches the Monte Carlo estimate E_q[log q − log p]', () => {
    const mu = Float64Array.from([0.3, -0.7]);
    const lv = Float64Array.from([-0.4, 0.5]);
    const kl = new Float64Array(1);
    ref.klStandard(mu, lv, kl, 1, 2);
    const n = 200_000;
    const eps = randomArray(2 * n, 11, 0, 1).map((u, i, a) => (i % 2 === 0 ? Math.sqrt(-2 * Math.log(1 - u)) * Math.cos(2 * Math.PI * a[i + 1]) : 0));
    // Pair each even uniform with its neighbour; use the cos branch for both dims from separate pairs.
    let sum = 0;
    const e = new Float64Array(2);
    for (let s = 0; s < n / 2; s++) {
      e[0] = eps[4 * s];
      e[1] = eps[4 * s + 2];
      const z0 = mu[0] + Math.exp(0.5 * lv[0]) * e[0];
      const z1 = mu[1] + Math.exp(0.5 * lv[1]) * e[1];
      const logq = -0.5 * (2 * Math.log(2 * Math.PI) + lv[0] + lv[1] + e[0] * e[0] + e[1] * e[1]);
      const logp = -0.5 * (2 * Math.log(2 * Math.PI) + z0 * z0 + z1 * z1);
      sum += logq - logp;
    }
    // Monte Carlo standard error here is about 0.004; 0.03 is ~7 s.e.
    expect(Math.abs(sum / (n / 2) - kl[0])).toBeLessThan(0.03);
  });
});

describe('gaussian: reference gradients vs central finite differences (float64)', () => {
  const batch = 3;
  const dim = 4;
  const n = batch * dim;
  const mu = randomArray(n, 21);
  const lv = randomArray(n, 22, -1.5, 1.5);
  const eps = randomArray(n, 23, -2, 2);
  const wz = randomArray(n, 24);
  const wr = randomArray(batch, 25);
  // Central differences with h = 1e-6 on O(1) smooth functions: error ~1e-9; tolerance 1e-6.
  const tol = { atol: 1e-6, rtol: 1e-6 };

  it('sampleDiag', () => {
    const z = new Float64Array(n);
    const logq = new Float64Array(batch);
    const loss = () => {
      ref.sampleDiag(mu, lv, eps, z, logq, batch, dim);
      return dot(z, wz) + dot(logq, wr);
    };
    const dMu = new Float64Array(n);
    const dLv = new Float64Array(n);
    ref.sampleDiagBackward(lv, eps, wz, wr, dMu, dLv, batch, dim);
    expectClose(dMu, numericalGradient(loss, mu), tol, 'dMu');
    expectClose(dLv, numericalGradient(loss, lv), tol, 'dLogvar');
  });

  it('logStandard', () => {
    const out = new Float64Array(batch);
    const loss = () => {
      ref.logStandard(mu, out, batch, dim);
      return dot(out, wr);
    };
    const dx = new Float64Array(n);
    ref.logStandardBackward(mu, wr, dx, batch, dim);
    expectClose(dx, numericalGradient(loss, mu), tol, 'dx');
  });

  it('klStandard', () => {
    const out = new Float64Array(batch);
    const loss = () => {
      ref.klStandard(mu, lv, out, batch, dim);
      return dot(out, wr);
    };
    const dMu = new Float64Array(n);
    const dLv = new Float64Array(n);
    ref.klStandardBackward(mu, lv, wr, dMu, dLv, batch, dim);
    expectClose(dMu, numericalGradient(loss, mu), tol, 'dMu');
    expectClose(dLv, numericalGradient(loss, lv), tol, 'dLogvar');
  });
});

describe.skipIf(!hasCpu())('gaussian: cpu vs reference', () => {
  const cpu = hasCpu() ? backendByName('cpu') : undefined;
  // Element outputs: float32 rounding of O(1) values, ~1e-7 relative; 1e-5 leaves room for exp.
  // Row sums: accumulated in double on both sides, inputs identical, so only the final
  // float32 rounding and float32 per-element products differ: 1e-5 relative to the row's scale.
  it.each(SHAPES)('batch %d dim %d', (batch, dim) => {
    const n = batch * dim;
    const mu = asFloat32Values(randomArray(n, 31, -3, 3));
    const lv = asFloat32Values(randomArray(n, 32, -4, 4));
    const eps = asFloat32Values(randomArray(n, 33, -3, 3));
    const g = asFloat32Values(randomArray(n, 34));
    const gr = asFloat32Values(randomArray(batch, 35));
    const f = (a: Float64Array) => Float32Array.from(a);
    const rowTol = { atol: 1e-5 * dim, rtol: 1e-5 };
    const elTol = { atol: 1e-5, rtol: 1e-5 };

    const zR = new Float64Array(n);
    const qR = new Float64Array(batch);
    ref.sampleDiag(mu, lv, eps, zR, qR, batch, dim);
    const zC = new Float32Array(n);
    const qC = new Float32Array(batch);
    cpu!.gaussian.sampleDiag(f(mu), f(lv), f(eps), zC, qC, batch, dim);
    expectClose(zC, zR, elTol, 'z');
    expectClose(qC, qR, rowTol, 'logq');

    const dMuR = new Float64Array(n);
    const dLvR = new Float64Array(n);
    ref.sampleDiagBackward(lv, eps, g, gr, dMuR, dLvR, batch, dim);
    const dMuC = new Float32Array(n);
    const dLvC = new Float32Array(n);
    cpu!.gaussian.sampleDiagBackward(f(lv), f(eps), f(g), f(gr), dMuC, dLvC, batch, dim);
    expectClose(dMuC, dMuR, elTol, 'dMu');
    expectClose(dLvC, dLvR, elTol, 'dLogvar');

    const lsR = new Float64Array(batch);
    ref.logStandard(mu, lsR, batch, dim);
    const lsC = new Float32Array(batch);
    cpu!.gaussian.logStandard(f(mu), lsC, batch, dim);
    expectClose(lsC, lsR, rowTol, 'logStandard');
    const dxR = new Float64Array(n);
    ref.logStandardBackward(mu, gr, dxR, batch, dim);
    const dxC = new Float32Array(n);
    cpu!.gaussian.logStandardBackward(f(mu), f(gr), dxC, batch, dim);
    expectClose(dxC, dxR, elTol, 'logStandard dx');

    const klR = new Float64Array(batch);
    ref.klStandard(mu, lv, klR, batch, dim);
    const klC = new Float32Array(batch);
    cpu!.gaussian.klStandard(f(mu), f(lv), klC, batch, dim);
    expectClose(klC, klR, rowTol, 'kl');
    ref.klStandardBackward(mu, lv, gr, dMuR, dLvR, batch, dim);
    cpu!.gaussian.klStandardBackward(f(mu), f(lv), f(gr), dMuC, dLvC, batch, dim);
    expectClose(dMuC, dMuR, elTol, 'kl dMu');
    expectClose(dLvC, dLvR, { atol: 1e-5, rtol: 2e-5 }, 'kl dLogvar');
  });
});

describe('gaussian: bad arguments', () => {
  const names = hasCpu() ? (['reference', 'cpu'] as const) : (['reference'] as const);
  for (const name of names) {
    it(`${name}: names the argument`, () => {
      const b = backendByName(name);
      const a = b.alloc(6);
      const r = b.alloc(2);
      expect(() => b.gaussian.klStandard(a, a, r, 2, 4)).toThrow(RangeError);
      expect(() => b.gaussian.klStandard(a, a, r, 2, 4)).toThrow(/for "mu" but received Float(32|64)Array\(6\)/);
      expect(() => b.gaussian.klStandard(a, a, b.alloc(3), 2, 3)).toThrow(/for "out"/);
      expect(() => b.gaussian.logStandard(a, r, -2, 3)).toThrow('Expected non-negative integer for "batch" but received -2 (number)');
      expect(() => b.gaussian.logStandard(a, r, 2, NaN)).toThrow('for "dim" but received NaN (number)');
      expect(() => b.gaussian.logStandard([1, 2] as never, r, 1, 2)).toThrow(TypeError);
    });
  }
});

// Folded from the former test/cuda.test.ts. Skipped, with the reason, where no CUDA device is present.
describeBackends(['cuda'], 'cuda vs reference', (cuda: Backend) => {
  const reference = backendByName('reference');
  const f32 = (a: ArrayLike<number>): Float32Array => Float32Array.from(a);
  describe('gaussian', () => {
    it.each([
      [1, 1],
      [1, 784],
      [7, 33],
      [100, 784],
      [257, 3],
      [4099, 2],
    ])('batch %d dim %d', (batch, dim) => {
      const n = batch * dim;
      const f = f32;
      const mu = asFloat32Values(randomArray(n, 31, -3, 3));
      const lv = asFloat32Values(randomArray(n, 32, -4, 4));
      const eps = asFloat32Values(randomArray(n, 33, -3, 3));
      const g = asFloat32Values(randomArray(n, 34));
      const gr = asFloat32Values(randomArray(batch, 35));
      // test/gaussian.test.ts: elements ~1e-7 relative (1e-5 leaves room for exp); row sums
      // in float64 on both sides, 1e-5 relative to the row's scale.
      const rowTol = { atol: 1e-5 * dim, rtol: 1e-5 };
      const elTol = { atol: 1e-5, rtol: 1e-5 };
      const [zR, qR, z, q] = [new Float64Array(n), new Float64Array(batch), new Float32Array(n), new Float32Array(batch)];
      reference.gaussian.sampleDiag(mu, lv, eps, zR, qR, batch, dim);
      cuda.gaussian.sampleDiag(f(mu), f(lv), f(eps), z, q, batch, dim);
      expectClose(z, zR, elTol, 'z');
      expectClose(q, qR, rowTol, 'logq');
      const [dMuR, dLvR, dMu, dLv] = [new Float64Array(n), new Float64Array(n), new Float32Array(n), new Float32Array(n)];
      reference.gaussian.sampleDiagBackward(lv, eps, g, gr, dMuR, dLvR, batch, dim);
      cuda.gaussian.sampleDiagBackward(f(lv), f(eps), f(g), f(gr), dMu, dLv, batch, dim);
      expectClose(dMu, dMuR, elTol, 'dMu');
      expectClose(dLv, dLvR, elTol, 'dLogvar');
      const [lsR, ls] = [new Float64Array(batch), new Float32Array(batch)];
      reference.gaussian.logStandard(mu, lsR, batch, dim);
      cuda.gaussian.logStandard(f(mu), ls, batch, dim);
      expectClose(ls, lsR, rowTol, 'logStandard');
      const [dxR, dx] = [new Float64Array(n), new Float32Array(n)];
      reference.gaussian.logStandardBackward(mu, gr, dxR, batch, dim);
      cuda.gaussian.logStandardBackward(f(mu), f(gr), dx, batch, dim);
      expectClose(dx, dxR, elTol, 'logStandard dx');
      const [klR, kl] = [new Float64Array(batch), new Float32Array(batch)];
      reference.gaussian.klStandard(mu, lv, klR, batch, dim);
      cuda.gaussian.klStandard(f(mu), f(lv), kl, batch, dim);
      expectClose(kl, klR, rowTol, 'kl');
      reference.gaussian.klStandardBackward(mu, lv, gr, dMuR, dLvR, batch, dim);
      cuda.gaussian.klStandardBackward(f(mu), f(lv), f(gr), dMu, dLv, batch, dim);
      expectClose(dMu, dMuR, elTol, 'kl dMu');
      expectClose(dLv, dLvR, { atol: 1e-5, rtol: 2e-5 }, 'kl dLogvar');
    });
  });
});
