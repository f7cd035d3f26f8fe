/**
 * The VAE as parts: every posterior × prior × likelihood combination (and the
 * IWAE objective) against finite differences and brute-force definitions,
 * cpu against reference, own networks, invalid compositions, and checkpoints
 * of earlier versions.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Backend } from '../src/backend/backend';
import { backendByName } from '../src/backend';
import type { FloatArray } from '../src/backend/types';
import type { Network } from '../src/nn/network';
import { createParameter, type Parameter } from '../src/nn/parameter';
import { VAE, type VAEOptions } from '../src/vae/vae';
import { expectClose, hasCpu, randomArray, seededRandom } from './helpers';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flowvae-parts-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const reference = backendByName('reference');

/** Likelihoods over 6 columns, with data that fit each. */
const LIKELIHOODS: { name: string; option: VAEOptions['likelihood']; data: (rows: number, seed: number) => Float64Array }[] = [
  { name: 'bernoulli', option: 'bernoulli', data: (n, s) => randomArray(n * 6, s, 0, 1).map((v) => (v > 0.5 ? 1 : 0)) },
  { name: 'gaussian', option: 'gaussian', data: (n, s) => randomArray(n * 6, s, -1, 1) },
  { name: 'categorical', option: 'categorical', data: (n, s) => oneHotRows(n, 6, s) },
  {
    name: 'mixed',
    // A one-hot type of 3, a class index of 4 values, a binary flag, a real value.
    option: [
      { kind: 'categorical', columns: 3 },
      { kind: 'categorical', classes: 4 },
      { kind: 'bernoulli', columns: 1 },
      { kind: 'gaussian', columns: 1 },
    ],
    data: (n, s) => mixedRows(n, s),
  },
];
const POSTERIORS: { name: string; option: VAEOptions['posterior'] }[] = [
  { name: 'diagonal', option: 'diagonal' },
  { name: 'full-covariance', option: 'full-covariance' },
  { name: 'planar', option: { flow: 'planar', layers: 2 } },
  { name: 'iaf', option: { flow: 'iaf', layers: 2, hidden: [4] } },
];
const PRIORS: { name: string; option: VAEOptions['prior'] }[] = [
  { name: 'standard-normal', option: 'standard-normal' },
  { name: 'learned-gaussian', option: 'learned-gaussian' },
  { name: 'mixture', option: { kind: 'mixture', components: 3 } },
  { name: 'flow (maf)', option: { kind: 'flow', flow: 'maf', layers: 2, hidden: [4] } },
];

function oneHotRows(n: number, width: number, seed: number): Float64Array {
  const rand = seededRandom(seed);
  const x = new Float64Array(n * width);
  for (let r = 0; r < n; r++) x[r * width + Math.floor(rand() * width)] = 1;
  return x;
}

function mixedRows(n: number, seed: number): Float64Array {
  const rand = seededRandom(seed);
  const x = new Float64Array(n * 6);
  for (let r = 0; r < n; r++) {
    x[r * 6 + Math.floor(rand() * 3)] = 1;
    x[r * 6 + 3] = Math.floor(rand() * 4);
    x[r * 6 + 4] = rand() > 0.5 ? 1 : 0;
    x[r * 6 + 5] = 2 * rand() - 1;
  }
  return x;
}

function tinyModel(posterior: VAEOptions['posterior'], prior: VAEOptions['prior'], likelihood: VAEOptions['likelihood'], extra: Partial<VAEOptions> = {}): VAE {
  return new VAE({
    inputDim: 6,
    latentDim: 2,
    encoder: { hidden: [5], activation: 'tanh' },
    decoder: { hidden: [4], activation: 'softplus' },
    posterior,
    prior,
    likelihood,
    seed: 5,
    backend: 'reference',
    ...extra,
  });
}

/** The loss a step minimizes at fixed noise: −ELBO (β-weighted) or −IWAE bound. */
function lossAt(vae: VAE, x: Float64Array, beta: number): number {
  const t = vae.computeGradients(x, { beta, noiseOffset: 0 });
  return -(t.objective ?? t.reconstruction - beta * t.kl);
}

/**
 * Central differences for `count` coordinates of every parameter (all when
 * fewer), chosen by a fixed stride so every part's tensors are probed.
 */
