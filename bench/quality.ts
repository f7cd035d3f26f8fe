/**
 * `npm run quality -- [--data mnist-subset|fashion-mnist] [--seeds 0,1] [--jobs 2] [--families "a;b"]`
 * `npm run quality -- --suite parity …`: training parity with PyTorch (bench/parity.ts).
 * `npm run quality -- --suite sequence …`: posteriors of a sequence VAE (bench/sequence-quality.ts).
 * `npm run quality -- --suite priors …`: priors (standard normal, mixture, flow)
 *   with a diagonal and a planar posterior, and ELBO vs IWAE (K = 5) training,
 *   at the same budget; the table adds the active units of the test set.
 *
 * The posterior-quality table: one fixed MLP VAE (784-300-300-40, ReLU,
 * Bernoulli likelihood) trained with every posterior family at the same
 * budget, then scored on the test set by the ELBO and by the importance-
 * sampled negative log-likelihood (5000 samples, as in the papers).
 *
 * Budget, identical for every family: Adam lr 1e-3, batch 100, KL warm-up over
 * 10 epochs, dynamic binarization, 10% of the training set held out for
 * validation, at most `epochs` epochs (100) with early stopping (patience 10) and the
 * best validation epoch kept. The test set is binarized once with a fixed seed.
 *
 * Each (family, seed) runs in its own process on one thread (`--jobs` at a
 * time) and writes bench/results/quality/<data>/<family>.seed<s>.json, so an
 * interrupted table resumes where it stopped. The table (mean ± half the
 * spread over seeds) is printed as markdown and written to
 * bench/results/quality-<data>.json.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setNumThreads } from '../src/backend';
import { binarize } from '../src/data/binarize';
import type { Dataset } from '../src/data/dataset';
import { loadFashionMnist } from '../src/data/idx';
import { loadMnistSubset } from '../src/data/mnist';
import { referenceRng } from '../src/backend/reference/rng';
import { VAE, type VAEOptions } from '../src/vae/vae';
import { parityMain } from './parity';
import { sequenceQualityMain } from './sequence-quality';

/** The posterior families of the table, as the VAE takes them (the KL estimate is the model's default unless given). */
export const FAMILIES: Record<string, Pick<VAEOptions, 'posterior' | 'kl'>> = {
  diagonal: { posterior: 'diagonal' },
  // The flow papers' code trains every posterior, the diagonal baseline too, on the sampled KL.
  'diagonal (sampled KL)': { posterior: 'diagonal', kl: 'sampled' },
  'full-covariance': { posterior: 'full-covariance' },
  'planar K=16': { posterior: { flow: 'planar', layers: 16, amortized: true } },
  'radial K=16': { posterior: { flow: 'radial', layers: 16, amortized: true } },
  'IAF K=4': { posterior: { flow: 'iaf', layers: 4, hidden: [320] } },
  // The IAF default gate bias was 1 (σ ≈ 0.73 per step at the start); kept to show what it costs.
  'IAF K=4 gate bias 1': { posterior: { flow: 'iaf', layers: 4, hidden: [320], gateBias: 1 } },
  'Sylvester orthogonal K=8 M=16': { posterior: { flow: 'sylvester-orthogonal', layers: 8, amortized: true, m: 16 } },
  'Sylvester Householder K=8 H=8': { posterior: { flow: 'sylvester-householder', layers: 8, amortized: true, householders: 8 } },
  'Sylvester triangular K=8': { posterior: { flow: 'sylvester-triangular', layers: 8, amortized: true } },
};

/** The priors-and-objectives table: the same MLP VAE with other parts. */
export const PRIOR_CONFIGS: Record<string, Partial<VAEOptions>> = {
  'diagonal, standard normal prior': { posterior: 'diagonal' },
  'diagonal, mixture prior (K=10)': { posterior: 'diagonal', prior: { kind: 'mixture', components: 10 } },
  'diagonal, MAF prior (4 layers)': { posterior: 'diagonal', prior: { kind: 'flow', flow: 'maf', layers: 4, hidden: [256] } },
  'planar K=16, standard normal prior': { posterior: { flow: 'planar', layers: 16, amortized: true } },
  'planar K=16, mixture prior (K=10)': { posterior: { flow: 'planar', layers: 16, amortized: true }, prior: { kind: 'mixture', components: 10 } },
  'planar K=16, MAF prior (4 layers)': {
    posterior: { flow: 'planar', layers: 16, amortized: true },
    prior: { kind: 'flow', flow: 'maf', layers: 4, hidden: [256] },
  },
  'diagonal, IWAE K=5': { posterior: 'diagonal', objective: { kind: 'iwae', samples: 5 } },
  'planar K=16, IWAE K=5': { posterior: { flow: 'planar', layers: 16, amortized: true }, objective: { kind: 'iwae', samples: 5 } },
};

