import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FlowVaeError } from '../src/errors';
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