function checkGradients(vae: VAE, x: Float64Array, beta: number, count = 6): void {
  vae.computeGradients(x, { beta, noiseOffset: 0 });
  const params = vae.parameters();
  const analytic = params.map((p) => Float64Array.from(p.grad));
  params.forEach((p, k) => {
    const n = p.value.length;
    const picks = n <= count ? [...Array(n).keys()] : Array.from({ length: count }, (_, i) => Math.floor((i * n) / count));
    const got = new Float64Array(picks.length);
    const want = new Float64Array(picks.length);
    picks.forEach((i, j) => {
      const saved = p.value[i];
      p.value[i] = saved + 1e-6;
      const up = lossAt(vae, x, beta);
      p.value[i] = saved - 1e-6;
      const down = lossAt(vae, x, beta);
      p.value[i] = saved;
      want[j] = (up - down) / 2e-6;
      got[j] = analytic[k][i];
    });
    // Smooth float64 losses of O(10): h = 1e-6 leaves ~1e-9 truncation and ~1e-10 rounding.
    expectClose(got, want, { atol: 1e-5, rtol: 1e-4 }, p.name);
  });
}

describe('VAE parts: whole-model gradients vs central finite differences (reference, float64)', () => {
  for (const lik of LIKELIHOODS) {
    for (const post of POSTERIORS) {
      for (const prior of PRIORS) {
        it(`${post.name} posterior × ${prior.name} prior × ${lik.name} likelihood`, () => {
          const vae = tinyModel(post.option, prior.option, lik.option);
          checkGradients(vae, lik.data(3, 7), 0.7);
        });
      }
    }
  }
  for (const post of POSTERIORS) {
    it(`IWAE (K = 3) with a ${post.name} posterior, mixture prior, mixed likelihood`, () => {
      const vae = tinyModel(post.option, { kind: 'mixture', components: 2 }, LIKELIHOODS[3].option, { objective: { kind: 'iwae', samples: 3 } });
      checkGradients(vae, mixedRows(3, 8), 0.6);
    });
  }
  it('a residual flow prior (spectrally normalized, exact log-det)', () => {
    const vae = tinyModel('diagonal', { kind: 'flow', flow: 'residual', layers: 2, hidden: [4] }, 'bernoulli');
    checkGradients(vae, LIKELIHOODS[0].data(3, 2), 1);
  });

  it('a realnvp flow prior and a learned-variance Gaussian group', () => {
    const vae = tinyModel({ flow: 'radial', layers: 2 }, { kind: 'flow', flow: 'realnvp', layers: 2, hidden: [4] }, [
      { kind: 'gaussian', columns: 4, logVar: 'learned' },
      { kind: 'gaussian', columns: 2, logVar: -0.5 },
    ]);
    checkGradients(vae, randomArray(12, 3, -1, 1), 1);
  });
});

// -----------------------------------------------------------------------------
// Brute force: the ELBO and the IWAE bound by their definitions, from the named
// parameters, in plain float64 code that shares nothing with the library.

type Vec = number[];
const LOG_2PI = Math.log(2 * Math.PI);
const linear = (w: FloatArray, b: FloatArray, input: Vec, outDim: number): Vec =>
  Array.from({ length: outDim }, (_, o) => input.reduce((s, v, i) => s + w[o * input.length + i] * v, b[o]));
const softplus = (v: number) => Math.log1p(Math.exp(v));
const logNormal = (z: Vec, mean: Vec, logVar: Vec) => z.reduce((s, v, j) => s - 0.5 * (LOG_2PI + logVar[j] + (v - mean[j]) ** 2 / Math.exp(logVar[j])), 0);
const lse = (a: Vec) => {
  const m = Math.max(...a);
  return m + Math.log(a.reduce((s, v) => s + Math.exp(v - m), 0));
};

