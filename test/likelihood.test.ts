import { describe, expect, it } from 'vitest';
import { backendByName } from '../src/backend';
import { referenceLikelihood as ref } from '../src/backend/reference/likelihood';
import { asFloat32Values, dot, expectClose, hasCpu, numericalGradient, randomArray } from './helpers';
import type { Backend } from '../src/backend/backend';
import { describeBackends } from './helpers';

describe('likelihood: reference definitions', () => {
  it('bernoulli equals Σ x log σ(l) + (1 − x) log(1 − σ(l)) and stays finite for huge logits', () => {
    const x = Float64Array.from([1, 0, 0.3, 1, 0]);
    const l = Float64Array.from([2, -1, 0.5, -3, 4]);
    const out = new Float64Array(1);
    ref.bernoulli(x, l, out, 1, 5);
    let want = 0;
    for (let j = 0; j < 5; j++) {
      const p = 1 / (1 + Math.exp(-l[j]));
      want += x[j] * Math.log(p) + (1 - x[j]) * Math.log(1 - p);
    }
    expect(out[0]).toBeCloseTo(want, 12);
    ref.bernoulli(Float64Array.from([1, 0]), Float64Array.from([-800, 800]), out.subarray(0, 1), 1, 2);
    expect(out[0]).toBe(-1600);
  });

  it('gaussian equals the sum of log densities', () => {
    const x = Float64Array.from([0.1, -2, 3, 0]);
    const m = Float64Array.from([0, -1, 2.5, 0.2]);
    const lv = Float64Array.from([-1, 0.5]);
    const out = new Float64Array(2);
    ref.gaussian(x, m, lv, out, 2, 2);
    for (let r = 0; r < 2; r++) {
      let want = 0;
      for (let j = 0; j < 2; j++) {
        const s = Math.exp(0.5 * lv[j]);
        want += -0.5 * ((x[2 * r + j] - m[2 * r + j]) / s) ** 2 - Math.log(s * Math.sqrt(2 * Math.PI));
      }
      expect(out[r]).toBeCloseTo(want, 12);
    }
  });
});

describe('likelihood: reference gradients vs central finite differences (float64)', () => {
  const batch = 3;
  const dim = 5;
  const n = batch * dim;
  const x = randomArray(n, 41, 0, 1);
  const l = randomArray(n, 42, -4, 4);
  const lv = randomArray(dim, 43, -1, 1);
  const wr = randomArray(batch, 44);
  const tol = { atol: 1e-6, rtol: 1e-6 };

  it('bernoulli', () => {
    const out = new Float64Array(batch);
    const loss = () => {
      ref.bernoulli(x, l, out, batch, dim);
      return dot(out, wr);
    };
    const dl = new Float64Array(n);
    ref.bernoulliBackward(x, l, wr, dl, batch, dim);
    expectClose(dl, numericalGradient(loss, l), tol, 'dLogits');
  });

  it('gaussian (mean and learned log-variance)', () => {
    const out = new Float64Array(batch);
    const loss = () => {
      ref.gaussian(x, l, lv, out, batch, dim);
      return dot(out, wr);
    };
    const dm = new Float64Array(n);
    const dlv = new Float64Array(dim).fill(0.25); // accumulates onto what is there
    ref.gaussianBackward(x, l, lv, wr, dm, dlv, batch, dim);
    expectClose(dm, numericalGradient(loss, l), tol, 'dMean');
    expectClose(
      dlv.map((v) => v - 0.25),
      numericalGradient(loss, lv),
      tol,
      'dLogvar',
    );
  });
});

describe.skipIf(!hasCpu())('likelihood: cpu vs reference', () => {
  const cpu = hasCpu() ? backendByName('cpu') : undefined;
  it.each([
    [1, 1],
    [1, 784],
    [7, 33],
    [100, 784],
    [257, 3],
  ])('batch %d dim %d', (batch, dim) => {
    const n = batch * dim;
    const x = asFloat32Values(randomArray(n, 51, 0, 1).map((v) => (v > 0.6 ? 1 : v < 0.3 ? 0 : v)));
    const l = asFloat32Values(randomArray(n, 52, -12, 12));
    const lv = asFloat32Values(randomArray(dim, 53, -2, 2));
    const gr = asFloat32Values(randomArray(batch, 54));
    const f = (a: Float64Array) => Float32Array.from(a);
    // Row sums: float32 terms (softplus relative error ~1e-7 each) summed in double;
    // the error grows at most linearly in dim: atol 2e-6·dim, rtol 1e-5.
    const rowTol = { atol: 2e-6 * dim, rtol: 1e-5 };
    const elTol = { atol: 1e-6, rtol: 1e-5 };

    const bR = new Float64Array(batch);
    ref.bernoulli(x, l, bR, batch, dim);
    const bC = new Float32Array(batch);
    cpu!.likelihood.bernoulli(f(x), f(l), bC, batch, dim);
    expectClose(bC, bR, rowTol, 'bernoulli');
    const dR = new Float64Array(n);
    ref.bernoulliBackward(x, l, gr, dR, batch, dim);
    const dC = new Float32Array(n);
    cpu!.likelihood.bernoulliBackward(f(x), f(l), f(gr), dC, batch, dim);
    expectClose(dC, dR, elTol, 'bernoulli dLogits');

    const gR = new Float64Array(batch);
    ref.gaussian(x, l, lv, gR, batch, dim);
    const gC = new Float32Array(batch);
    cpu!.likelihood.gaussian(f(x), f(l), f(lv), gC, batch, dim);
    expectClose(gC, gR, { atol: 2e-5 * dim, rtol: 1e-5 }, 'gaussian');
    const dmR = new Float64Array(n);
    const dlvR = new Float64Array(dim);
    ref.gaussianBackward(x, l, lv, gr, dmR, dlvR, batch, dim);
    const dmC = new Float32Array(n);
    const dlvC = new Float32Array(dim);
    cpu!.likelihood.gaussianBackward(f(x), f(l), f(lv), f(gr), dmC, dlvC, batch, dim);
    expectClose(dmC, dmR, { atol: 1e-5, rtol: 1e-5 }, 'gaussian dMean');
    expectClose(dlvC, dlvR, { atol: 1e-4 * batch, rtol: 1e-5 }, 'gaussian dLogvar');
    cpu!.likelihood.gaussianBackward(f(x), f(l), f(lv), f(gr), dmC, null, batch, dim);
  });
});

