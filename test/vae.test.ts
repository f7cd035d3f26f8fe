import { describe, expect, it } from 'vitest';
import { referenceRng } from '../src/backend/reference/rng';
import type { FloatArray } from '../src/backend/types';
import { FLOW_FAMILIES } from '../src/flows/registry';
import { loadMnistSubset } from '../src/data/mnist';
import { VAE, type PosteriorSpec, type VAEOptions } from '../src/vae/vae';
import { expectClose, hasCpu, randomArray } from './helpers';
import type { Backend } from '../src/backend/backend';
import { describeBackends } from './helpers';

function tinyData(n: number, dim: number, seed: number): Float64Array {
  return randomArray(n * dim, seed, 0, 1).map((v) => (v > 0.5 ? 1 : 0));
}

/** An independent transcription of the diagonal-posterior ELBO for a one-hidden-layer tanh VAE. */
function bruteForceElbo(vae: VAE, x: Float64Array, eps: Float64Array): number {
  const p = new Map(vae.parameters().map((q) => [q.name, q.value]));
  const D = vae.inputDim;
  const L = vae.latentDim;
  const n = x.length / D;
  const linear = (w: FloatArray, b: FloatArray, input: number[], outDim: number) =>
    Array.from({ length: outDim }, (_, o) => input.reduce((s, v, i) => s + w[o * input.length + i] * v, b[o]));
  let total = 0;
  for (let r = 0; r < n; r++) {
    const xr = Array.from(x.subarray(r * D, (r + 1) * D));
    const h = linear(p.get('encoder.net.0.weight')!, p.get('encoder.net.0.bias')!, xr, 4).map(Math.tanh);
    const mu = linear(p.get('encoder.mu.weight')!, p.get('encoder.mu.bias')!, h, L);
    const lv = linear(p.get('encoder.logvar.weight')!, p.get('encoder.logvar.bias')!, h, L);
    const z = mu.map((m, j) => m + Math.exp(lv[j] / 2) * eps[r * L + j]);
    const hd = linear(p.get('decoder.net.0.weight')!, p.get('decoder.net.0.bias')!, z, 4).map(Math.tanh);
    const logits = linear(p.get('decoder.net.2.weight')!, p.get('decoder.net.2.bias')!, hd, D);
    // log p(x|z) by Bernoulli probabilities directly; KL by its definition for Gaussians.
    let logpx = 0;
    logits.forEach((l, j) => {
      const prob = 1 / (1 + Math.exp(-l));
      logpx += xr[j] * Math.log(prob) + (1 - xr[j]) * Math.log(1 - prob);
    });
    let kl = 0;
    for (let j = 0; j < L; j++) kl += 0.5 * (mu[j] ** 2 + Math.exp(lv[j]) - 1 - lv[j]);
    total += logpx - kl;
  }
  return total / n;
}

describe('VAE: definitions', () => {
  it('the ELBO of a tiny model equals a brute-force computation', () => {
    const vae = new VAE({
      inputDim: 5,
      latentDim: 2,
      encoder: { hidden: [4], activation: 'tanh' },
      decoder: { hidden: [4], activation: 'tanh' },
      seed: 3,
      backend: 'reference',
    });
    const x = tinyData(6, 5, 1);
    const terms = vae.elbo(x, { samples: 1, seed: 99 });
    const eps = new Float64Array(6 * 2);
    referenceRng.normal(99, 0, eps);
    expect(terms.elbo).toBeCloseTo(bruteForceElbo(vae, x, eps), 10);
  });

  it('importance-sampled log-likelihood is above the ELBO and converges as samples grow', () => {
    const vae = new VAE({ inputDim: 6, latentDim: 2, encoder: { hidden: [8] }, decoder: { hidden: [8] }, seed: 5, backend: 'reference' });
    const x = tinyData(4, 6, 2);
    const elbo = vae.elbo(x, { samples: 200 }).elbo;
    const ll = [10, 100, 2000].map((s) => vae.logLikelihood(x, { samples: s, batch: 64, seed: 1 }).mean);
    // log p(x) ≥ ELBO (Jensen); with 2000 samples the estimate's bias is far below the gap.
    expect(ll[2]).toBeGreaterThan(elbo);
    // The IWAE bound tightens with S: differences shrink (allowing Monte Carlo noise of 0.05 nats).
    expect(Math.abs(ll[2] - ll[1])).toBeLessThan(Math.abs(ll[1] - ll[0]) + 0.05);
    // Exact log p(x) by brute-force quadrature over the 2-D latent space on a grid.
    const exact = quadratureLogLikelihood(vae, x);
    expect(Math.abs(ll[2] - exact)).toBeLessThan(0.02);
  });
});