/** Per draw: log p(x | z), log p(z), log q(z | x), closed-form KL to N(0, I) (diagonal posterior, one-hidden-layer MLPs). */
function bruteForceTerms(vae: VAE, x: Vec, eps: Vec): { logpx: number; logpz: number; logq: number; kl: number } {
  const p = new Map(vae.parameters().map((q) => [q.name, q.value]));
  const L = vae.latentDim;
  const h = linear(p.get('encoder.net.0.weight')!, p.get('encoder.net.0.bias')!, x, 5).map(Math.tanh);
  const mu = linear(p.get('encoder.mu.weight')!, p.get('encoder.mu.bias')!, h, L);
  const lv = linear(p.get('encoder.logvar.weight')!, p.get('encoder.logvar.bias')!, h, L);
  const z = mu.map((m, j) => m + Math.exp(lv[j] / 2) * eps[j]);
  const hd = linear(p.get('decoder.net.0.weight')!, p.get('decoder.net.0.bias')!, z, 4).map(softplus);
  const out = linear(p.get('decoder.net.2.weight')!, p.get('decoder.net.2.bias')!, hd, vae.likelihood.paramDim);
  // The groups of the mixed likelihood: one-hot 3, class index of 4, Bernoulli 1, Gaussian 1 (learned log-variance).
  const softmaxAt = (logits: Vec, c: number) => Math.exp(logits[c]) / logits.reduce((s, v) => s + Math.exp(v), 0);
  let logpx = Math.log(softmaxAt(out.slice(0, 3), x.slice(0, 3).indexOf(1)));
  logpx += Math.log(softmaxAt(out.slice(3, 7), x[3]));
  const prob = 1 / (1 + Math.exp(-out[7]));
  logpx += x[4] === 1 ? Math.log(prob) : Math.log(1 - prob);
  const gv = p.get('likelihood.3.logvar')![0];
  logpx += logNormal([x[5]], [out[8]], [gv]);
  // Mixture prior by its definition.
  const logits = Array.from(p.get('prior.logits')!);
  const means = p.get('prior.means')!;
  const logVars = p.get('prior.logvars')!;
  const logPi = logits.map((l) => l - lse(logits));
  const logpz = lse(logPi.map((lp, k) => lp + logNormal(z, Array.from(means.subarray(k * L, (k + 1) * L)), Array.from(logVars.subarray(k * L, (k + 1) * L)))));
  const logq = logNormal(z, mu, lv);
  const kl = mu.reduce((s, m, j) => s + 0.5 * (m * m + Math.exp(lv[j]) - 1 - lv[j]), 0);
  return { logpx, logpz, logq, kl };
}

describe('VAE parts: definitions', () => {
  const mixed = LIKELIHOODS[3].option;
  const x = mixedRows(4, 21);
  const rows = (i: number) => Array.from(x.subarray(i * 6, (i + 1) * 6));

  it('the ELBO with a mixed likelihood and a mixture prior equals a brute-force computation', () => {
    const vae = tinyModel('diagonal', { kind: 'mixture', components: 3 }, mixed);
    // Move the learned parts off their initial values so every term matters.
    for (const p of vae.parameters())
      if (p.name.startsWith('prior.') || p.name.startsWith('likelihood.')) p.value.forEach((_, i) => (p.value[i] += 0.1 * Math.sin(3 * i + 1)));
    const terms = vae.computeGradients(x, { noiseOffset: 0 });
    const eps = new Float64Array(4 * 2);
    reference.rng.normal(5 * 1000 + 7, 0, eps);
    let elbo = 0;
    let rec = 0;
    for (let i = 0; i < 4; i++) {
      const t = bruteForceTerms(vae, rows(i), Array.from(eps.subarray(i * 2, i * 2 + 2)));
      elbo += (t.logpx + t.logpz - t.logq) / 4;
      rec += t.logpx / 4;
    }
    // Same float64 arithmetic in a different order: agreement to ~1e-13.
    expect(terms.elbo).toBeCloseTo(elbo, 10);
    expect(terms.reconstruction).toBeCloseTo(rec, 10);
  });

  it.each(LIKELIHOODS.slice(0, 3))('the $name likelihood equals its definition', ({ option, data }) => {
    const vae = tinyModel('diagonal', 'standard-normal', option);
    const xs = data(3, 4);
    const terms = vae.computeGradients(xs, { noiseOffset: 0 });
    const eps = new Float64Array(3 * 2);
    reference.rng.normal(5 * 1000 + 7, 0, eps);
    const p = new Map(vae.parameters().map((q) => [q.name, q.value]));
    let rec = 0;
    for (let i = 0; i < 3; i++) {
      const xr = Array.from(xs.subarray(i * 6, (i + 1) * 6));
      const h = linear(p.get('encoder.net.0.weight')!, p.get('encoder.net.0.bias')!, xr, 5).map(Math.tanh);
      const mu = linear(p.get('encoder.mu.weight')!, p.get('encoder.mu.bias')!, h, 2);
      const lv = linear(p.get('encoder.logvar.weight')!, p.get('encoder.logvar.bias')!, h, 2);
      const z = mu.map((m, j) => m + Math.exp(lv[j] / 2) * eps[i * 2 + j]);
      const hd = linear(p.get('decoder.net.0.weight')!, p.get('decoder.net.0.bias')!, z, 4).map(softplus);
      const out = linear(p.get('decoder.net.2.weight')!, p.get('decoder.net.2.bias')!, hd, 6);
      if (option === 'bernoulli')
        rec += out.reduce((s, l, j) => s + (xr[j] === 1 ? Math.log(1 / (1 + Math.exp(-l))) : Math.log(1 - 1 / (1 + Math.exp(-l)))), 0);
      else if (option === 'gaussian') rec += logNormal(xr, out, Array.from(p.get('decoder.logvar')!));
      else rec += out[xr.indexOf(1)] - lse(out);
    }
    expect(terms.reconstruction).toBeCloseTo(rec / 3, 10);
  });

  it('the IWAE bound (K = 3) equals log mean exp of the brute-force weights', () => {
    const vae = tinyModel('diagonal', { kind: 'mixture', components: 3 }, mixed, { objective: { kind: 'iwae', samples: 3 } });
    const terms = vae.computeGradients(x, { noiseOffset: 0 });
    const eps = new Float64Array(4 * 3 * 2);
    reference.rng.normal(5 * 1000 + 7, 0, eps);
    let bound = 0;
    for (let i = 0; i < 4; i++) {
      const logw = [0, 1, 2].map((k) => {
        const t = bruteForceTerms(vae, rows(i), Array.from(eps.subarray((i * 3 + k) * 2, (i * 3 + k) * 2 + 2)));
        return t.logpx + t.logpz - t.logq;
      });
      bound += (lse(logw) - Math.log(3)) / 4;
    }
    expect(terms.objective!).toBeCloseTo(bound, 10);
    // The bound is at least the ELBO of the same draws (Jensen).
    expect(terms.objective!).toBeGreaterThanOrEqual(terms.elbo);
  });

  it('IWAE with K = 1 is the ELBO exactly: the same terms and the same gradients', () => {
    const x6 = mixedRows(5, 2);
    for (const post of POSTERIORS) {
      const elbo = tinyModel(post.option, 'standard-normal', mixed, { kl: 'sampled' });
      const iwae = tinyModel(post.option, 'standard-normal', mixed, { objective: { kind: 'iwae', samples: 1 } });
      const a = elbo.computeGradients(x6, { beta: 0.8, noiseOffset: 0 });
      const b = iwae.computeGradients(x6, { beta: 0.8, noiseOffset: 0 });
      expect(b.elbo).toBe(a.elbo);
      // The bound sums log p(x|z) − β·KL per row, the ELBO each term over rows: the same to rounding.
      expect(b.objective).toBeCloseTo(a.reconstruction - 0.8 * a.kl, 12);
      const pa = elbo.parameters();
      iwae.parameters().forEach((p, i) => expect(Array.from(p.grad), `${post.name}: ${p.name}`).toEqual(Array.from(pa[i].grad)));
    }
  });
});

