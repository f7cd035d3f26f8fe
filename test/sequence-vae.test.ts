/**
 * Sequence VAEs: an LSTM encoder and an autoregressive LSTM decoder with
 * teacher forcing (src/nn/sequence.ts) inside the VAE of parts, with the
 * per-step mixed likelihood of the architecture sequences.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { backendByName } from '../src/backend';
import type { Backend } from '../src/backend/backend';
import { architectureSequences, describeArchitecture, LAYER_TYPES } from '../src/data/sequences';
import type { LikelihoodGroup } from '../src/vae/likelihood';
import { LstmDecoder, LstmEncoder } from '../src/nn/sequence';
import { VAE, type VAEOptions } from '../src/vae/vae';
import { expectClose, hasCpu, seededRandom } from './helpers';

/** A tiny sequence model: `steps` steps of a 3-way one-hot and a value. */
function tinySequenceVae(backend: Backend, extra: Partial<VAEOptions> = {}, steps = 4): VAE {
  const stepGroups: LikelihoodGroup[] = [
    { kind: 'categorical', columns: 3 },
    { kind: 'bernoulli', columns: 1 },
  ];
  return new VAE({
    inputDim: steps * 4,
    latentDim: 2,
    encoder: new LstmEncoder(backend, { steps, features: 4, hidden: 5, seed: 1 }),
    decoder: new LstmDecoder(backend, { latentDim: 2, steps, features: 4, stepGroups, hidden: 5, mlpHidden: [6], seed: 2 }),
    likelihood: Array.from({ length: steps }, () => stepGroups).flat(),
    seed: 3,
    backend,
    ...extra,
  });
}

function tinySequences(n: number, steps: number, seed: number): Float64Array {
  const rand = seededRandom(seed);
  const x = new Float64Array(n * steps * 4);
  for (let r = 0; r < n; r++) {
    for (let t = 0; t < steps; t++) {
      const at = (r * steps + t) * 4;
      x[at + Math.floor(rand() * 3)] = 1;
      x[at + 3] = rand();
    }
  }
  return x;
}

describe('sequence VAE: gradients vs central finite differences (reference, float64)', () => {
  for (const [name, extra] of [
    ['diagonal posterior', {}],
    ['planar posterior, mixture prior', { posterior: { flow: 'planar', layers: 2 }, prior: { kind: 'mixture', components: 2 } }],
    ['IWAE K = 3', { objective: { kind: 'iwae', samples: 3 } }],
  ] as [string, Partial<VAEOptions>][]) {
    it(name, () => {
      const vae = tinySequenceVae(backendByName('reference'), extra);
      const x = tinySequences(3, 4, 5);
      const loss = () => {
        const t = vae.computeGradients(x, { noiseOffset: 0 });
        return -(t.objective ?? t.elbo);
      };
      loss();
      for (const p of vae.parameters()) {
        const analytic = Float64Array.from(p.grad);
        const picks = p.value.length <= 8 ? [...Array(p.value.length).keys()] : Array.from({ length: 8 }, (_, i) => Math.floor((i * p.value.length) / 8));
        const got = picks.map((i) => analytic[i]);
        const want = picks.map((i) => {
          const saved = p.value[i];
          p.value[i] = saved + 1e-6;
          const up = loss();
          p.value[i] = saved - 1e-6;
          const down = loss();
          p.value[i] = saved;
          return (up - down) / 2e-6;
        });
        // Smooth float64 losses of O(10): h = 1e-6 leaves ~1e-9 truncation and ~1e-10 rounding.
        expectClose(Float64Array.from(got), Float64Array.from(want), { atol: 1e-5, rtol: 1e-4 }, p.name);
      }
    });
  }
});

