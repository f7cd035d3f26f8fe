import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DiagonalGaussian } from '../src/distributions/diagonal-gaussian';
import { FlowDistribution } from '../src/distributions/flow-distribution';
import { FlowVaeError } from '../src/errors';
import { PlanarFlow } from '../src/flows/planar';
import { VAE, type VAEOptions } from '../src/vae/vae';
import { hasCpu, randomArray } from './helpers';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flowvae-ckpt-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const options: VAEOptions = { inputDim: 12, latentDim: 3, encoder: { hidden: [10] }, decoder: { hidden: [10] }, seed: 4 };
const data = randomArray(60 * 12, 8, 0, 1).map((v) => (v > 0.5 ? 1 : 0));

describe('VAE checkpoints', () => {
  it('save → load gives the same model outputs and the same architecture', async () => {
    const vae = new VAE({ ...options, backend: 'reference' });
    await vae.fit(data, { epochs: 1, batchSize: 20 });
    const dir = path.join(tmp, 'a');
    vae.save(dir);
    const loaded = VAE.load(dir, { backend: 'reference' });
    expect(loaded.config).toEqual(vae.config);
    expect(loaded.elbo(data, { seed: 3 })).toEqual(vae.elbo(data, { seed: 3 }));
    expect(Array.from(loaded.sample(2))).toEqual(Array.from(vae.sample(2)));
  });

  it.skipIf(!hasCpu())('a model saved on cpu loads on reference (and back) with the same weights', () => {
    const vae = new VAE({ ...options, backend: 'cpu' });
    const dir = path.join(tmp, 'b');
    vae.save(dir);
    const onRef = VAE.load(dir, { backend: 'reference' });
    const ref = onRef.parameters();
    vae.parameters().forEach((p, i) => expect(Array.from(ref[i].value)).toEqual(Array.from(p.value)));
    // Same weights, float32 vs float64 arithmetic: ELBOs agree to ~1e-5 relative.
    expect(Math.abs(onRef.elbo(data).elbo - vae.elbo(Float32Array.from(data)).elbo)).toBeLessThan(1e-3);
  });

  it('training resumed from a checkpoint continues bit-identically', async () => {
    const straight = new VAE({ ...options, backend: 'reference' });
    await straight.fit(data, { epochs: 3, batchSize: 20, seed: 9, binarize: 'dynamic' });
    const first = new VAE({ ...options, backend: 'reference' });
    await first.fit(data, { epochs: 1, batchSize: 20, seed: 9, binarize: 'dynamic' });
    const dir = path.join(tmp, 'c');
    first.save(dir);
    const resumed = VAE.load(dir, { backend: 'reference' });
    const result = await resumed.fit(data, { epochs: 3, batchSize: 20, seed: 9, binarize: 'dynamic', resume: resumed.trainingState });
    expect(result.history.map((h) => h.epoch)).toEqual([2, 3]);
    const want = straight.parameters();
    resumed.parameters().forEach((p, i) => expect(Array.from(p.value), p.name).toEqual(Array.from(want[i].value)));
  });

  it('a run aborted mid-epoch resumes from the exact batch, bit-identical to an uninterrupted run', async () => {
    const fitOptions = { batchSize: 20, seed: 9, binarize: 'dynamic' as const, warmup: 2 };
    const straight = new VAE({ ...options, backend: 'reference' });
    await straight.fit(data, { ...fitOptions, epochs: 3 });
    const first = new VAE({ ...options, backend: 'reference' });
    const controller = new AbortController();
    const stopped = await first.fit(data, {
      ...fitOptions,
      epochs: 3,
      signal: controller.signal,
      onBatch: (b) => b.epoch === 2 && b.batch === 1 && controller.abort(),
    });
    // 60 rows in batches of 20: epoch 1 complete, one batch of epoch 2.
    expect(stopped.stopped).toBe('aborted');
    expect(stopped.history.map((h) => [h.epoch, h.batches, h.complete, h.validation])).toEqual([
      [1, 3, true, undefined],
      [2, 1, false, undefined],
    ]);
    expect(stopped.state).toMatchObject({ epoch: 1, batch: 1 });
    const dir = path.join(tmp, 'mid-epoch');
    first.save(dir);
    const resumed = VAE.load(dir, { backend: 'reference' });
    expect(resumed.trainingState).toMatchObject({ epoch: 1, batch: 1 });
    const result = await resumed.fit(data, { ...fitOptions, epochs: 3, resume: resumed.trainingState });
    expect(result.history.map((h) => [h.epoch, h.batches, h.complete])).toEqual([
      [2, 2, true],
      [3, 3, true],
    ]);
    const want = straight.parameters();
    resumed.parameters().forEach((p, i) => expect(Array.from(p.value), p.name).toEqual(Array.from(want[i].value)));
  });

  it('keepBest carries across resume: an interrupted and resumed run keeps the best epoch of the whole run', async () => {
    // 40 rows of noise to train on, 20 others to validate: the validation ELBO peaks at epoch 3 and then falls.
    const train = data.subarray(20 * 12);
    const fitOptions = { batchSize: 10, seed: 3, validation: data.subarray(0, 20 * 12), keepBest: true, lr: 0.02 };
    const straight = new VAE({ ...options, backend: 'reference' });
    const all = await straight.fit(train, { ...fitOptions, epochs: 10 });
    expect(all.history.reduce((a, b) => (b.validation!.elbo > a.validation!.elbo ? b : a)).epoch).toBe(3);
    // Interrupted after epoch 5, past the best epoch, then resumed from the checkpoint.
    const first = new VAE({ ...options, backend: 'reference' });
    const controller = new AbortController();
    await first.fit(train, { ...fitOptions, epochs: 10, signal: controller.signal, onEpoch: (m) => void (m.epoch === 5 && controller.abort()) });
    const dir = path.join(tmp, 'keep-best');
    first.save(dir);
    const resumed = VAE.load(dir, { backend: 'reference' });
    expect(resumed.trainingState!.bestParameters).not.toBeNull();
    await resumed.fit(train, { ...fitOptions, epochs: 10, resume: resumed.trainingState });
    const want = straight.parameters();
    resumed.parameters().forEach((p, i) => expect(Array.from(p.value), p.name).toEqual(Array.from(want[i].value)));
  });

  it('refuses a file that is not a VAE checkpoint, or whose tensors do not fit', () => {
    const vae = new VAE({ ...options, backend: 'reference' });
    const dir = path.join(tmp, 'd');
    const file = vae.save(dir);
    const bytes = fs.readFileSync(file);
    // Change the latent size in the stored architecture: shapes no longer match.
    const text = bytes.toString('latin1').replace('\\"latentDim\\":3', '\\"latentDim\\":4');
    fs.writeFileSync(path.join(tmp, 'e.safetensors'), Buffer.from(text, 'latin1'));
    expect(() => VAE.load(path.join(tmp, 'e.safetensors'))).toThrow(/tensor "encoder.mu.weight" has shape \[3, 10\] but the model needs \[4, 10\]/);
    fs.writeFileSync(path.join(tmp, 'f.safetensors'), bytes.subarray(0, bytes.length - 7));
    try {
      VAE.load(path.join(tmp, 'f.safetensors'));
      expect.fail('a truncated file must be refused');
    } catch (e) {
      expect(e).toBeInstanceOf(FlowVaeError);
      expect((e as FlowVaeError).code).toBe('ERR_CHECKPOINT');
    }
    expect(() => VAE.load(path.join(tmp, 'missing'))).toThrow();
  });
});