describe.skipIf(!hasCpu())('VAE parts: cpu and reference take the same training steps, every combination', () => {
  for (const lik of LIKELIHOODS) {
    for (const post of POSTERIORS) {
      for (const prior of PRIORS) {
        it(`${post.name} posterior × ${prior.name} prior × ${lik.name} likelihood`, async () => {
          const make = (backend: 'cpu' | 'reference') =>
            new VAE({
              inputDim: 6,
              latentDim: 3,
              encoder: { hidden: [8] },
              decoder: { hidden: [8] },
              posterior: post.option,
              prior: prior.option,
              likelihood: lik.option,
              seed: 3,
              backend,
            });
          const x = lik.data(24, 5);
          const ref = make('reference');
          const cpu = make('cpu');
          await ref.fit(x, { epochs: 1, batchSize: 8, lr: 1e-3, seed: 2 });
          await cpu.fit(Float32Array.from(x), { epochs: 1, batchSize: 8, lr: 1e-3, seed: 2 });
          // 3 Adam steps of lr 1e-3 from the same weights and noise: float32 rounding
          // (~1e-6 relative) moves weights by far less than lr; they agree to ~1e-5.
          const rp = ref.parameters();
          cpu.parameters().forEach((p, i) => expectClose(p.value, rp[i].value, { atol: 2e-5, rtol: 1e-4 }, p.name));
        });
      }
    }
  }
});