describe('VAE: the sampled KL', () => {
  it.each(['diagonal', 'full-covariance'] as const)('%s: averages to the closed form, with the same reconstruction term', (posterior) => {
    const options = { inputDim: 6, latentDim: 3, encoder: { hidden: [8] }, decoder: { hidden: [8] }, posterior, seed: 8, backend: 'reference' as const };
    const closed = new VAE(options);
    const sampled = new VAE({ ...options, kl: 'sampled' });
    expect(sampled.config.kl).toBe('sampled');
    expect(closed.config.kl).toBe('closed-form');
    const x = tinyData(5, 6, 3);
    const a = closed.elbo(x, { samples: 20000, seed: 4 });
    const b = sampled.elbo(x, { samples: 20000, seed: 4 });
    expect(b.reconstruction).toBe(a.reconstruction);
    // The per-sample KL estimate has standard deviation ~√(latentDim/2) ≈ 1.2
    // nats here; over 5 × 20000 draws its mean is within ~0.004 (1 s.e.) of the
    // closed form; 0.02 is five standard errors.
    expect(Math.abs(b.kl - a.kl)).toBeLessThan(0.02);
  });
});

describe('VAE: importance sampling encodes each example once', () => {
  // With S = 1 and a flow posterior the importance weight is the one-sample
  // ELBO of the example, and both methods draw example i's noise from the same
  // place in the stream, so logLikelihood (encoder run once per example, heads
  // repeated) must equal elbo (encoder run on the whole batch) up to float64
  // rounding. Amortized parameters and context are the repeated heads here.
  const posteriors: PosteriorSpec[] = [
    { flow: 'planar', layers: 3, amortized: true },
    { flow: 'iaf', layers: 2, hidden: [12] },
  ];
  for (const posterior of posteriors) {
    it(`${typeof posterior === 'string' ? posterior : posterior.flow}: logLikelihood with S = 1 equals the one-sample ELBO`, () => {
      const vae = new VAE({ inputDim: 6, latentDim: 3, encoder: { hidden: [8] }, decoder: { hidden: [8] }, posterior, seed: 4, backend: 'reference' });
      const x = tinyData(5, 6, 3);
      const ll = vae.logLikelihood(x, { samples: 1, batch: 1, seed: 17 }).mean;
      expect(ll).toBeCloseTo(vae.elbo(x, { samples: 1, seed: 17 }).elbo, 10);
    });
  }

  it('full-covariance: the estimate matches quadrature (the repeated covariance head is used)', () => {
    const vae = new VAE({
      inputDim: 6,
      latentDim: 2,
      encoder: { hidden: [8] },
      decoder: { hidden: [8] },
      posterior: 'full-covariance',
      seed: 6,
      backend: 'reference',
    });
    const x = tinyData(4, 6, 2);
    const ll = vae.logLikelihood(x, { samples: 2000, batch: 300, seed: 2 }).mean;
    // Same tolerance as the diagonal case above: Monte Carlo error of 2000 weights on this tiny model.
    expect(Math.abs(ll - quadratureLogLikelihood(vae, x))).toBeLessThan(0.02);
  });
});

/** log p(x) = log ∫ p(x|z) N(z; 0, I) dz on a 241×241 grid over [−6, 6]² (tiny model, 2-D latent). */
function quadratureLogLikelihood(vae: VAE, x: Float64Array): number {
  const D = vae.inputDim;
  const n = x.length / D;
  const steps = 241;
  const h = 12 / (steps - 1);
  const z = new Float64Array(steps * steps * 2);
  for (let i = 0; i < steps; i++) {
    for (let j = 0; j < steps; j++) {
      z[2 * (i * steps + j)] = -6 + i * h;
      z[2 * (i * steps + j) + 1] = -6 + j * h;
    }
  }
  const probs = vae.decode(z);
  let total = 0;
  for (let r = 0; r < n; r++) {
    let max = -Infinity;
    const terms = new Float64Array(steps * steps);
    for (let k = 0; k < steps * steps; k++) {
      let lp = -Math.log(2 * Math.PI) - 0.5 * (z[2 * k] ** 2 + z[2 * k + 1] ** 2);
      for (let j = 0; j < D; j++) {
        const p = probs[k * D + j];
        lp += x[r * D + j] ? Math.log(p) : Math.log(1 - p);
      }
      terms[k] = lp;
      if (lp > max) max = lp;
    }
    let s = 0;
    for (const t of terms) s += Math.exp(t - max);
    total += max + Math.log(s * h * h);
  }
  return total / n;
}

