/**
 * `npm run quality -- --suite parity [--families a,b] [--seeds 0,1] [--epochs 40] [--samples 1000] [--jobs 2]`
 *
 * Training parity with PyTorch: flowvae's VAE and its PyTorch twin
 * (bench/peers/vae_torch.py) trained under one protocol on the bundled MNIST
 * subset, binarized once at 0.5:
 *
 *   MLP 784-300-300-40 ReLU, Bernoulli decoder, Adam lr 1e-3, batch 100,
 *   KL warm-up β = min(1, epoch/10) counted from epoch 1, 40 epochs, the last
 *   800 training digits as the validation set (the other 7200 train), the
 *   best validation epoch kept, test NLL by 1000 importance samples on all
 *   2000 test digits.
 *
 * Each (side, family, seed) runs in its own process on one thread and writes
 * bench/results/quality/parity/<family>.<side>.seed<s>.json, so an
 * interrupted run resumes. Prints the per-epoch train/validation ELBO of both
 * sides (means over seeds) and the final table, and writes
 * bench/results/quality-parity.json.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setNumThreads } from '../src/backend';
import { binarizeThreshold } from '../src/data/binarize';
import { loadMnistSubset } from '../src/data/mnist';
import { VAE, type VAEOptions } from '../src/vae/vae';
import { PYTHON } from './common';

/** The posteriors of the suite as flowvae takes them; the twin builds the same ones by name. */
export const PARITY_FAMILIES: Record<string, VAEOptions['posterior']> = {
  diagonal: 'diagonal',
  planar: { flow: 'planar', layers: 16, amortized: true },
  radial: { flow: 'radial', layers: 16, amortized: true },
  iaf: { flow: 'iaf', layers: 4, hidden: [320] },
  'sylvester-orthogonal': { flow: 'sylvester-orthogonal', layers: 16, amortized: true, m: 20 },
};

interface Protocol {
  epochs: number;
  samples: number;
  validation: number;
}

interface EpochRecord {
  epoch: number;
  beta: number;
  train: number;
  validation: number;
  seconds: number;
}

interface ParityResult {
  side: 'flowvae' | 'pytorch';
  family: string;
  seed: number;
  protocol: Protocol;
  history: EpochRecord[];
  bestEpoch: number;
  testElbo: number;
  testNll: number;
  nllSeconds: number;
}

const DATA_DIR = path.join(__dirname, '..', 'data', 'mnist-subset');
const RESULTS = path.join(__dirname, 'results', 'quality', 'parity');

function binarized(split: 'train' | 'test'): Float32Array {
  const d = loadMnistSubset({ split });
  const out = new Float32Array(d.x.length);
  binarizeThreshold(d.x, out, 0.5);
  return out;
}

async function runFlowvae(family: string, seed: number, protocol: Protocol): Promise<ParityResult> {
  setNumThreads(1);
  const all = binarized('train');
  const nVal = protocol.validation;
  const nTrain = all.length / 784 - nVal;
  const train = all.subarray(0, nTrain * 784);
  const validation = all.subarray(nTrain * 784);
  const test = binarized('test');
  const vae = new VAE({ inputDim: 784, latentDim: 40, posterior: PARITY_FAMILIES[family], seed, backend: 'cpu' });
  const history: EpochRecord[] = [];
  const fit = await vae.fit(train, {
    epochs: protocol.epochs,
    batchSize: 100,
    lr: 1e-3,
    warmup: 10,
    warmupStep: 'epoch',
    validation,
    keepBest: true,
    seed,
    onEpoch: (m) => {
      history.push({ epoch: m.epoch, beta: m.beta, train: m.train.elbo, validation: m.validation!.elbo, seconds: m.seconds });
      console.error(`flowvae ${family} seed ${seed} epoch ${m.epoch}: train ${m.train.elbo.toFixed(2)} val ${m.validation!.elbo.toFixed(2)}`);
    },
  });
  const best = fit.history.reduce((a, b) => (b.validation!.elbo > a.validation!.elbo ? b : a));
  const testElbo = vae.elbo(test, { samples: 1, seed: 777 }).elbo;
  const t0 = performance.now();
  const ll = vae.logLikelihood(test, { samples: protocol.samples, batch: 500, seed: 778 });
  return {
    side: 'flowvae',
    family,
    seed,
    protocol,
    history,
    bestEpoch: best.epoch,
    testElbo,
    testNll: -ll.mean,
    nllSeconds: (performance.now() - t0) / 1000,
  };
}