describe.skipIf(!hasCpu())('VAE parts: cpu and reference train identically from the same seed', () => {
  const cases: [string, Partial<VAEOptions>, (n: number, s: number) => Float64Array][] = [
    [
      'planar posterior, mixture prior, mixed likelihood',
      { posterior: { flow: 'planar', layers: 2 }, prior: { kind: 'mixture', components: 3 }, likelihood: LIKELIHOODS[3].option },
      mixedRows,
    ],
    [
      'full covariance, maf prior, categorical',
      { posterior: 'full-covariance', prior: { kind: 'flow', flow: 'maf', layers: 2, hidden: [8] }, likelihood: 'categorical' },
      (n, s) => oneHotRows(n, 6, s),
    ],
    ['diagonal, learned Gaussian prior, IWAE K = 4', { prior: 'learned-gaussian', objective: { kind: 'iwae', samples: 4 } }, LIKELIHOODS[0].data],
    [
      'iaf, realnvp prior, Gaussian',
      { posterior: { flow: 'iaf', layers: 2, hidden: [8] }, prior: { kind: 'flow', flow: 'realnvp', layers: 2, hidden: [8] }, likelihood: 'gaussian' },
      LIKELIHOODS[1].data,
    ],
  ];
  it.each(cases)('%s', async (_name, options, data) => {
    const make = (backend: 'cpu' | 'reference') =>
      new VAE({ inputDim: 6, latentDim: 3, encoder: { hidden: [12] }, decoder: { hidden: [12] }, ...options, seed: 2, backend });
    const x = data(40, 9);
    const ref = make('reference');
    const cpu = make('cpu');
    const refFit = await ref.fit(x, { epochs: 2, batchSize: 10, lr: 1e-3, seed: 4 });
    const cpuFit = await cpu.fit(Float32Array.from(x), { epochs: 2, batchSize: 10, lr: 1e-3, seed: 4 });
    // 8 Adam steps of lr 1e-3 from the same weights and noise: float32 rounding (~1e-6 relative)
    // moves weights far less than lr, so they agree to ~1e-5 and epoch ELBOs (~5–10 nats) to ~1e-3.
    for (let e = 0; e < 2; e++) expect(Math.abs(cpuFit.history[e].train.elbo - refFit.history[e].train.elbo)).toBeLessThan(2e-3);
    const rp = ref.parameters();
    cpu.parameters().forEach((p, i) => expectClose(p.value, rp[i].value, { atol: 2e-5, rtol: 1e-4 }, p.name));
  });
});

// -----------------------------------------------------------------------------
// An own network: a one-hidden-layer tanh MLP written with plain loops.

class LoopNetwork implements Network {
  readonly layers: { weight: Parameter; bias: Parameter }[];
  private x: FloatArray | null = null;
  private hidden: Float64Array = new Float64Array(0);
  private out: Float64Array = new Float64Array(0);
  private gradIn: Float64Array = new Float64Array(0);
  private batch = 0;
  constructor(
    readonly backend: Backend,
    readonly inDim: number,
    readonly width: number,
    readonly outDim: number,
    readonly tanhOutput: boolean,
  ) {
    this.layers = [
      { weight: createParameter(backend, '0.weight', [width, inDim]), bias: createParameter(backend, '0.bias', [width]) },
      { weight: createParameter(backend, '2.weight', [outDim, width]), bias: createParameter(backend, '2.bias', [outDim]) },
    ];
  }
  parameters(): Parameter[] {
    return this.layers.flatMap((l) => [l.weight, l.bias]);
  }
  forward(x: FloatArray, batch: number): FloatArray {
    const [a, b] = this.layers;
    this.x = x;
    this.batch = batch;
    this.hidden = new Float64Array(batch * this.width);
    this.out = new Float64Array(batch * this.outDim);
    for (let r = 0; r < batch; r++) {
      for (let o = 0; o < this.width; o++) {
        let s = a.bias.value[o];
        for (let i = 0; i < this.inDim; i++) s += a.weight.value[o * this.inDim + i] * x[r * this.inDim + i];
        this.hidden[r * this.width + o] = Math.tanh(s);
      }
      for (let o = 0; o < this.outDim; o++) {
        let s = b.bias.value[o];
        for (let i = 0; i < this.width; i++) s += b.weight.value[o * this.width + i] * this.hidden[r * this.width + i];
        this.out[r * this.outDim + o] = this.tanhOutput ? Math.tanh(s) : s;
      }
    }
    return this.out;
  }
  backward(gradOut: FloatArray, needInputGrad: boolean): FloatArray | null {
    const [a, b] = this.layers;
    const { batch, width, inDim, outDim } = this;
    const dHidden = new Float64Array(batch * width);
    this.gradIn = new Float64Array(batch * inDim);
    for (let r = 0; r < batch; r++) {
      for (let o = 0; o < outDim; o++) {
        const y = this.out[r * outDim + o];
        const g = this.tanhOutput ? gradOut[r * outDim + o] * (1 - y * y) : gradOut[r * outDim + o];
        b.bias.grad[o] += g;
        for (let i = 0; i < width; i++) {
          b.weight.grad[o * width + i] += g * this.hidden[r * width + i];
          dHidden[r * width + i] += g * b.weight.value[o * width + i];
        }
      }
      for (let o = 0; o < width; o++) {
        const hv = this.hidden[r * width + o];
        const g = dHidden[r * width + o] * (1 - hv * hv);
        a.bias.grad[o] += g;
        for (let i = 0; i < inDim; i++) {
          a.weight.grad[o * inDim + i] += g * this.x![r * inDim + i];
          this.gradIn[r * inDim + i] += g * a.weight.value[o * inDim + i];
        }
      }
    }
    return needInputGrad ? this.gradIn : null;
  }
}