/** Loss of the VAE for fixed noise (the quantity computeGradients differentiates). */
function lossAt(vae: VAE, x: Float64Array, beta: number): number {
  const t = vae.computeGradients(x, { beta, noiseOffset: 0 });
  return -(t.reconstruction - beta * t.kl);
}

/** Every posterior family (both parameter modes), and the Gaussian ones with the sampled KL too. */
function posteriorsToTest(): Pick<VAEOptions, 'posterior' | 'kl'>[] {
  const list: Pick<VAEOptions, 'posterior' | 'kl'>[] = [
    { posterior: 'diagonal' },
    { posterior: 'diagonal', kl: 'sampled' },
    { posterior: 'full-covariance' },
    { posterior: 'full-covariance', kl: 'sampled' },
  ];
  for (const [name, family] of Object.entries(FLOW_FAMILIES)) {
    if (family.amortizable) list.push({ posterior: { flow: name, layers: 2, amortized: true } });
    if (family.shareable) list.push({ posterior: { flow: name, layers: 2, amortized: false } });
  }
  return list;
}

describe('VAE: gradients of the whole model vs central finite differences (reference, float64)', () => {
  for (const model of posteriorsToTest()) {
    it(`${JSON.stringify(model)}`, () => {
      const vae = new VAE({
        inputDim: 4,
        latentDim: 3,
        encoder: { hidden: [5], activation: 'tanh' },
        decoder: { hidden: [5], activation: 'softplus' },
        ...model,
        seed: 11,
        backend: 'reference',
      });
      const x = tinyData(3, 4, 7);
      const beta = 0.7;
      vae.computeGradients(x, { beta, noiseOffset: 0 });
      const params = vae.parameters();
      const analytic = params.map((p) => Float64Array.from(p.grad));
      // The loss is a mean over the batch of smooth terms; h = 1e-6 gives ~1e-9 truncation
      // and ~1e-10 rounding error, far below the 1e-5 tolerance.
      params.forEach((p, k) => {
        const numeric = new Float64Array(p.value.length);
        for (let i = 0; i < p.value.length; i++) {
          const saved = p.value[i];
          p.value[i] = saved + 1e-6;
          const up = lossAt(vae, x, beta);
          p.value[i] = saved - 1e-6;
          const down = lossAt(vae, x, beta);
          p.value[i] = saved;
          numeric[i] = (up - down) / 2e-6;
        }
        expectClose(analytic[k], numeric, { atol: 1e-5, rtol: 1e-4 }, p.name);
      });
    });
  }
});

describe.skipIf(!hasCpu())('VAE: cpu and reference train identically from the same seed', () => {
  for (const model of posteriorsToTest()) {
    it(`${JSON.stringify(model)}`, async () => {
      const make = (backend: 'cpu' | 'reference') =>
        new VAE({ inputDim: 20, latentDim: 4, encoder: { hidden: [16] }, decoder: { hidden: [16] }, ...model, seed: 2, backend });
      const x = Float32Array.from(tinyData(40, 20, 9));
      const ref = make('reference');
      const cpu = make('cpu');
      const refFit = await ref.fit(Float64Array.from(x), { epochs: 2, batchSize: 10, lr: 1e-3, seed: 4 });
      const cpuFit = await cpu.fit(x, { epochs: 2, batchSize: 10, lr: 1e-3, seed: 4 });
      // 8 Adam steps of lr 1e-3 from identical weights and noise: float32 rounding in
      // the forward pass (~1e-6 relative) moves each weight by far less than lr, so
      // weights agree to ~1e-5 and per-epoch ELBOs (~14 nats) to ~1e-3.
      for (let e = 0; e < 2; e++) {
        expect(Math.abs(cpuFit.history[e].train.elbo - refFit.history[e].train.elbo)).toBeLessThan(2e-3);
      }
      const rp = ref.parameters();
      cpu.parameters().forEach((p, i) => expectClose(p.value, rp[i].value, { atol: 2e-5, rtol: 1e-4 }, p.name));
    });
  }
});