/** The model options of a row of either table. */
function configOf(name: string): Partial<VAEOptions> {
  return FAMILIES[name] ?? PRIOR_CONFIGS[name];
}

interface Settings {
  data: 'mnist-subset' | 'fashion-mnist';
  epochs: number;
  samples: number;
  /** Test examples scored by the NLL (all when 0). */
  nllExamples: number;
  /** Results folder suffix of a suite other than the posteriors table (its budget in the name). */
  tag?: string;
}

interface RunResult {
  family: string;
  seed: number;
  settings: Settings;
  epochs: number;
  bestEpoch: number;
  stopped: string;
  trainSeconds: number;
  examplesPerSecond: number;
  validationElbo: number;
  testElbo: number;
  testNll: number;
  nllExamples: number;
  nllSeconds: number;
  /** Latent dimensions with Cov_x(E_q[z_d]) > 0.01 on the test set. */
  activeUnits?: number;
}

function loadData(name: Settings['data']): { train: Dataset; test: Dataset } {
  if (name === 'mnist-subset') return { train: loadMnistSubset({ split: 'train' }), test: loadMnistSubset({ split: 'test' }) };
  return { train: loadFashionMnist({ split: 'train' }), test: loadFashionMnist({ split: 'test' }) };
}

/** The test set binarized once, from a fixed stream, the same for every family. */
function binarizedTest(test: Dataset): Float32Array {
  const u = new Float64Array(test.x.length);
  referenceRng.uniform(2024, 0, u);
  const out = new Float32Array(test.x.length);
  binarize(test.x, Float32Array.from(u), out);
  return out;
}

async function runOne(family: string, seed: number, settings: Settings): Promise<RunResult> {
  setNumThreads(1);
  const { train, test } = loadData(settings.data);
  const vae = new VAE({
    inputDim: 784,
    latentDim: 40,
    encoder: { hidden: [300, 300], activation: 'relu' },
    decoder: { hidden: [300, 300], activation: 'relu' },
    likelihood: 'bernoulli',
    ...configOf(family),
    seed,
    backend: 'cpu',
  });
  const t0 = performance.now();
  let trained = 0;
  const fit = await vae.fit(train, {
    epochs: settings.epochs,
    batchSize: 100,
    lr: 1e-3,
    warmup: 10,
    binarize: 'dynamic',
    validation: 0.1,
    patience: 10,
    keepBest: true,
    seed,
    onEpoch: (m) => {
      trained += train.n * 0.9;
      const v = m.validation ? m.validation.elbo.toFixed(2) : '-';
      console.error(`${family} seed ${seed} epoch ${m.epoch}: train ${m.train.elbo.toFixed(2)} val ${v} (${m.examplesPerSecond.toFixed(0)} ex/s)`);
    },
  });
  const trainSeconds = (performance.now() - t0) / 1000;
  const best = fit.history.reduce((a, b) => ((b.validation?.elbo ?? -Infinity) > (a.validation?.elbo ?? -Infinity) ? b : a));
  const x = binarizedTest(test);
  const testElbo = vae.elbo(x, { samples: 1, seed: 777 }).elbo;
  const nllRows = settings.nllExamples > 0 ? Math.min(settings.nllExamples, test.n) : test.n;
  const t1 = performance.now();
  const ll = vae.logLikelihood(x.subarray(0, nllRows * 784), { samples: settings.samples, batch: 500, seed: 778 });
  const nllSeconds = (performance.now() - t1) / 1000;
  const activeUnits = vae.activeUnits(x).count;
  return {
    family,
    seed,
    settings,
    epochs: fit.history.length,
    bestEpoch: best.epoch,
    stopped: fit.stopped,
    trainSeconds,
    examplesPerSecond: trained / trainSeconds,
    validationElbo: best.validation?.elbo ?? NaN,
    testElbo,
    testNll: -ll.mean,
    nllExamples: nllRows,
    nllSeconds,
    activeUnits,
  };
}

