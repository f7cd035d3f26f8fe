/** Sequence data sets: architectures as one-hot layer types plus a value per step. */
import { describe, expect, it } from 'vitest';
import { LAYER_TYPES, architectureSequences, describeArchitecture, isValidArchitecture, mnistRows } from '../src/data/sequences';
import { loadMnistSubset } from '../src/data/mnist';
import { VAE } from '../src/vae/vae';

describe('architecture sequences', () => {
  const data = architectureSequences(300, { seed: 3 });

  it('are reproducible from the seed and differ across seeds', () => {
    expect(Array.from(architectureSequences(300, { seed: 3 }).x)).toEqual(Array.from(data.x));
    expect(Array.from(architectureSequences(300, { seed: 4 }).x)).not.toEqual(Array.from(data.x));
  });

  it('hold one layer type per step, values in [0, 1], and end steps from the length on', () => {
    const F = data.features;
    for (let r = 0; r < data.n; r++) {
      for (let t = 0; t < data.steps; t++) {
        const at = (r * data.steps + t) * F;
        const ones = Array.from(data.x.subarray(at, at + LAYER_TYPES.length)).filter((v) => v === 1).length;
        expect(ones).toBe(1);
        expect(data.x[at + F - 1]).toBeGreaterThanOrEqual(0);
        expect(data.x[at + F - 1]).toBeLessThanOrEqual(1);
        if (t >= data.lengths[r] - 1) expect(data.x[at + LAYER_TYPES.indexOf('end')]).toBe(1);
      }
    }
  });

  it('follow the grammar: input first, then convolutions before dense layers, dense softmax end last', () => {
    for (let r = 0; r < data.n; r++) {
      const arch = describeArchitecture(data.x, r, data.steps).map((s) => s.type);
      expect(arch.length).toBe(data.lengths[r]);
      expect(arch[0]).toBe('input');
      expect(arch.slice(-3)).toEqual(['dense', 'softmax', 'end']);
      const lastConv = arch.lastIndexOf('conv');
      const firstDense = arch.indexOf('dense');
      expect(lastConv < firstDense).toBe(true);
    }
  });

  it('pass the validity check, which refuses sequences off the grammar', () => {
    for (let r = 0; r < data.n; r++) expect(isValidArchitecture(describeArchitecture(data.x, r, data.steps).map((s) => s.type))).toBe(true);
    expect(isValidArchitecture(['input', 'dense', 'softmax', 'end'])).toBe(true);
    expect(isValidArchitecture(['input', 'dense', 'relu', 'conv', 'relu', 'dense', 'softmax', 'end'])).toBe(false); // conv after dense
    expect(isValidArchitecture(['input', 'conv', 'dense', 'softmax', 'end'])).toBe(false); // conv without relu
    expect(isValidArchitecture(['input', 'dense', 'softmax'])).toBe(false); // no end
  });

  it('train a VAE with the per-step mixed likelihood they come with', async () => {
    const vae = new VAE({
      inputDim: data.dim,
      latentDim: 4,
      encoder: { hidden: [64] },
      decoder: { hidden: [64] },
      likelihood: data.likelihoodGroups,
      seed: 1,
      backend: 'reference',
    });
    const before = vae.elbo(data.x, { seed: 1 }).elbo;
    await vae.fit(data, { epochs: 10, batchSize: 50, lr: 3e-3 });
    const after = vae.elbo(data.x, { seed: 1 }).elbo;
    // 25 steps × (9-way choice + a value): the untrained model pays ~log 9 + log 2 per step (≈ 70 nats); a trained one far less.
    expect(after).toBeGreaterThan(before + 20);
    // Decoded codes are architectures of the same form (one type per step, values in [0, 1]).
    const decoded = vae.decode(new Float64Array(4 * 2).fill(0.1));
    expect(describeArchitecture(decoded, 0, data.steps)[0].type).toBe('input');
  });
});

describe('MNIST rows', () => {
  it('are the bundled digits as 28 steps of 28 Bernoulli pixels', () => {
    const rows = mnistRows({ split: 'test', limit: 50 });
    const images = loadMnistSubset({ split: 'test', limit: 50 });
    expect(Array.from(rows.x)).toEqual(Array.from(images.x));
    expect([rows.steps, rows.features, rows.dim, rows.likelihoodGroups.length]).toEqual([28, 28, 784, 28]);
    expect(rows.likelihoodGroups[5]).toEqual({ kind: 'bernoulli', columns: 28 });
    expect(Array.from(rows.labels!)).toEqual(Array.from(images.labels!));
  });

  it('train a VAE with LSTM networks over the rows', async () => {
    const rows = mnistRows({ split: 'test', limit: 40 });
    const vae = new VAE({
      inputDim: 784,
      latentDim: 4,
      encoder: { kind: 'lstm', steps: 28, hidden: 16 },
      decoder: { kind: 'lstm', steps: 28, hidden: 16 },
      likelihood: rows.likelihoodGroups,
      seed: 1,
      backend: 'reference',
    });
    const fit = await vae.fit(rows, { epochs: 2, batchSize: 20, lr: 3e-3 });
    expect(fit.history[1].train.elbo).toBeGreaterThan(fit.history[0].train.elbo);
  });
});