describe('FlowDistribution checkpoints', () => {
  const samples = randomArray(64 * 3, 21, -2, 2);

  it.each([
    // A non-standard base, a generative flow.
    ['planar', { layers: 3, baseMean: [0.5, -1, 2], baseLogVar: [0.1, -0.3, 0] }],
    // The normalizing direction with a family option.
    ['maf', { layers: 2, hidden: [7] }],
    // Buffers: ActNorm's initialization flag and a random permutation.
    ['glow', { layers: 2, hidden: [6] }],
  ] as const)('%s: save → load gives the same densities, samples, recipe and noise offset', async (flow, extra) => {
    const dist = FlowDistribution.create({ dim: 3, flow, seed: 5, backend: 'reference', ...extra });
    await dist.fit(samples, { epochs: 1, batchSize: 32 });
    dist.sample(4); // moves the noise stream on
    const dir = path.join(tmp, `dist-${flow}`);
    dist.save(dir);
    const loaded = FlowDistribution.load(dir, { backend: 'reference' });
    expect(loaded.spec).toEqual(dist.spec);
    expect(loaded.direction).toBe(dist.direction);
    expect(loaded.noiseOffset).toBe(dist.noiseOffset);
    expect(Array.from((loaded.base as DiagonalGaussian).mean)).toEqual(Array.from((dist.base as DiagonalGaussian).mean));
    expect(Array.from(loaded.logProb(samples))).toEqual(Array.from(dist.logProb(samples)));
    // Without a seed both continue the same stream from the same offset.
    expect(Array.from(loaded.sample(5).x)).toEqual(Array.from(dist.sample(5).x));
    for (const b of dist.namedBuffers()) {
      const same = loaded.namedBuffers().find((x) => x.name === b.name);
      expect(same && Array.from(same.value), b.name).toEqual(Array.from(b.value));
    }
  });

  it.skipIf(!hasCpu())('a distribution saved on cpu loads on reference with the same parameters', () => {
    const dist = FlowDistribution.create({ dim: 3, flow: 'realnvp', layers: 2, seed: 1, backend: 'cpu' });
    const dir = path.join(tmp, 'dist-cpu');
    dist.save(dir);
    const onRef = FlowDistribution.load(dir, { backend: 'reference' });
    const ref = onRef.parameters();
    dist.parameters().forEach((p, i) => expect(Array.from(ref[i].value), p.name).toEqual(Array.from(p.value)));
    // float32 vs float64 arithmetic on the same weights.
    const a = onRef.logProb(samples);
    const b = dist.logProb(Float32Array.from(samples));
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(1e-4);
  });

  it('refuses to save a hand-built distribution, and refuses files that are not distribution checkpoints', () => {
    const base = new DiagonalGaussian({ dim: 2, backend: 'reference' });
    const handBuilt = new FlowDistribution(base, new PlanarFlow({ dim: 2, layers: 2, backend: 'reference' }));
    expect(() => handBuilt.save(path.join(tmp, 'dist-hand'))).toThrow(
      'Expected a distribution built by FlowDistribution.create for save() but this one was built with new FlowDistribution(base, flow)',
    );
    const vaeFile = new VAE({ ...options, backend: 'reference' }).save(path.join(tmp, 'dist-vae'));
    expect(() => FlowDistribution.load(vaeFile)).toThrow(`${vaeFile} is not a flowvae flow distribution checkpoint: metadata "format" is "flowvae-vae"`);
    const file = FlowDistribution.create({ dim: 3, flow: 'planar', layers: 2, backend: 'reference' }).save(path.join(tmp, 'dist-g'));
    const text = fs.readFileSync(file).toString('latin1');
    // A recipe whose dimension no longer matches the stored base.
    fs.writeFileSync(path.join(tmp, 'dist-h.safetensors'), Buffer.from(text.replace('\\"dim\\":3', '\\"dim\\":4'), 'latin1'));
    expect(() => FlowDistribution.load(path.join(tmp, 'dist-h.safetensors'))).toThrow(/tensor "base.mean" has shape \[3\] but the model needs \[4\]/);
    // An unknown family in the recipe.
    fs.writeFileSync(path.join(tmp, 'dist-i.safetensors'), Buffer.from(text.replace('\\"flow\\":\\"planar\\"', '\\"flow\\":\\"planer\\"'), 'latin1'));
    expect(() => FlowDistribution.load(path.join(tmp, 'dist-i.safetensors'))).toThrow(/its recipe is invalid \(Expected one of/);
  });
});

describe('saving where it cannot be saved', () => {
  it('a file in the way or a read-only place is ERR_CHECKPOINT naming the path, not a raw EEXIST/EACCES', () => {
    const vae = new VAE({ ...options, backend: 'reference' });
    const file = path.join(tmp, 'a-file');
    fs.writeFileSync(file, 'x');
    const inTheWay = (() => {
      try {
        vae.save(file);
      } catch (err) {
        return err as FlowVaeError;
      }
      return null;
    })();
    expect(inTheWay).toBeInstanceOf(FlowVaeError);
    expect(inTheWay!.code).toBe('ERR_CHECKPOINT');
    expect(inTheWay!.message).toBe(`Cannot save to "${file}": a file is in the way (save takes a directory and writes model.safetensors in it)`);
    expect(() => vae.save(path.join(file, 'below'))).toThrow(`Cannot save to "${path.join(file, 'below')}": a file is in the way`);
    expect(fs.readFileSync(file, 'utf8')).toBe('x');
  });
});

describe('checkpoint integrity', () => {
  it('a flipped bit in a weight is refused on load, naming the tensor; the model is untouched', () => {
    const vae = new VAE({ ...options, backend: 'reference' });
    const dir = path.join(tmp, 'flipped');
    const file = vae.save(dir);
    const bytes = fs.readFileSync(file);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
    expect(Object.keys(JSON.parse(header.__metadata__['flowvae.sha256']))).toEqual(expect.arrayContaining(vae.parameters().map((p) => p.name)));
    // The top exponent bit of one float64 decoder weight: a value near 0.1 becomes about 1e307.
    const name = 'decoder.net.2.weight';
    const at = 8 + headerLength + header[name].data_offsets[0] + 8 * 5 + 7;
    bytes[at] ^= 0x40;
    fs.writeFileSync(file, bytes);
    expect(() => VAE.load(dir, { backend: 'reference' })).toThrow(
      `${file} is corrupt: tensor "${name}" does not match its checksum (the file changed after it was written)`,
    );
    bytes[at] ^= 0x40;
    fs.writeFileSync(file, bytes);
    expect(
      VAE.load(dir, { backend: 'reference' })
        .parameters()
        .map((p) => Array.from(p.value)),
    ).toEqual(vae.parameters().map((p) => Array.from(p.value)));
  });
});

describe('moving a model to a worker thread', () => {
  it('toBytes → postMessage (transferred) → VAE.fromBytes in the worker gives the same model', async () => {
    const { Worker } = await import('node:worker_threads');
    const vae = new VAE({ ...options, posterior: { flow: 'planar', layers: 2 }, backend: 'reference' });
    await vae.fit(data, { epochs: 1, batchSize: 20 });
    const want = vae.elbo(data, { seed: 3 }).elbo;
    const code = `
      require(${JSON.stringify(require.resolve('tsx/cjs/api'))}).register();
      const { parentPort } = require('node:worker_threads');
      const { VAE } = require(${JSON.stringify(path.join(__dirname, '..', 'src', 'vae', 'vae'))});
      parentPort.once('message', ({ bytes, data }) => {
        const vae = VAE.fromBytes(bytes, { backend: 'reference' });
        parentPort.postMessage({ elbo: vae.elbo(data, { seed: 3 }).elbo, epoch: vae.trainingState.epoch });
      });`;
    const worker = new Worker(code, { eval: true });
    const bytes = vae.toBytes();
    worker.postMessage({ bytes, data }, [bytes.buffer as ArrayBuffer]);
    const reply = await new Promise<{ elbo: number; epoch: number }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    expect(reply).toEqual({ elbo: want, epoch: 1 });
    expect(() => VAE.fromBytes(new Uint8Array(16))).toThrow(expect.objectContaining({ code: 'ERR_CHECKPOINT' }));
  });
});