describe('VAE: options are validated', () => {
  const base = { inputDim: 4, latentDim: 2, backend: 'reference' as const };
  it.each([
    [{ ...base, latentDim: 0 }, RangeError, 'Expected positive integer for "latentDim" but received 0 (number)'],
    [{ ...base, inputDim: '4' }, TypeError, 'Expected positive integer for "inputDim" but received "4" (string)'],
    [{ ...base, likelihood: 'poisson' }, RangeError, 'Expected one of "bernoulli", "gaussian", "categorical" for "likelihood" but received "poisson" (string)'],
    [{ ...base, encoder: { hidden: [3, -1] } }, RangeError, 'Expected positive integer for "encoder.hidden[1]" but received -1 (number)'],
    [{ ...base, decoder: { activation: 'swish' } }, RangeError, 'for "decoder.activation" but received "swish" (string)'],
    [{ ...base, encoder: { width: 3 } }, RangeError, 'Unknown option "width" in "encoder"'],
    [{ ...base, learningRate: 1 }, RangeError, 'Unknown option "learningRate" in "options"'],
    [{ ...base, posterior: 'gaussian' }, RangeError, 'for "posterior" but received "gaussian" (string)'],
    [{ ...base, posterior: { flow: 'nope' } }, RangeError, 'for "posterior.flow" but received "nope" (string)'],
    [{ ...base, seed: -1 }, RangeError, 'Expected non-negative integer for "seed" but received -1 (number)'],
    [{ ...base, likelihoodLogVar: NaN }, RangeError, 'for "likelihoodLogVar" but received NaN (number)'],
    [{ ...base, backend: 'tpu' }, RangeError, 'for "backend" but received "tpu" (string)'],
    [{ ...base, kl: 'exact' }, RangeError, 'Expected one of "closed-form", "sampled" for "kl" but received "exact" (string)'],
    [
      { ...base, posterior: { flow: 'planar' }, kl: 'closed-form' },
      RangeError,
      'Expected "sampled" for "kl" but received "closed-form" (string): a planar flow posterior has no closed-form KL',
    ],
  ])('%j', (options, kind, message) => {
    expect(() => new VAE(options as never)).toThrow(kind);
    expect(() => new VAE(options as never)).toThrow(message);
  });

  it('fit rejects bad data and options with the offending row or option named', async () => {
    const vae = new VAE(base);
    const x = new Float64Array(12).fill(0.5);
    x[9] = NaN;
    await expect(vae.fit(x)).rejects.toThrow('"data" row 2, column 1 is NaN');
    await expect(vae.fit(new Float64Array(10))).rejects.toThrow('multiple of inputDim 4');
    await expect(vae.fit(new Float64Array(0))).rejects.toThrow('"data" is empty');
    await expect(vae.fit(new Float64Array(8), { epochs: 0 })).rejects.toThrow('Expected positive integer for "epochs" but received 0 (number)');
    await expect(vae.fit(new Float64Array(8), { lr: -1 })).rejects.toThrow('for "lr" but received -1 (number)');
    await expect(vae.fit(new Float64Array(8), { nope: 1 } as never)).rejects.toThrow('Unknown option "nope"');
    expect(() => vae.elbo(new Float64Array(5))).toThrow(RangeError);
    expect(() => vae.sample(0)).toThrow('Expected positive integer for "n" but received 0 (number)');
  });
});