describe('likelihood: bad arguments', () => {
  const names = hasCpu() ? (['reference', 'cpu'] as const) : (['reference'] as const);
  for (const name of names) {
    it(`${name}: names the argument`, () => {
      const b = backendByName(name);
      const a = b.alloc(6);
      expect(() => b.likelihood.bernoulli(a, b.alloc(5), b.alloc(2), 2, 3)).toThrow(/for "logits" but received Float(32|64)Array\(5\)/);
      expect(() => b.likelihood.gaussian(a, a, b.alloc(2), b.alloc(2), 2, 3)).toThrow(/for "logvar"/);
      expect(() => b.likelihood.bernoulli(a, a, b.alloc(2), 2.5, 3)).toThrow(RangeError);
      expect(() => b.likelihood.bernoulli(a, a, null as never, 2, 3)).toThrow(TypeError);
    });
  }
});

// Folded from the former test/cuda.test.ts. Skipped, with the reason, where no CUDA device is present.
describeBackends(['cuda'], 'cuda vs reference', (cuda: Backend) => {
  const reference = backendByName('reference');
  const f32 = (a: ArrayLike<number>): Float32Array => Float32Array.from(a);
  const f64 = (a: ArrayLike<number>): Float64Array => Float64Array.from(a);
  describe('likelihood', () => {
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
      const gr = asFloat32Values(randomArray(batch, 35));
      // test/likelihood.test.ts: float32 terms summed in float64, error at most linear in dim.
      const x = asFloat32Values(randomArray(n, 51, 0, 1).map((v) => (v > 0.6 ? 1 : v < 0.3 ? 0 : v)));
      const l = asFloat32Values(randomArray(n, 52, -12, 12));
      const lvd = asFloat32Values(randomArray(dim, 53, -2, 2));
      const [bR, b] = [new Float64Array(batch), new Float32Array(batch)];
      reference.likelihood.bernoulli(x, l, bR, batch, dim);
      cuda.likelihood.bernoulli(f(x), f(l), b, batch, dim);
      expectClose(b, bR, { atol: 2e-6 * dim, rtol: 1e-5 }, 'bernoulli');
      const [dlR, dl] = [new Float64Array(n), new Float32Array(n)];
      reference.likelihood.bernoulliBackward(x, l, gr, dlR, batch, dim);
      cuda.likelihood.bernoulliBackward(f(x), f(l), f(gr), dl, batch, dim);
      expectClose(dl, dlR, { atol: 1e-6, rtol: 1e-5 }, 'bernoulli dLogits');
      const [gR, gg] = [new Float64Array(batch), new Float32Array(batch)];
      reference.likelihood.gaussian(x, l, lvd, gR, batch, dim);
      cuda.likelihood.gaussian(f(x), f(l), f(lvd), gg, batch, dim);
      expectClose(gg, gR, { atol: 2e-5 * dim, rtol: 1e-5 }, 'gaussian');
      const dlv0 = asFloat32Values(randomArray(dim, 55));
      const [dmR, dlvR, dm, dlv] = [new Float64Array(n), f64(dlv0), new Float32Array(n), f32(dlv0)];
      reference.likelihood.gaussianBackward(x, l, lvd, gr, dmR, dlvR, batch, dim);
      cuda.likelihood.gaussianBackward(f(x), f(l), f(lvd), f(gr), dm, dlv, batch, dim);
      expectClose(dm, dmR, { atol: 1e-5, rtol: 1e-5 }, 'gaussian dMean');
      expectClose(dlv, dlvR, { atol: 1e-4 * batch, rtol: 1e-5 }, 'gaussian dLogvar (accumulated)');
    });
  });
});
