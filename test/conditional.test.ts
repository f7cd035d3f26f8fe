/**
 * Conditional flow distributions p(x | c) and the learned mixture base:
 * sample/logProb agree under a context for every family that conditions, on
 * every backend; conditional maximum likelihood recovers a known conditional
 * Gaussian; the mixture base's gradients match finite differences; both save
 * and load; misuse is refused with a clear message.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FlowDistribution } from '../src/distributions/flow-distribution';
import { describeBackends, expectClose, hasCpu, randomArray, randomNormal } from './helpers';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flowvae-cond-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The families that take a context, with small conditioner options. */
const CONDITIONAL: Record<string, Record<string, unknown>> = {
  maf: { hidden: [8] },
  iaf: { hidden: [8] },
  realnvp: { hidden: [8] },
  nice: { hidden: [8] },
  glow: { hidden: [8] },
  'spline-coupling': { hidden: [8] },
  'spline-autoregressive': { hidden: [8] },
};

describeBackends(['reference', 'cpu'], 'conditional flow distributions: sample and logProb agree under a context', (backend) => {
  for (const [flow, options] of Object.entries(CONDITIONAL)) {
    it(flow, () => {
      const dist = FlowDistribution.create({ dim: 3, flow, layers: 2, contextDim: 2, seed: 4, backend, ...options });
      expect(dist.contextDim).toBe(2);
      // Move the parameters off their initial (often identity) values.
      for (const p of dist.parameters()) p.value.forEach((v, i) => (p.value[i] = v + 0.05 * Math.sin(7 * i + 1)));
      const context = backend.from(randomArray(6 * 2, 3, -1, 1));
      const { x, logProb } = dist.sample(6, { seed: 11, context });
      const again = dist.logProb(x, { context });
      // Sampling and scoring run opposite directions of the flow; float32 round trips agree to ~1e-4.
      const tol = backend.dtype === 'float64' ? 1e-8 : 2e-3;
      expectClose(again, logProb, { atol: tol, rtol: tol }, `${flow} log q(x | c)`);
      // The context matters: the same x under another context has another density.
      const other = backend.from(randomArray(6 * 2, 9, -1, 1));
      const moved = dist.logProb(x, { context: other });
      expect(Math.max(...Array.from(moved, (v, i) => Math.abs(v - again[i])))).toBeGreaterThan(1e-3);
    });
  }
});

describe.skipIf(!hasCpu())('conditional maximum likelihood', () => {
  it('recovers a known conditional Gaussian: x | c ~ N((2c, −c), diag(1.5 + c, 2 − c)²)', async () => {
    const n = 4000;
    const c = randomArray(n, 1, 0, 1);
    const eps = randomNormal(2 * n, 2);
    const x = new Float32Array(2 * n);
    for (let r = 0; r < n; r++) {
      x[2 * r] = 2 * c[r] + (1.5 + c[r]) * eps[2 * r];
      x[2 * r + 1] = -c[r] + (2 - c[r]) * eps[2 * r + 1];
    }
    const dist = FlowDistribution.create({ dim: 2, flow: 'maf', layers: 3, hidden: [32], contextDim: 1, seed: 1, backend: 'cpu' });
    await dist.fit(x, { context: Float32Array.from(c), epochs: 40, batchSize: 200, lr: 1e-2 });
    for (const at of [0.2, 0.8]) {
      const m = 20000;
      const { x: s } = dist.sample(m, { seed: 5, context: new Float32Array(m).fill(at) });
      const stats = [0, 1].map((j) => {
        let mean = 0;
        for (let r = 0; r < m; r++) mean += s[2 * r + j] / m;
        let v = 0;
        for (let r = 0; r < m; r++) v += (s[2 * r + j] - mean) ** 2 / m;
        return { mean, sd: Math.sqrt(v) };
      });
      // Model seeds 1–3 were off by at most 0.12 in a mean and 6% in a scale
      // (4000 training rows; the 20000 draws add ±0.02): bounds of 0.2 and 12%.
      expect(Math.abs(stats[0].mean - 2 * at)).toBeLessThan(0.2);
      expect(Math.abs(stats[1].mean + at)).toBeLessThan(0.2);
      expect(Math.abs(stats[0].sd / (1.5 + at) - 1)).toBeLessThan(0.12);
      expect(Math.abs(stats[1].sd / (2 - at) - 1)).toBeLessThan(0.12);
    }
    // Average log-density of fresh rows within 0.05 nats of the true conditional density's.
    const t = 2000;
    const ct = randomArray(t, 7, 0, 1);
    const et = randomNormal(2 * t, 8);
    const xt = new Float32Array(2 * t);
    let truth = 0;
    for (let r = 0; r < t; r++) {
      const s0 = 1.5 + ct[r];
      const s1 = 2 - ct[r];
      xt[2 * r] = 2 * ct[r] + s0 * et[2 * r];
      xt[2 * r + 1] = -ct[r] + s1 * et[2 * r + 1];
      truth += (-Math.log(2 * Math.PI) - Math.log(s0 * s1) - 0.5 * (et[2 * r] ** 2 + et[2 * r + 1] ** 2)) / t;
    }
    const model = Array.from(dist.logProb(xt, { context: Float32Array.from(ct) })).reduce((a, b) => a + b / t, 0);
    // Seeds 1–3: 0.009–0.013 nats below the truth.
    expect(Math.abs(model - truth)).toBeLessThan(0.05);
  });
});