describe('sequence VAE: teacher forcing', () => {
  it('the output of step t reads the data up to step t − 1 only', () => {
    const backend = backendByName('reference');
    const decoder = new LstmDecoder(backend, {
      latentDim: 2,
      steps: 5,
      features: 4,
      stepGroups: [
        { kind: 'categorical', columns: 3 },
        { kind: 'bernoulli', columns: 1 },
      ],
      hidden: 4,
      seed: 1,
    });
    const z = Float64Array.of(0.3, -0.2);
    const x = tinySequences(1, 5, 2);
    const a = Float64Array.from(decoder.forward(z, 1, { target: x }));
    const changed = Float64Array.from(x);
    changed[2 * 4 + 3] += 0.5; // the value of step 2
    const b = decoder.forward(z, 1, { target: changed });
    // Steps 0–2 (4 parameters each) are unchanged; step 3 reads the changed step 2.
    expect(Array.from(b.subarray(0, 12))).toEqual(Array.from(a.subarray(0, 12)));
    expect(Math.abs(b[12] - a[12])).toBeGreaterThan(1e-6);
  });

  it('without data it generates greedily: the teacher-forced pass over its own output gives the same outputs', () => {
    const backend = backendByName('reference');
    const stepGroups: LikelihoodGroup[] = [
      { kind: 'categorical', columns: 3 },
      { kind: 'bernoulli', columns: 1 },
    ];
    const decoder = new LstmDecoder(backend, { latentDim: 2, steps: 5, features: 4, stepGroups, hidden: 4, seed: 1 });
    const z = Float64Array.of(0.7, 0.1, -0.5, 0.4);
    const generated = Float64Array.from(decoder.forward(z, 2));
    // The fed-back inputs: argmax one-hot and the probability of each generated step.
    const own = new Float64Array(2 * 5 * 4);
    for (let r = 0; r < 2; r++) {
      for (let t = 0; t < 5; t++) {
        const p = generated.subarray((r * 5 + t) * 4, (r * 5 + t + 1) * 4);
        let best = 0;
        for (let c = 1; c < 3; c++) if (p[c] > p[best]) best = c;
        own[(r * 5 + t) * 4 + best] = 1;
        own[(r * 5 + t) * 4 + 3] = 1 / (1 + Math.exp(-p[3]));
      }
    }
    expectClose(decoder.forward(z, 2, { target: own }), generated, { atol: 1e-12, rtol: 1e-12 }, 'teacher-forced on its own output');
  });
});

describe.skipIf(!hasCpu())('sequence VAE: cpu and reference take the same training steps', () => {
  it('three Adam steps agree within float32 rounding', async () => {
    const x = tinySequences(24, 4, 8);
    const ref = tinySequenceVae(backendByName('reference'), { posterior: { flow: 'planar', layers: 2 } });
    const cpu = tinySequenceVae(backendByName('cpu'), { posterior: { flow: 'planar', layers: 2 } });
    await ref.fit(x, { epochs: 1, batchSize: 8, lr: 1e-3, seed: 1 });
    await cpu.fit(Float32Array.from(x), { epochs: 1, batchSize: 8, lr: 1e-3, seed: 1 });
    const rp = ref.parameters();
    // Float32 rounding (~1e-6 relative) moves weights far less than lr = 1e-3.
    cpu.parameters().forEach((p, i) => expectClose(p.value, rp[i].value, { atol: 2e-5, rtol: 1e-4 }, p.name));
  });
});