describe('VAE parts: own networks', () => {
  const x = LIKELIHOODS[0].data(30, 12);
  const options = { inputDim: 6, latentDim: 2, posterior: { flow: 'planar', layers: 2 }, seed: 8, backend: 'reference' } as const;

  /** A VAE with built-in tanh MLPs and one with the loop networks, holding the same weights. */
  function twins(): { builtIn: VAE; own: VAE } {
    const builtIn = new VAE({ ...options, encoder: { hidden: [5, 5], activation: 'tanh' }, decoder: { hidden: [4], activation: 'tanh' } });
    const own = new VAE({ ...options, encoder: new LoopNetwork(reference, 6, 5, 5, true), decoder: new LoopNetwork(reference, 2, 4, 6, false) });
    const theirs = new Map(own.parameters().map((p) => [p.name, p]));
    for (const p of builtIn.parameters()) theirs.get(p.name)!.value.set(p.value);
    return { builtIn, own };
  }

  it('an own network trains inside a VAE and matches the same network built in', async () => {
    const { builtIn, own } = twins();
    const a = await builtIn.fit(x, { epochs: 3, batchSize: 10, lr: 1e-2, seed: 1 });
    const b = await own.fit(x, { epochs: 3, batchSize: 10, lr: 1e-2, seed: 1 });
    // Same float64 math summed in another order: ~1e-15 per step, far inside 1e-9 after 9 steps.
    expect(b.history.map((h) => h.train.elbo)).toEqual(a.history.map((h) => expect.closeTo(h.train.elbo, 9)));
    const mine = own.parameters();
    builtIn.parameters().forEach((p, i) => expectClose(mine[i].value, p.value, { atol: 1e-9, rtol: 1e-9 }, p.name));
  });

  it('a model with own networks saves, and loads when they are passed again; without them the error names the part', () => {
    const { own } = twins();
    const dir = path.join(tmp, 'own');
    own.save(dir);
    expect(own.config.encoder).toEqual({ custom: 'LoopNetwork' });
    expect(() => VAE.load(dir, { backend: 'reference' })).toThrow(/encoder is a custom part \(LoopNetwork\); pass the object as parts\.encoder/);
    const loaded = VAE.load(dir, {
      backend: 'reference',
      parts: { encoder: new LoopNetwork(reference, 6, 5, 5, true), decoder: new LoopNetwork(reference, 2, 4, 6, false) },
    });
    expect(loaded.elbo(x, { seed: 2 })).toEqual(own.elbo(x, { seed: 2 }));
    // A network of other widths does not fit the file: the message names the part.
    expect(() =>
      VAE.load(dir, {
        backend: 'reference',
        parts: { encoder: new LoopNetwork(reference, 6, 7, 5, true), decoder: new LoopNetwork(reference, 2, 4, 6, false) },
      }),
    ).toThrow(/tensor "encoder\.net\.0\.weight" has shape \[5, 6\] but the model needs \[7, 6\] \(the encoder network\)/);
  });

  it('a network of the wrong width is refused with its name', () => {
    expect(() => new VAE({ ...options, encoder: new LoopNetwork(reference, 5, 5, 5, true) })).toThrow('Expected "encoder.inDim" to be 6 but received 5');
    expect(() => new VAE({ ...options, decoder: new LoopNetwork(reference, 2, 4, 7, false) })).toThrow('Expected "decoder.outDim" to be 6 but received 7');
  });
});