describe('VAE: training', () => {
  it('a seeded run is reproduced exactly and improves the ELBO', async () => {
    const run = async () => {
      const vae = new VAE({ inputDim: 16, latentDim: 2, encoder: { hidden: [32] }, decoder: { hidden: [32] }, seed: 1, backend: 'reference' });
      // Two prototypes with noise: a VAE must learn to separate them.
      const x = new Float64Array(200 * 16);
      const rnd = randomArray(200 * 16, 5, 0, 1);
      for (let r = 0; r < 200; r++) for (let j = 0; j < 16; j++) x[r * 16 + j] = ((r % 2 === 0) === j < 8 ? 0.9 : 0.1) > rnd[r * 16 + j] ? 1 : 0;
      const result = await vae.fit(x, { epochs: 15, batchSize: 20, lr: 3e-3, seed: 2 });
      return { vae, result };
    };
    const a = await run();
    const b = await run();
    expect(a.result.history.map((h) => h.train.elbo)).toEqual(b.result.history.map((h) => h.train.elbo));
    const first = a.result.history[0].train.elbo;
    const last = a.result.history[a.result.history.length - 1].train.elbo;
    // 16 Bernoulli pixels at p = 0.5 cost 11.1 nats; the two-prototype data has
    // per-pixel entropy H(0.1) = 0.325 nats, so a good model reaches about −5.2 − KL.
    expect(first).toBeLessThan(-9);
    expect(last).toBeGreaterThan(-8);
  });

  it('a short seeded run on the bundled MNIST subset reaches a test ELBO above −180 nats', async () => {
    const backend = hasCpu() ? 'cpu' : 'reference';
    const train = loadMnistSubset({ split: 'train', limit: 3000 });
    const test = loadMnistSubset({ split: 'test', limit: 500 });
    const vae = new VAE({ inputDim: 784, latentDim: 10, encoder: { hidden: [100] }, decoder: { hidden: [100] }, seed: 1, backend });
    const untrained = vae.elbo(test.x, { seed: 1 }).elbo;
    await vae.fit(train, { epochs: 3, batchSize: 50, lr: 2e-3, binarize: 'dynamic', seed: 1 });
    const elbo = vae.elbo(test.x, { seed: 1 }).elbo;
    // Measured: −169.3 on both cpu and reference (they agree to 1e-4 nats after 180 steps);
    // an untrained model scores about −545. The bound leaves ~11 nats for platform differences.
    expect(untrained).toBeLessThan(-400);
    expect(elbo).toBeGreaterThan(-180);
  });

  it('AbortSignal stops after the current batch', async () => {
    const vae = new VAE({ inputDim: 4, latentDim: 2, encoder: { hidden: [4] }, decoder: { hidden: [4] }, backend: 'reference' });
    const controller = new AbortController();
    let batches = 0;
    const result = await vae.fit(tinyData(100, 4, 1), {
      epochs: 5,
      batchSize: 10,
      onBatch: () => {
        batches += 1;
        if (batches === 3) controller.abort();
      },
      signal: controller.signal,
    });
    expect(result.stopped).toBe('aborted');
    expect(batches).toBe(3);
  });

  it('a diverging run stops with an error naming the step and the term', async () => {
    const vae = new VAE({ inputDim: 4, latentDim: 2, encoder: { hidden: [4] }, decoder: { hidden: [4] }, backend: 'reference', likelihood: 'gaussian' });
    const x = randomArray(40, 3, 0, 1);
    x.fill(1e200, 0, 4); // overflows (x − mean)² in the Gaussian likelihood
    await expect(vae.fit(x, { epochs: 1, batchSize: 40 })).rejects.toThrow(/Training diverged at epoch 1, step 1: .*reconstruction term/);
  });
});

export { tinyData };

describe('VAE.sample: one convention with FlowDistribution.sample', () => {
  const make = () => new VAE({ inputDim: 6, latentDim: 2, encoder: { hidden: [4] }, decoder: { hidden: [4] }, seed: 5, backend: 'reference' });

  it('draws fresh samples on every call without a seed, continuing the model noise stream', () => {
    const vae = make();
    const a = vae.sample(3);
    const b = vae.sample(3);
    expect(Array.from(b)).not.toEqual(Array.from(a));
    expect(vae.noiseOffset).toBe(12);
    // The same stream, drawn at once, gives both calls' samples in order.
    expect(Array.from(make().sample(6))).toEqual([...a, ...b]);
  });

  it('with a seed, the same samples every call, and the noise stream untouched', () => {
    const vae = make();
    const a = vae.sample(3, { seed: 11 });
    expect(Array.from(vae.sample(3, { seed: 11 }))).toEqual(Array.from(a));
    expect(vae.noiseOffset).toBe(0);
    expect(() => vae.sample(3, { sed: 1 } as never)).toThrow('Unknown option "sed" in "options"; expected one of "seed"');
  });
});