/** Runs the twin; its stdout is one JSON line per epoch, then the final line. */
function runPytorch(family: string, seed: number, protocol: Protocol): Promise<ParityResult> {
  const spec = {
    mode: 'train',
    posterior: family,
    seed,
    epochs: protocol.epochs,
    samples: protocol.samples,
    validation: protocol.validation,
    data: DATA_DIR,
    threads: 1,
  };
  return new Promise((resolve, reject) => {
    const env = {
      ...process.env,
      OMP_NUM_THREADS: '1',
      OPENBLAS_NUM_THREADS: '1',
      MALLOC_MMAP_THRESHOLD_: '1073741824',
      MALLOC_TRIM_THRESHOLD_: '1073741824',
      MALLOC_TOP_PAD_: '268435456',
    };
    const child = spawn(PYTHON, [path.join(__dirname, 'peers', 'vae_torch.py'), JSON.stringify(spec)], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    const history: EpochRecord[] = [];
    let final: { testElbo: number; testNll: number; nllSeconds: number } | null = null;
    let pending = '';
    child.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = JSON.parse(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
        if (line.final) final = line;
        else {
          history.push(line);
          console.error(`pytorch ${family} seed ${seed} epoch ${line.epoch}: train ${line.train.toFixed(2)} val ${line.validation.toFixed(2)}`);
        }
      }
    });
    child.on('exit', (code) => {
      if (code !== 0 || !final) return reject(new Error(`pytorch ${family} seed ${seed} exited with ${code}`));
      const best = history.reduce((a, b) => (b.validation > a.validation ? b : a));
      const f = final as { testElbo: number; testNll: number; nllSeconds: number };
      resolve({ side: 'pytorch', family, seed, protocol, history, bestEpoch: best.epoch, testElbo: f.testElbo, testNll: f.testNll, nllSeconds: f.nllSeconds });
    });
  });
}

function resultPath(side: string, family: string, seed: number): string {
  return path.join(RESULTS, `${family}.${side}.seed${seed}.json`);
}