function parseArgs(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`Unexpected argument "${a}"`);
    out[a.slice(2)] = argv[++i];
  }
  return out;
}

function resultPath(settings: Settings, family: string, seed: number): string {
  const slug = family
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/-$/, '');
  return path.join(__dirname, 'results', 'quality', settings.tag ? `${settings.data}-${settings.tag}` : settings.data, `${slug}.seed${seed}.json`);
}

function runChild(family: string, seed: number, settings: Settings): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', __filename, '--one', family, '--seed', String(seed), '--settings', JSON.stringify(settings)], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, FLOWVAE_NUM_THREADS: '1' },
    });
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${family} seed ${seed} exited with ${code}`))));
  });
}

function table(results: RunResult[], families: string[], units = false): string {
  const fmt = (xs: number[]) => {
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const half = xs.length > 1 ? (Math.max(...xs) - Math.min(...xs)) / 2 : NaN;
    return Number.isNaN(half) ? mean.toFixed(2) : `${mean.toFixed(2)} ± ${half.toFixed(2)}`;
  };
  const lines = [
    `| model | test ELBO | test NLL |${units ? ' active units |' : ''} epochs (best) per seed |`,
    `| --- | --- | --- |${units ? ' --- |' : ''} --- |`,
  ];
  for (const f of families) {
    const rs = results.filter((r) => r.family === f);
    if (rs.length === 0) continue;
    lines.push(
      `| ${f} | ${fmt(rs.map((r) => r.testElbo))} | ${fmt(rs.map((r) => r.testNll))} | ` +
        (units ? `${rs.map((r) => r.activeUnits ?? '-').join(', ')} | ` : '') +
        `${rs.map((r) => `${r.epochs} (${r.bestEpoch})`).join(', ')} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.suite === 'parity') return parityMain(args);
  if (args.suite === 'sequence') return sequenceQualityMain(args);
  const suite = args.suite ?? 'posteriors';
  if (suite !== 'posteriors' && suite !== 'priors') throw new Error(`Unknown suite "${suite}"; expected "posteriors", "priors", "sequence" or "parity"`);
  const rows = suite === 'priors' ? PRIOR_CONFIGS : FAMILIES;
  if (args.one) {
    const settings = JSON.parse(args.settings) as Settings;
    const result = await runOne(args.one, Number(args.seed), settings);
    const file = resultPath(settings, args.one, result.seed);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
    return;
  }
  const data = (args.data ?? 'mnist-subset') as Settings['data'];
  const settings: Settings = {
    data,
    epochs: Number(args.epochs ?? (data === 'mnist-subset' ? 100 : 30)),
    samples: Number(args.samples ?? 5000),
    nllExamples: Number(args['nll-examples'] ?? 0),
  };
  if (suite === 'priors') settings.tag = `priors-e${settings.epochs}-s${settings.samples}-n${settings.nllExamples}`;
  const seeds = (args.seeds ?? '0,1').split(',').map(Number);
  const families = args.families ? args.families.split(';') : Object.keys(rows);
  for (const f of families) if (!rows[f]) throw new Error(`Unknown row "${f}"; expected one of ${Object.keys(rows).join('; ')}`);
  const queue = families.flatMap((f) => seeds.map((s) => [f, s] as const)).filter(([f, s]) => !fs.existsSync(resultPath(settings, f, s)));
  const jobs = Number(args.jobs ?? 2);
  await Promise.all(
    Array.from({ length: jobs }, async () => {
      for (let next = queue.shift(); next; next = queue.shift()) await runChild(next[0], next[1], settings);
    }),
  );
  const results = families.flatMap((f) =>
    seeds
      .map((s) => resultPath(settings, f, s))
      .filter((p) => fs.existsSync(p))
      .map((p) => JSON.parse(fs.readFileSync(p, 'utf8')) as RunResult),
  );
  const markdown = table(results, families, suite === 'priors');
  console.log(markdown);
  const name = suite === 'priors' ? `quality-priors-${data}.json` : `quality-${data}.json`;
  fs.writeFileSync(path.join(__dirname, 'results', name), JSON.stringify({ settings, seeds, results }, null, 2) + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