describe("VAE methods name the caller's argument for bad values", () => {
  const vae = new VAE({
    inputDim: 3,
    latentDim: 2,
    encoder: { hidden: [4] },
    decoder: { hidden: [4] },
    posterior: { flow: 'planar', layers: 2 },
    seed: 1,
    backend: 'cpu',
  });
  const gaussian = new VAE({ inputDim: 3, latentDim: 2, encoder: { hidden: [4] }, decoder: { hidden: [4] }, likelihood: 'gaussian', seed: 1, backend: 'cpu' });
  it.skipIf(!hasCpu)('NaN, Infinity, values beyond float32 and values outside [0, 1] for a Bernoulli model', () => {
    const nan = Float64Array.from([0, 1, 0, 1, NaN, 0]);
    for (const call of [() => vae.elbo(nan), () => vae.logLikelihood(nan, { samples: 2 }), () => vae.encode(nan), () => vae.reconstruct(nan)]) {
      expect(call).toThrow('"x" row 1, column 1 is NaN');
    }
    expect(() => gaussian.elbo(Float64Array.from([0, 1, 3e39]))).toThrow('"x" row 0, column 2 is 3e+39, which overflows float32 (largest magnitude 3.4e38)');
    expect(() => gaussian.encode(Float32Array.from([0, -Infinity, 1]))).toThrow('"x" row 0, column 1 is -Infinity');
    expect(() => vae.elbo(Float64Array.from([0, 3e38, 1]))).toThrow('"x": row 0, column 1 is 3e+38, outside [0, 1] as the Bernoulli likelihood requires');
    expect(() => vae.decode(Float64Array.from([0, NaN]))).toThrow('"z" row 0, column 1 is NaN');
  });
});

describe('VAE.logLikelihoodAsync', () => {
  const vae = new VAE({
    inputDim: 6,
    latentDim: 2,
    encoder: { hidden: [5] },
    decoder: { hidden: [5] },
    posterior: { flow: 'planar', layers: 2 },
    seed: 2,
    backend: 'reference',
  });
  const x = tinyData(12, 6, 4);

  it('gives the numbers of logLikelihood, reports progress and yields to the event loop', async () => {
    const sync = vae.logLikelihood(x, { samples: 30, batch: 7, seed: 5 });
    const progress: number[] = [];
    // Runs only if the job yields to the event loop before it resolves.
    let ranMeanwhile = false;
    setImmediate(() => (ranMeanwhile = true));
    const result = await vae.logLikelihoodAsync(x, { samples: 30, batch: 7, seed: 5, onProgress: (done, total) => progress.push(done / total) });
    expect(result.stopped).toBe('completed');
    expect(Array.from(result.perExample)).toEqual(Array.from(sync.perExample));
    expect(result.mean).toBe(sync.mean);
    expect(progress[progress.length - 1]).toBe(1);
    expect(ranMeanwhile).toBe(true);
  });

  it('stops after the current example when aborted, with the examples done', async () => {
    const sync = vae.logLikelihood(x, { samples: 30, seed: 5 });
    const controller = new AbortController();
    controller.abort();
    const none = await vae.logLikelihoodAsync(x, { samples: 30, seed: 5, signal: controller.signal });
    expect(none).toMatchObject({ stopped: 'aborted', perExample: new Float64Array(0) });
    const late = new AbortController();
    const partial = vae.logLikelihoodAsync(x, { samples: 30, seed: 5, signal: late.signal, onProgress: () => late.abort() });
    const r = await partial;
    expect(r.stopped === 'aborted' || r.perExample.length === 12).toBe(true);
    expect(Array.from(r.perExample)).toEqual(Array.from(sync.perExample.subarray(0, r.perExample.length)));
  });
});