describe.skipIf(!hasCpu())('sequence VAE on architecture sequences', () => {
  it('learns the grammar and, with decoder-input dropout, keeps information in z', async () => {
    const backend = backendByName('cpu');
    const data = architectureSequences(2000, { seed: 1 });
    const T = data.steps;
    const F = data.features;
    const stepGroups = data.likelihoodGroups.slice(0, 2);
    const vae = new VAE({
      inputDim: data.dim,
      latentDim: 8,
      encoder: new LstmEncoder(backend, { steps: T, features: F, hidden: 64, seed: 1 }),
      // Without input dropout the LSTM models the grammar alone and the KL falls to 0.00 nats
      // (posterior collapse; measured with these settings); at 0.75 it keeps about 2 nats.
      decoder: new LstmDecoder(backend, { latentDim: 8, steps: T, features: F, stepGroups, hidden: 64, inputDropout: 0.75, seed: 2 }),
      likelihood: data.likelihoodGroups,
      seed: 1,
      backend,
    });
    const before = vae.elbo(data.x.subarray(0, 200 * data.dim), { seed: 1 }).elbo;
    const fit = await vae.fit(data, { epochs: 15, batchSize: 50, lr: 3e-3, warmup: 5 });
    const after = vae.elbo(data.x.subarray(0, 200 * data.dim), { seed: 1 }).elbo;
    // Measured: −73 → −16 nats, KL 1.9, 200/200 valid samples, 19/100 exact reconstructions.
    expect(after).toBeGreaterThan(before + 40);
    expect(fit.history[fit.history.length - 1].train.kl).toBeGreaterThan(0.5);
    // Generated architectures: input first, convolutions before dense layers, dense softmax end last.
    const samples = vae.sample(200, { seed: 3 });
    let valid = 0;
    for (let r = 0; r < 200; r++) {
      const arch = describeArchitecture(samples, r, T).map((s) => s.type);
      if (arch[0] === 'input' && arch.slice(-3).join() === 'dense,softmax,end' && arch.lastIndexOf('conv') < arch.indexOf('dense')) valid++;
    }
    expect(valid).toBeGreaterThan(150);
    // Greedy decoding of the posterior mean gives some inputs back exactly (the decoder sees z only).
    const rec = vae.decode(vae.encode(data.x.subarray(0, 100 * data.dim)));
    let exact = 0;
    for (let r = 0; r < 100; r++) {
      const want = describeArchitecture(data.x, r, T)
        .map((s) => s.type)
        .join();
      if (
        describeArchitecture(rec, r, T)
          .map((s) => s.type)
          .join() === want
      )
        exact++;
    }
    expect(exact).toBeGreaterThanOrEqual(5);
    expect(LAYER_TYPES).toContain('end');
  });
});

describe('sequence VAE: generation', () => {
  const backend = backendByName('reference');
  const stepGroups: LikelihoodGroup[] = [
    { kind: 'categorical', columns: 3 },
    { kind: 'bernoulli', columns: 1 },
  ];
  const make = (endClass?: number) =>
    new VAE({
      inputDim: 6 * 4,
      latentDim: 2,
      encoder: new LstmEncoder(backend, { steps: 6, features: 4, hidden: 5, seed: 1 }),
      decoder: new LstmDecoder(backend, { latentDim: 2, steps: 6, features: 4, stepGroups, hidden: 5, seed: 2, endClass }),
      likelihood: Array.from({ length: 6 }, () => stepGroups).flat(),
      seed: 3,
      backend,
    });

  it('sampling draws each step from softmax(logits / T): step 0 frequencies match its probabilities', () => {
    const vae = make();
    const n = 4000;
    const z = new Float64Array(n * 2).fill(0.3);
    const greedy = vae.decode(z.subarray(0, 2));
    const p = Array.from(greedy.subarray(0, 3)); // step 0's class probabilities (greedy decode returns them)
    const drawn = vae.decode(z, { mode: 'sample', generationSeed: 5 });
    const counts = [0, 0, 0];
    for (let r = 0; r < n; r++) counts[[0, 1, 2].find((c) => drawn[r * 24 + c] > 0.5)!]++;
    // Multinomial(4000, p): sd ≤ sqrt(4000 / 4) ≈ 32 draws, so 5 sd is 0.04 in a frequency.
    counts.forEach((c, k) => expect(Math.abs(c / n - p[k])).toBeLessThan(0.04));
    // The same seed draws the same sequences; a tiny temperature is greedy.
    expect(Array.from(vae.decode(z.subarray(0, 20), { mode: 'sample', generationSeed: 5 }))).toEqual(Array.from(drawn.subarray(0, 240)));
    const cold = vae.decode(z.subarray(0, 2), { mode: 'sample', temperature: 1e-3 });
    for (let t = 0; t < 6; t++) {
      const argmax = (a: ArrayLike<number>) => [0, 1, 2].reduce((b, c) => (a[t * 4 + c] > a[t * 4 + b] ? c : b), 0);
      expect(argmax(cold)).toBe(argmax(greedy));
    }
  });

  it('a row that emits the end class ends: its later steps are end steps with value 0', () => {
    const vae = make(2);
    const out = vae.sample(300, { seed: 1, mode: 'sample', generationSeed: 2 });
    let endedRows = 0;
    for (let r = 0; r < 300; r++) {
      const types = [0, 1, 2, 3, 4, 5].map((t) => [0, 1, 2].find((c) => out[r * 24 + t * 4 + c] > 0.5));
      const first = types.indexOf(2);
      if (first < 0) continue;
      endedRows++;
      for (let t = first + 1; t < 6; t++) {
        expect(types[t]).toBe(2);
        expect(out[r * 24 + t * 4 + 3]).toBeLessThan(1e-9);
      }
    }
    expect(endedRows).toBeGreaterThan(0);
  });

  it('interpolate decodes points between two codes, the ends being the decoded codes', () => {
    const vae = make();
    const x = tinySequences(2, 6, 4);
    const path = vae.interpolate(x.subarray(0, 24), x.subarray(24, 48), 5);
    expect(path.length).toBe(5 * 24);
    const ends = vae.decode(vae.encode(x));
    expect(Array.from(path.subarray(0, 24))).toEqual(Array.from(ends.subarray(0, 24)));
    expect(Array.from(path.subarray(4 * 24))).toEqual(Array.from(ends.subarray(24, 48)));
    expect(() => vae.interpolate(x.subarray(0, 24), x.subarray(24, 48), 1)).toThrow('Expected integer ≥ 2 for "steps" but received 1 (number)');
    expect(() => vae.decode(new Float64Array(2), { temperature: 0.5 })).toThrow('"temperature" applies to mode "sample"');
  });
});

