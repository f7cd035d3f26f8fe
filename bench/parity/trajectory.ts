/**
 * The training-parity regression recording (test/parity.test.ts reads it):
 *
 *   npx tsx bench/parity/trajectory.ts [--out test/fixtures/parity-trajectory.json]
 *
 * A small VAE (MNIST-subset digits pooled to 7×7 and binarized, 49-16-2,
 * diagonal posterior) trained the way a user writes a per-epoch loop in
 * flowvae: `fit({ epochs: 1, beta: min(1, e/10) })` once per epoch, 30 epochs
 * of 10 batches. This script writes what that loop draws (the initial
 * weights, each step's batch rows from flowvae's shuffle, each step's noise
 * from the model's stream, each step's β) and has the PyTorch twin
 * (bench/peers/vae_torch.py, mode "replay", float64) take the same 300 steps
 * with one torch.optim.Adam across all epochs, as a PyTorch loop does. The
 * fixture keeps PyTorch's per-step −ELBO and final parameters.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { referenceRng } from '../../src/backend/reference/rng';
import { loadMnistSubset } from '../../src/data/mnist';
import { permutation } from '../../src/data/random';
import { saveSafetensors, type SafetensorsTensor } from '../../src/io/safetensors';
import { VAE, type VAEOptions } from '../../src/vae/vae';

/** The recorded run; the test builds the same one from these values. */
export const TRAJECTORY = {
  examples: 200,
  batchSize: 20,
  epochs: 30,
  warmup: 10,
  seed: 3,
  model: {
    inputDim: 49,
    latentDim: 2,
    encoder: { hidden: [16], activation: 'relu' },
    decoder: { hidden: [16], activation: 'relu' },
    posterior: 'diagonal',
  } satisfies Omit<VAEOptions, 'backend' | 'seed'>,
} as const;

/** The first `examples` training digits, 4×4-average-pooled to 7×7 and binarized at 0.5. */
export function trajectoryData(): Float64Array {
  const d = loadMnistSubset({ split: 'train', limit: TRAJECTORY.examples });
  const out = new Float64Array(TRAJECTORY.examples * 49);
  for (let n = 0; n < TRAJECTORY.examples; n++) {
    for (let i = 0; i < 7; i++) {
      for (let j = 0; j < 7; j++) {
        let s = 0;
        for (let a = 0; a < 4; a++) for (let b = 0; b < 4; b++) s += d.x[n * 784 + (4 * i + a) * 28 + 4 * j + b];
        out[n * 49 + i * 7 + j] = s / 16 > 0.5 ? 1 : 0;
      }
    }
  }
  return out;
}

/** β of epoch e = 1, 2, … in the recorded loop. */
export const trajectoryBeta = (epoch: number): number => Math.min(1, epoch / TRAJECTORY.warmup);

function main(): void {
  const argv = process.argv.slice(2);
  const outIndex = argv.indexOf('--out');
  const out = outIndex >= 0 ? argv[outIndex + 1] : path.join(__dirname, '..', '..', 'test', 'fixtures', 'parity-trajectory.json');
  const { examples: n, batchSize: B, epochs, seed } = TRAJECTORY;
  const D = TRAJECTORY.model.latentDim;
  const vae = new VAE({ ...TRAJECTORY.model, seed, backend: 'reference' });
  const x = trajectoryData();
  const perEpoch = n / B;
  const steps = epochs * perEpoch;
  const idx = new Float64Array(steps * B);
  const beta = new Float64Array(steps);
  for (let e = 0; e < epochs; e++) {
    // VAE.fit's batch order: permutation(n, seed, 1000 + epoch), batches in order.
    const order = permutation(n, seed, 1000 + e);
    for (let s = 0; s < perEpoch; s++) {
      for (let i = 0; i < B; i++) idx[(e * perEpoch + s) * B + i] = order[s * B + i];
      beta[e * perEpoch + s] = trajectoryBeta(e + 1);
    }
  }
  // VAE.fit's noise: the model's stream seed·1000 + 7 from offset 0, B·D per step.
  const eps = new Float64Array(steps * B * D);
  referenceRng.normal(seed * 1000 + 7, 0, eps);
  const tensors: SafetensorsTensor[] = vae.parameters().map((p) => ({ name: `init.${p.name}`, dtype: 'F64', shape: [...p.shape], data: p.value }));
  tensors.push(
    { name: 'x', dtype: 'F64', shape: [n, 49], data: x },
    { name: 'idx', dtype: 'F64', shape: [steps, B], data: idx },
    { name: 'eps', dtype: 'F64', shape: [steps, B, D], data: eps },
    { name: 'beta', dtype: 'F64', shape: [steps], data: beta },
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flowvae-trajectory-'));
  const inputs = path.join(dir, 'inputs.safetensors');
  const replayed = path.join(dir, 'replayed.json');
  saveSafetensors(inputs, tensors, { model: 'small', inputDim: '49', hidden: '16', latentDim: String(D), lr: '0.001', dtype: 'float64' });
  const python = process.env.FLOWVAE_BENCH_PYTHON ?? '/usr/bin/python3';
  execFileSync(python, [path.join(__dirname, '..', 'peers', 'vae_torch.py'), JSON.stringify({ mode: 'replay', file: inputs, out: replayed })], {
    stdio: 'inherit',
  });
  const result = JSON.parse(fs.readFileSync(replayed, 'utf8')) as { losses: number[]; parameters: Record<string, number[]> };
  fs.rmSync(dir, { recursive: true, force: true });
  const torchVersion = execFileSync(python, ['-c', 'import torch; print(torch.__version__)']).toString().trim();
  const fixture = {
    about:
      'PyTorch (torch.optim.Adam kept across epochs, float64) replaying the per-epoch fit loop of bench/parity/trajectory.ts ' +
      "from flowvae's initial weights, batches and noise. Regenerate with: npx tsx bench/parity/trajectory.ts",
    torch: torchVersion,
    run: TRAJECTORY,
    losses: result.losses,
    parameters: result.parameters,
  };
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(fixture) + '\n');
  console.log(`wrote ${out}: ${result.losses.length} steps, loss ${result.losses[0].toFixed(4)} → ${result.losses[result.losses.length - 1].toFixed(4)}`);
}

if (require.main === module) main();