describe('posterior-collapse diagnostics', () => {
  const x = tinyData(40, 6, 9);
  it('active units count the dimensions whose posterior mean varies over the data (Cov_x E_q[z_d] > 0.01)', () => {
    const vae = new VAE({ inputDim: 6, latentDim: 4, encoder: { hidden: [5] }, decoder: { hidden: [5] }, seed: 3, backend: 'reference' });
    // Dimensions 2 and 3 collapse: their mean head is constant.
    const [weight, bias] = vae.muHead.parameters();
    for (let i = 2 * 5; i < 4 * 5; i++) weight.value[i] = 0;
    bias.value[2] = 0.3;
    for (let i = 0; i < 2 * 5; i++) weight.value[i] *= 20;
    const mu = vae.encode(x);
    const want = [0, 1, 2, 3].map((d) => {
      const col = Array.from({ length: 40 }, (_, r) => mu[r * 4 + d]);
      const mean = col.reduce((a, b) => a + b, 0) / 40;
      return col.reduce((a, b) => a + (b - mean) ** 2, 0) / 40;
    });
    const units = vae.activeUnits(x);
    expectClose(units.variance, want, { atol: 1e-15, rtol: 1e-12 }, 'variance');
    expect(want[0]).toBeGreaterThan(0.01);
    expect(want[1]).toBeGreaterThan(0.01);
    expect(units.count).toBe(2);
  });

  it('the KL per dimension of a diagonal posterior adds up to its closed-form KL; other posteriors have none', () => {
    const vae = new VAE({ inputDim: 6, latentDim: 3, encoder: { hidden: [5] }, decoder: { hidden: [5] }, seed: 4, backend: 'reference' });
    const perDim = vae.klPerDimension(x)!;
    expect(perDim).toHaveLength(3);
    expect(perDim.reduce((a, b) => a + b, 0)).toBeCloseTo(vae.elbo(x, { samples: 1 }).kl, 12);
    const flow = new VAE({
      inputDim: 6,
      latentDim: 3,
      encoder: { hidden: [5] },
      decoder: { hidden: [5] },
      posterior: { flow: 'planar', layers: 2 },
      seed: 4,
      backend: 'reference',
    });
    expect(flow.klPerDimension(x)).toBeNull();
    const units = flow.activeUnits(x, { samples: 0 });
    expect(units.variance.every((v) => Number.isFinite(v) && v >= 0)).toBe(true);
  });

  it('fit reports both per epoch on the validation set', async () => {
    const vae = new VAE({ inputDim: 6, latentDim: 3, encoder: { hidden: [5] }, decoder: { hidden: [5] }, seed: 4, backend: 'reference' });
    const result = await vae.fit(x, { epochs: 2, batchSize: 10, validation: 0.25 });
    for (const h of result.history) {
      expect(h.activeUnits).toBeGreaterThanOrEqual(0);
      expect(h.activeUnits).toBeLessThanOrEqual(3);
      expect(h.klPerDimension).toHaveLength(3);
    }
  });
});

// Folded from the former test/cuda.test.ts. Skipped, with the reason, where no CUDA device is present.
describeBackends(['cuda'], 'cuda vs reference', (_cuda: Backend) => {
  const f32 = (a: ArrayLike<number>): Float32Array => Float32Array.from(a);
  const f64 = (a: ArrayLike<number>): Float64Array => Float64Array.from(a);
  describe('VAE training follows the reference from the same seed', () => {
    const posteriors: VAEOptions['posterior'][] = [
      'diagonal',
      { flow: 'planar', layers: 2, amortized: true },
      { flow: 'planar', layers: 2, amortized: false },
      { flow: 'radial', layers: 2, amortized: true },
      { flow: 'radial', layers: 2, amortized: false },
    ];
    for (const posterior of posteriors) {
      it(`posterior ${JSON.stringify(posterior)}`, async () => {
        const make = (backend: 'cuda' | 'reference') =>
          new VAE({ inputDim: 20, latentDim: 4, encoder: { hidden: [16] }, decoder: { hidden: [16] }, posterior, seed: 2, backend });
        const x = f32(randomArray(40 * 20, 9, 0, 1).map((v) => (v > 0.5 ? 1 : 0)));
        const ref = make('reference');
        const gpu = make('cuda');
        const refFit = await ref.fit(f64(x), { epochs: 2, batchSize: 10, lr: 1e-3, seed: 4 });
        const gpuFit = await gpu.fit(x, { epochs: 2, batchSize: 10, lr: 1e-3, seed: 4 });
        // test/vae.test.ts: 8 Adam steps from identical weights and noise (the rng streams are
        // identical): weights agree to ~1e-5, per-epoch ELBOs (~14 nats) to ~1e-3.
        for (let e = 0; e < 2; e++) expect(Math.abs(gpuFit.history[e].train.elbo - refFit.history[e].train.elbo)).toBeLessThan(2e-3);
        const rp = ref.parameters();
        gpu.parameters().forEach((p, i) => expectClose(p.value, rp[i].value, { atol: 2e-5, rtol: 1e-4 }, p.name));
      });
    }
  });
});