describe('sequence VAE: built-in LSTM networks from options', () => {
  const data = architectureSequences(60, { seed: 2 });
  const options = (backend: 'reference' | 'cpu'): VAEOptions => ({
    inputDim: data.dim,
    latentDim: 3,
    encoder: { kind: 'lstm', steps: data.steps, hidden: 8 },
    decoder: { kind: 'lstm', steps: data.steps, hidden: 8, inputDropout: 0.25, endClass: 8 },
    likelihood: data.likelihoodGroups,
    seed: 4,
    backend,
  });

  it('build the same networks as the objects, train, and save and load with no parts given', async () => {
    const vae = new VAE(options('reference'));
    expect(vae.encoder).toBeInstanceOf(LstmEncoder);
    expect(vae.decoder).toBeInstanceOf(LstmDecoder);
    await vae.fit(data, { epochs: 1, batchSize: 20 });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flowvae-seq-'));
    try {
      vae.save(dir);
      const loaded = VAE.load(dir, { backend: 'reference' });
      expect(loaded.config).toEqual(vae.config);
      expect(loaded.elbo(data.x, { seed: 1 })).toEqual(vae.elbo(data.x, { seed: 1 }));
      expect(Array.from(loaded.sample(3, { seed: 2 }))).toEqual(Array.from(vae.sample(3, { seed: 2 })));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect(vae.parameters().map((p) => p.name)).toContain('decoder.net.lstm.weight_hh_l0');
  });

  it('a single Bernoulli likelihood splits into equal steps (image rows as a sequence)', () => {
    const vae = new VAE({
      inputDim: 12,
      latentDim: 2,
      encoder: { kind: 'lstm', steps: 3, hidden: 4 },
      decoder: { kind: 'lstm', steps: 3, hidden: 4 },
      backend: 'reference',
    });
    expect((vae.decoder as LstmDecoder).features).toBe(4);
    expect(vae.decoder.outDim).toBe(12);
  });

  it('refuses step counts that do not fit the rows or the groups', () => {
    expect(() => new VAE({ ...options('reference'), encoder: { kind: 'lstm', steps: 7, hidden: 8 } })).toThrow(
      '"encoder.steps" 7 does not divide inputDim 250',
    );
    expect(() => new VAE({ ...options('reference'), decoder: { kind: 'lstm', steps: 7, hidden: 8 } })).toThrow(
      'An LSTM decoder of 7 steps needs likelihood groups that repeat every step',
    );
    expect(() => new VAE({ ...options('reference'), encoder: { kind: 'lstm', steps: 25, hidden: 8, endClass: 1 } as never })).toThrow(
      'Unknown option "endClass" in "encoder"',
    );
  });
});