describe('a learned mixture base', () => {
  it('its gradients (and the flow’s) match central differences, in both directions', () => {
    for (const [flow, direction] of [
      ['maf', 'normalizing'],
      ['realnvp', 'generative'],
    ] as const) {
      const dist = FlowDistribution.create({
        dim: 2,
        flow,
        layers: 2,
        hidden: [6],
        base: { kind: 'mixture', components: 3 },
        seed: 2,
        backend: 'reference',
        direction,
      });
      for (const p of dist.parameters()) p.value.forEach((v, i) => (p.value[i] = v + 0.1 * Math.cos(5 * i + 2)));
      const x = randomArray(10, 4, -1.5, 1.5);
      dist.densityGradients(x);
      for (const p of dist.parameters()) {
        const analytic = Float64Array.from(p.grad);
        const numeric = new Float64Array(p.value.length);
        for (let i = 0; i < p.value.length; i++) {
          const saved = p.value[i];
          p.value[i] = saved + 1e-6;
          const up = dist.densityGradients(x);
          p.value[i] = saved - 1e-6;
          const down = dist.densityGradients(x);
          p.value[i] = saved;
          numeric[i] = (up - down) / 2e-6;
        }
        // The generative direction solves the inverse to 1e-10 or so; 1e-5 covers it and the FD error.
        expectClose(analytic, numeric, { atol: 1e-5, rtol: 1e-4 }, `${flow}: ${p.name}`);
      }
    }
  });

  it('fits bimodal data better than the Gaussian base under the same flow and budget', async () => {
    const n = 2000;
    const u = randomArray(n, 3, 0, 1);
    const e = randomNormal(n, 4, 0.3);
    const x = Float64Array.from(u, (v, i) => (v < 0.5 ? -2 : 2) + e[i]);
    const fitWith = async (base: 'gaussian' | { kind: 'mixture'; components: number }) => {
      const dist = FlowDistribution.create({ dim: 1, flow: 'elementwise-affine', layers: 1, base, seed: 1, backend: 'reference' });
      await dist.fit(x, { epochs: 60, batchSize: 200, lr: 3e-2 });
      return Array.from(dist.logProb(x)).reduce((a, b) => a + b / n, 0);
    };
    const gaussian = await fitWith('gaussian');
    const mixture = await fitWith({ kind: 'mixture', components: 2 });
    // Two modes at ±2 with sd 0.3: a Gaussian scores about −2.1 nats, the true mixture about −0.9.
    expect(mixture).toBeGreaterThan(gaussian + 0.5);
  });
});

describe('conditional and mixture-base distributions save and load', () => {
  it('a conditional MAF with a mixture base round-trips with the same log-densities and samples', () => {
    const dist = FlowDistribution.create({
      dim: 2,
      flow: 'maf',
      layers: 2,
      hidden: [8],
      contextDim: 3,
      base: { kind: 'mixture', components: 4 },
      seed: 6,
      backend: 'reference',
    });
    for (const p of dist.parameters()) p.value.forEach((v, i) => (p.value[i] = v + 0.05 * Math.sin(i)));
    const dir = path.join(tmp, 'cond');
    dist.save(dir);
    const loaded = FlowDistribution.load(dir, { backend: 'reference' });
    expect(loaded.spec).toEqual(dist.spec);
    const context = randomArray(5 * 3, 2, -1, 1);
    const x = randomArray(5 * 2, 3, -1, 1);
    expect(Array.from(loaded.logProb(x, { context }))).toEqual(Array.from(dist.logProb(x, { context })));
    expect(Array.from(loaded.sample(5, { seed: 1, context }).x)).toEqual(Array.from(dist.sample(5, { seed: 1, context }).x));
  });
});

describe('conditional distributions refuse misuse with a clear message', () => {
  const cond = FlowDistribution.create({ dim: 2, flow: 'maf', layers: 1, hidden: [4], contextDim: 2, backend: 'reference' });
  const plain = FlowDistribution.create({ dim: 2, flow: 'maf', layers: 1, hidden: [4], backend: 'reference' });
  it.each([
    ['a missing context', () => cond.logProb(new Float64Array(4)), 'This distribution is conditional (contextDim 2): logProb needs "context" [rows, 2]'],
    ['a context of the wrong size', () => cond.sample(2, { context: new Float64Array(3) }), 'array of 2 rows × contextDim 2 = 4 values for "context"'],
    ['a non-finite context', () => cond.logProb(new Float64Array(4), { context: Float64Array.of(0, 0, NaN, 0) }), '"context"'],
    [
      'a context for an unconditional one',
      () => plain.logProb(new Float64Array(4), { context: new Float64Array(4) }),
      'This distribution is unconditional (contextDim 0) but logProb was given "context"',
    ],
    ['the reverse KL of a conditional one', () => cond.reverseKLGradients(() => undefined, 4), 'The reverse KL fits an unconditional target'],
    [
      'mean and scale for a mixture base',
      () => FlowDistribution.create({ dim: 2, flow: 'maf', base: { kind: 'mixture' }, baseMean: [0, 0] }),
      '"baseMean" and "baseLogVar" set a Gaussian base',
    ],
  ])('%s', (_what, call, message) => {
    expect(call).toThrow(message);
  });
  it('fit without the context of a conditional one', async () => {
    await expect(cond.fit(new Float64Array(8), { epochs: 1 })).rejects.toThrow('fit needs "context" [n, 2] beside the data');
    await expect(cond.fit(new Float64Array(8), { epochs: 1, context: new Float64Array(6) })).rejects.toThrow('one row per data row');
  });
});
