/**
 * `npm run quality -- --suite sequence [--seeds 0,1] [--epochs 20]`: the
 * posterior comparison on sequences. A VAE over the architecture sequences
 * (src/data/sequences.ts) with an LSTM encoder and an autoregressive LSTM
 * decoder (hidden 64, decoder-input dropout 0.5, latent 8), trained with
 * each posterior at the same budget: Adam lr 3e-3, batch 50, KL warm-up over
 * 5 epochs, free bits 0.25 nats per latent dimension. Scored on 500 held-out
 * sequences: the ELBO, the importance-sampled NLL (200 samples), active
 * units, the per-step accuracy and exact-match rate of greedy
 * reconstructions from the posterior mean, and the share of 500 greedy
 * samples that are valid architectures.
 *
 * Writes bench/results/quality-sequence.json and prints a markdown table.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setNumThreads } from '../src/backend';
import { backendByName } from '../src/backend';
import { architectureSequences, describeArchitecture, isValidArchitecture } from '../src/data/sequences';
import { LstmDecoder, LstmEncoder } from '../src/nn/sequence';
import { VAE, type VAEOptions } from '../src/vae/vae';

const POSTERIORS: Record<string, VAEOptions['posterior']> = {
  diagonal: 'diagonal',
  'full-covariance': 'full-covariance',
  'planar K=8': { flow: 'planar', layers: 8 },
  'IAF K=2': { flow: 'iaf', layers: 2, hidden: [64] },
  'Sylvester orthogonal K=4 M=4': { flow: 'sylvester-orthogonal', layers: 4, m: 4 },
};

interface SequenceResult {
  posterior: string;
  seed: number;
  epochs: number;
  seconds: number;
  testElbo: number;
  testNll: number;
  kl: number;
  activeUnits: number;
  stepAccuracy: number;
  exactMatch: number;
  validGenerated: number;
}

async function runOne(name: string, seed: number, epochs: number): Promise<SequenceResult> {
  setNumThreads(1);
  const backend = backendByName('cpu');
  const all = architectureSequences(3000, { seed: 100 + seed });
  const T = all.steps;
  const F = all.features;
  const train = all.x.subarray(0, 2500 * all.dim);
  const test = all.x.subarray(2500 * all.dim);
  const stepGroups = all.likelihoodGroups.slice(0, 2);
  const latentDim = 8;
  const vae = new VAE({
    inputDim: all.dim,
    latentDim,
    encoder: new LstmEncoder(backend, { steps: T, features: F, hidden: 64, seed: seed + 1 }),
    decoder: new LstmDecoder(backend, { latentDim, steps: T, features: F, stepGroups, hidden: 64, inputDropout: 0.5, endClass: 8, seed: seed + 2 }),
    likelihood: all.likelihoodGroups,
    posterior: POSTERIORS[name],
    kl: 'sampled',
    seed,
    backend,
  });
  const t0 = performance.now();
  await vae.fit(train, { epochs, batchSize: 50, lr: 3e-3, warmup: 5, freeBits: 0.25, seed });
  const seconds = (performance.now() - t0) / 1000;
  const elbo = vae.elbo(test, { samples: 1, seed: 7 });
  const nll = -vae.logLikelihood(test, { samples: 200, batch: 200, seed: 8 }).mean;
  const units = vae.activeUnits(test).count;
  const n = test.length / all.dim;
  const rec = vae.decode(vae.encode(test));
  let right = 0;
  let total = 0;
  let exact = 0;
  for (let r = 0; r < n; r++) {
    const want = describeArchitecture(test, r, T).map((s) => s.type);
    const got = describeArchitecture(rec, r, T).map((s) => s.type);
    if (want.join() === got.join()) exact++;
    for (let t = 0; t < want.length; t++) {
      total++;
      if (got[t] === want[t]) right++;
    }
  }
  const samples = vae.sample(500, { seed: 9 });
  let valid = 0;
  for (let r = 0; r < 500; r++) if (isValidArchitecture(describeArchitecture(samples, r, T).map((s) => s.type))) valid++;
  return {
    posterior: name,
    seed,
    epochs,
    seconds,
    testElbo: elbo.elbo,
    testNll: nll,
    kl: elbo.kl,
    activeUnits: units,
    stepAccuracy: right / total,
    exactMatch: exact / n,
    validGenerated: valid / 500,
  };
}

export async function sequenceQualityMain(args: Record<string, string>): Promise<void> {
  const seeds = (args.seeds ?? '0,1').split(',').map(Number);
  const epochs = Number(args.epochs ?? 20);
  const names = args.posteriors ? args.posteriors.split(';') : Object.keys(POSTERIORS);
  const results: SequenceResult[] = [];
  for (const name of names) {
    for (const seed of seeds) {
      const r = await runOne(name, seed, epochs);
      console.error(
        `${name} seed ${seed}: NLL ${r.testNll.toFixed(2)}, KL ${r.kl.toFixed(2)}, exact ${(100 * r.exactMatch).toFixed(1)}%, valid ${(100 * r.validGenerated).toFixed(1)}% (${r.seconds.toFixed(0)} s)`,
      );
      results.push(r);
    }
  }
  const fmt = (xs: number[], digits = 2) => {
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const half = xs.length > 1 ? (Math.max(...xs) - Math.min(...xs)) / 2 : NaN;
    return Number.isNaN(half) ? mean.toFixed(digits) : `${mean.toFixed(digits)} ± ${half.toFixed(digits)}`;
  };
  const lines = [
    '| posterior | test ELBO | test NLL | KL | active units | step accuracy | exact match | valid samples |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const name of names) {
    const rs = results.filter((r) => r.posterior === name);
    lines.push(
      `| ${name} | ${fmt(rs.map((r) => r.testElbo))} | ${fmt(rs.map((r) => r.testNll))} | ${fmt(rs.map((r) => r.kl))} | ${rs.map((r) => r.activeUnits).join(', ')} | ` +
        `${fmt(
          rs.map((r) => 100 * r.stepAccuracy),
          1,
        )}% | ${fmt(
          rs.map((r) => 100 * r.exactMatch),
          1,
        )}% | ${fmt(
          rs.map((r) => 100 * r.validGenerated),
          1,
        )}% |`,
    );
  }
  console.log(lines.join('\n'));
  fs.writeFileSync(path.join(__dirname, 'results', 'quality-sequence.json'), JSON.stringify({ epochs, seeds, results }, null, 2) + '\n');
}