describe('VAE parts: invalid compositions are refused with a clear message', () => {
  const base = { inputDim: 6, latentDim: 2, backend: 'reference' as const };
  it.each([
    [
      { ...base, prior: { kind: 'flow', flow: 'maf' }, kl: 'closed-form' },
      'Expected "sampled" for "kl" but received "closed-form" (string): the KL to a flow prior has no closed form',
    ],
    [{ ...base, objective: { kind: 'iwae', samples: 2 }, kl: 'closed-form' }, 'the IWAE objective weighs log q(z | x) of each draw'],
    [
      {
        ...base,
        likelihood: [
          { kind: 'categorical', columns: 3 },
          { kind: 'bernoulli', columns: 2 },
        ],
      },
      "The likelihood's groups cover 5 columns (3 + 2) but inputDim is 6",
    ],
    [
      {
        ...base,
        likelihood: [
          { kind: 'categorical', columns: 3, classes: 3 },
          { kind: 'bernoulli', columns: 3 },
        ],
      },
      '"likelihood[0]" needs exactly one of "columns" (one-hot columns) and "classes"',
    ],
    [{ ...base, likelihood: [{ kind: 'bernoulli', columns: 6, logVar: 0 }] }, '"likelihood[0].logVar" applies to Gaussian groups only'],
    [{ ...base, prior: 'flow' }, 'A flow prior needs its family'],
    [{ ...base, prior: { kind: 'flow', flow: 'nope' } }, 'for "prior.flow" but received "nope"'],
    [{ ...base, prior: { kind: 'mixture', components: 0 } }, 'Expected positive integer for "prior.components" but received 0'],
    [{ ...base, prior: { kind: 'gamma' } }, 'for "prior.kind" but received "gamma"'],
    [{ ...base, objective: { kind: 'iwae', samples: 1.5 } }, 'Expected positive integer for "objective.samples" but received 1.5'],
    [{ ...base, likelihood: 'categorical', likelihoodLogVar: -1 }, '"likelihoodLogVar" applies to a Gaussian likelihood, not categorical'],
  ])('%j', (options, message) => {
    expect(() => new VAE(options as never)).toThrow(message);
  });

  it('data that a categorical group cannot score are refused, naming the group, row and column', async () => {
    const vae = tinyModel('diagonal', 'standard-normal', LIKELIHOODS[3].option);
    const x = mixedRows(4, 3);
    x[2 * 6 + 1] = 1; // row 2 now has two ones in the one-hot group
    await expect(vae.fit(x, { epochs: 1 })).rejects.toThrow(
      '"data" (likelihood group 0, categorical, columns 0…2): row 2 has 2 ones; a one-hot group has exactly one',
    );
    const y = mixedRows(4, 3);
    y[1 * 6 + 3] = 4; // class index out of 0…3
    await expect(vae.fit(y, { epochs: 1 })).rejects.toThrow('row 1, column 3 is 4, not a class index in 0…3');
    const z = mixedRows(4, 3);
    z[0] = 0.5;
    expect(() => vae.elbo(z)).toThrow('row 0, column 0 is 0.5; a one-hot group holds only 0 and 1');
  });

  it('fit reports the IWAE bound of each epoch beside the ELBO, and the bound is the higher', async () => {
    const vae = tinyModel('diagonal', 'standard-normal', 'bernoulli', { objective: { kind: 'iwae', samples: 4 } });
    const fit = await vae.fit(LIKELIHOODS[0].data(20, 1), { epochs: 2, batchSize: 10 });
    for (const m of fit.history) expect(m.train.objective!).toBeGreaterThanOrEqual(m.train.elbo);
  });

  it('free bits apply to the ELBO, not to IWAE', async () => {
    const vae = tinyModel('diagonal', 'standard-normal', 'bernoulli', { objective: 'iwae' });
    await expect(vae.fit(LIKELIHOODS[0].data(10, 1), { epochs: 1, freeBits: 0.1 })).rejects.toThrow('"freeBits" applies to the ELBO objective, not to IWAE');
  });
});

describe('VAE parts: checkpoints', () => {
  const fixtures = path.join(__dirname, 'fixtures', 'vae-v1');
  const expected = JSON.parse(fs.readFileSync(path.join(fixtures, 'expected.json'), 'utf8')) as {
    inputDim: number;
    rows: number;
    elbos: Record<string, { elbo: number; reconstruction: number; kl: number; logLikelihood: number }>;
  };
  const data = new Float64Array(expected.rows * expected.inputDim);
  for (let i = 0; i < data.length; i++) data[i] = ((i * 7919) % 13) / 12;

  it.each(Object.keys(expected.elbos))('a version-1 checkpoint (%s) loads and gives the ELBO it gave when written', (name) => {
    const vae = VAE.load(path.join(fixtures, name), { backend: 'reference' });
    const want = expected.elbos[name];
    const got = vae.elbo(data, { samples: 4, seed: 9 });
    // The same float64 operations as the version that wrote it: equal to rounding (1e-12 relative).
    expect(got.elbo).toBeCloseTo(want.elbo, 11);
    expect(got.kl).toBeCloseTo(want.kl, 11);
    // log w is now summed as log p(x|z) + log p(z) − log q(z|x): a different rounding order, 1e-12.
    expect(vae.logLikelihood(data.subarray(0, 4 * expected.inputDim), { samples: 50, seed: 2 }).mean).toBeCloseTo(want.logLikelihood, 10);
    // Its training state came along: training continues from it.
    expect(vae.trainingState?.epoch).toBe(2);
  });

  it('a model of every new part saves and loads with the same config, ELBO and samples', () => {
    const vae = tinyModel({ flow: 'planar', layers: 2 }, { kind: 'flow', flow: 'maf', layers: 2, hidden: [4] }, LIKELIHOODS[3].option, {
      objective: { kind: 'iwae', samples: 2 },
    });
    const dir = path.join(tmp, 'parts');
    vae.save(dir);
    const loaded = VAE.load(dir, { backend: 'reference' });
    expect(loaded.config).toEqual(vae.config);
    const x = mixedRows(5, 1);
    expect(loaded.elbo(x, { seed: 3 })).toEqual(vae.elbo(x, { seed: 3 }));
    expect(Array.from(loaded.sample(3, { seed: 1 }))).toEqual(Array.from(vae.sample(3, { seed: 1 })));
  });

  it('a file whose prior does not match its config is refused, naming the part', () => {
    const vae = tinyModel('diagonal', { kind: 'mixture', components: 2 }, 'bernoulli');
    const dir = path.join(tmp, 'mismatch');
    vae.save(dir);
    const file = path.join(dir, 'model.safetensors');
    const bytes = fs.readFileSync(file);
    // Rewrite the config's component count (same length, so offsets stay valid).
    const text = bytes.toString('latin1').replace('\\"components\\":2', '\\"components\\":3');
    fs.writeFileSync(file, Buffer.from(text, 'latin1'));
    expect(() => VAE.load(dir, { backend: 'reference' })).toThrow(/tensor "prior\.logits" has shape \[2\] but the model needs \[3\] \(the prior\)/);
  });
});