function runChild(side: string, family: string, seed: number, protocol: Protocol): Promise<void> {
  return new Promise((resolve, reject) => {
    const args = ['--import', 'tsx', __filename, '--one', side, '--family', family, '--seed', String(seed), '--protocol', JSON.stringify(protocol)];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, FLOWVAE_NUM_THREADS: '1' } });
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${side} ${family} seed ${seed} exited with ${code}`))));
  });
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const spread = (xs: number[]) => (xs.length > 1 ? `${mean(xs).toFixed(2)} ± ${((Math.max(...xs) - Math.min(...xs)) / 2).toFixed(2)}` : mean(xs).toFixed(2));

function report(results: ParityResult[], families: string[]): string {
  const lines: string[] = [];
  for (const f of families) {
    const fv = results.filter((r) => r.family === f && r.side === 'flowvae');
    const pt = results.filter((r) => r.family === f && r.side === 'pytorch');
    if (fv.length === 0 || pt.length === 0) continue;
    lines.push(`\n${f}: per-epoch ELBO, mean over seeds (train | validation)`);
    lines.push('epoch  beta   flowvae train  pytorch train   flowvae val  pytorch val');
    const epochs = Math.min(...[...fv, ...pt].map((r) => r.history.length));
    for (let e = 0; e < epochs; e++) {
      const at = (rs: ParityResult[], k: 'train' | 'validation') =>
        mean(rs.map((r) => r.history[e][k]))
          .toFixed(2)
          .padStart(13);
      lines.push(
        `${String(e + 1).padStart(5)}  ${fv[0].history[e].beta.toFixed(1)}  ${at(fv, 'train')}  ${at(pt, 'train')}  ${at(fv, 'validation')}  ${at(pt, 'validation')}`,
      );
    }
  }
  lines.push(
    '',
    '| posterior | flowvae test ELBO | PyTorch test ELBO | flowvae test NLL | PyTorch test NLL | NLL difference | best epochs (flowvae; PyTorch) |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const f of families) {
    const fv = results.filter((r) => r.family === f && r.side === 'flowvae');
    const pt = results.filter((r) => r.family === f && r.side === 'pytorch');
    if (fv.length === 0 || pt.length === 0) continue;
    const diff = mean(fv.map((r) => r.testNll)) - mean(pt.map((r) => r.testNll));
    lines.push(
      `| ${f} | ${spread(fv.map((r) => r.testElbo))} | ${spread(pt.map((r) => r.testElbo))} | ${spread(fv.map((r) => r.testNll))} | ` +
        `${spread(pt.map((r) => r.testNll))} | ${diff >= 0 ? '+' : ''}${diff.toFixed(2)} | ${fv.map((r) => r.bestEpoch).join(', ')}; ${pt.map((r) => r.bestEpoch).join(', ')} |`,
    );
  }
  return lines.join('\n');
}

export async function parityMain(args: Record<string, string>): Promise<void> {
  if (args.one) {
    const protocol = JSON.parse(args.protocol) as Protocol;
    const seed = Number(args.seed);
    const result = args.one === 'flowvae' ? await runFlowvae(args.family, seed, protocol) : await runPytorch(args.family, seed, protocol);
    fs.mkdirSync(RESULTS, { recursive: true });
    fs.writeFileSync(resultPath(args.one, args.family, seed), JSON.stringify(result, null, 2) + '\n');
    return;
  }
  const protocol: Protocol = { epochs: Number(args.epochs ?? 40), samples: Number(args.samples ?? 1000), validation: 800 };
  const seeds = (args.seeds ?? '0,1').split(',').map(Number);
  const families = args.families ? args.families.split(',') : Object.keys(PARITY_FAMILIES);
  for (const f of families) if (!PARITY_FAMILIES[f]) throw new Error(`Unknown family "${f}"; expected one of ${Object.keys(PARITY_FAMILIES).join(', ')}`);
  const same = (p: string) => {
    const r = JSON.parse(fs.readFileSync(p, 'utf8')) as ParityResult;
    return JSON.stringify(r.protocol) === JSON.stringify(protocol);
  };
  const queue = families.flatMap((f) => seeds.flatMap((s) => (['flowvae', 'pytorch'] as const).map((side) => [side, f, s] as const)));
  const todo = queue.filter(([side, f, s]) => !(fs.existsSync(resultPath(side, f, s)) && same(resultPath(side, f, s))));
  const jobs = Number(args.jobs ?? 2);
  await Promise.all(
    Array.from({ length: jobs }, async () => {
      for (let next = todo.shift(); next; next = todo.shift()) await runChild(next[0], next[1], next[2], protocol);
    }),
  );
  const results = queue
    .map(([side, f, s]) => resultPath(side, f, s))
    .filter((p) => fs.existsSync(p) && same(p))
    .map((p) => JSON.parse(fs.readFileSync(p, 'utf8')) as ParityResult);
  const text = report(results, families);
  console.log(text);
  fs.writeFileSync(path.join(__dirname, 'results', 'quality-parity.json'), JSON.stringify({ protocol, seeds, families, results }, null, 2) + '\n');
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const args: Record<string, string> = {};
  for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
  parityMain(args).catch((e) => {
    console.error(e);
    process.exitCode = 1;
  });
}