describe('VAE parts: sampling and decoding', () => {
  it('decode gives each group its natural values: probabilities, class indices, means', () => {
    const vae = tinyModel('diagonal', { kind: 'mixture', components: 3 }, LIKELIHOODS[3].option);
    const values = vae.sample(50, { seed: 4 });
    for (let r = 0; r < 50; r++) {
      const row = values.subarray(r * 6, (r + 1) * 6);
      expect(row[0] + row[1] + row[2]).toBeCloseTo(1, 12);
      expect(Number.isInteger(row[3]) && row[3] >= 0 && row[3] < 4).toBe(true);
      expect(row[4]).toBeGreaterThan(0);
      expect(row[4]).toBeLessThan(1);
    }
  });

  it('a mixture prior samples its components in proportion to their weights', () => {
    const vae = tinyModel('diagonal', { kind: 'mixture', components: 2 }, 'bernoulli');
    const prior = vae.prior as import('../src/vae/prior').MixturePrior;
    // Far-apart, narrow components with weights 0.2 / 0.8.
    prior.means.value.set([-10, -10, 10, 10]);
    prior.logVars.value.fill(-4);
    prior.logits.value.set([Math.log(0.2), Math.log(0.8)]);
    const n = 4000;
    const eps = new Float64Array(n * 2);
    const u = new Float64Array(n);
    reference.rng.normal(1, 0, eps);
    reference.rng.uniform(1, n * 2, u);
    const z = prior.sample(eps, u, n);
    let right = 0;
    for (let r = 0; r < n; r++) if (z[r * 2] > 0) right++;
    // Binomial(4000, 0.8): sd = sqrt(4000·0.16) ≈ 25 draws; 5 sd = 0.032 in the fraction.
    expect(Math.abs(right / n - 0.8)).toBeLessThan(0.032);
  });

  it('a flow prior samples through its inverse: log p of its samples matches the change of variables', () => {
    const vae = tinyModel('diagonal', { kind: 'flow', flow: 'realnvp', layers: 2, hidden: [4] }, 'bernoulli');
    // Perturb the prior so it is not the identity.
    for (const p of vae.prior.parameters()) p.value.forEach((_, i) => (p.value[i] += 0.2 * Math.cos(i)));
    const eps = new Float64Array(10 * 2);
    reference.rng.normal(3, 0, eps);
    const z = Float64Array.from(vae.prior.sample(eps, new Float64Array(10), 10));
    const logp = new Float64Array(10);
    vae.prior.logProb(z, logp, 10);
    // f⁻¹(z) must give back eps: log p(z) = log N(eps) + log|det ∂f⁻¹/∂z| with u = eps.
    const logBase = new Float64Array(10);
    reference.gaussian.logStandard(eps, logBase, 10, 2);
    const prior = vae.prior as import('../src/vae/prior').FlowPrior;
    const again = prior.flow.forward(z, 10);
    expectClose(again.y, eps, { atol: 1e-10, rtol: 1e-10 }, 'f⁻¹(f(eps))');
    for (let r = 0; r < 10; r++) expect(logp[r]).toBeCloseTo(logBase[r] + again.logDet[r], 10);
  });
});
