/**
 * The `flowvae` command driven as a user drives it: a child process per
 * call (src/cli/index.ts through tsx), stdout a pipe (so the plain
 * one-line-per-epoch output), files checked on disk. Budgets are tiny
 * (--train-size, --test-size, --samples) so each training takes seconds;
 * --threads 1 keeps the suite polite on a shared 2-core machine (results do
 * not depend on the thread count).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOW_FAMILIES } from '../src/flows';
import { VAE } from '../src/vae/vae';
import { estimateTraining } from '../src/cli/memory';
import { LOCK_FILE, claimNewRunFolder, type TrainSettings } from '../src/cli/run-folder';

const root = path.resolve(__dirname, '..');
const entry = path.join(root, 'src', 'cli', 'index.ts');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flowvae-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function start(args: string[]): ChildProcess {
  // FLOWVAE_BACKEND unset: the CLI picks its default backend as a user's shell would.
  const env = { ...process.env };
  delete env.FLOWVAE_BACKEND;
  return spawn(process.execPath, ['--import', 'tsx', entry, ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
}

function finish(child: ChildProcess): Promise<Result> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

function flowvae(...args: string[]): Promise<Result> {
  return finish(start(args));
}

/** A 60-row, 2-column CSV file in the test folder (tiny runs on tabular data). */
function twoColumnCsv(name: string): string {
  const file = path.join(tmp, name);
  const lines = ['a,b'];
  for (let r = 0; r < 60; r++) lines.push(`${Math.sin(r).toFixed(4)},${Math.cos(r * 1.3).toFixed(4)}`);
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

/** Resolves once a training child has logged its first epoch (its first checkpoint exists by then). */
function firstEpochLogged(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    let seen = '';
    child.stdout!.on('data', (d: Buffer) => {
      seen += d.toString();
      if (/^epoch +1\/\d+/m.test(seen)) resolve();
    });
  });
}

/** Tiny budget for the default model (planar K = 16, latent 40, MLP 300-300). */
const TINY = ['--train-size', '300', '--test-size', '20', '--samples', '8', '--threads', '1'];

function readPng(file: string): PNG {
  return PNG.sync.read(fs.readFileSync(file));
}

/** Distinct grey levels in a PNG (red channel). */
function levels(png: PNG): number {
  const seen = new Set<number>();
  for (let i = 0; i < png.data.length; i += 4) seen.add(png.data[i]);
  return seen.size;
}

/** Mean of a rectangle of the red channel. */
function meanOver(png: PNG, x0: number, y0: number, w: number, h: number): number {
  let s = 0;
  for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) s += png.data[4 * (y * png.width + x)];
  return s / (w * h);
}

describe('flowvae train (default model, tiny budget)', () => {
  const run = path.join(tmp, 'default');
  let result: Result;
  beforeAll(async () => {
    result = await flowvae('train', '--epochs', '1', ...TINY, '--out', run);
  });

  it('exits 0 and prints one line per epoch and the summary (stdout is not a terminal)', () => {
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^epoch 1\/1 {2}train ELBO -\d+\.\d\d \(KL \d+\.\d\d\) {2}val ELBO/m);
    expect(result.stdout).toMatch(/^ {2}test ELBO {7}-\d+\.\d\d nats/m);
    expect(result.stdout).toMatch(/^ {2}test NLL {8}\d+\.\d\d nats {2}\(importance sampling, 8 samples per example, 20 examples\)/m);
    // No progress-bar carriage returns in a pipe.
    expect(result.stdout).not.toContain('\r');
  });

  it('writes every file of the run folder', () => {
    for (const f of ['model.safetensors', 'metrics.json', 'samples.png', 'reconstructions.png', 'curves.svg']) {
      expect(fs.existsSync(path.join(run, f)), f).toBe(true);
    }
    // Temporary files of the atomic writes are gone.
    expect(fs.readdirSync(run).filter((f) => f.includes('.tmp'))).toEqual([]);
  });

  it('metrics.json has the settings, the epoch and the test numbers', () => {
    const m = JSON.parse(fs.readFileSync(path.join(run, 'metrics.json'), 'utf8'));
    expect(m.status).toBe('completed');
    expect(m.settings).toMatchObject({ data: 'mnist-subset', posterior: 'flow', flow: 'planar', layers: 16, latent: 40, epochs: 1 });
    expect(m.data).toMatchObject({ train: 270, validation: 30, test: 20, dim: 784, imageShape: [28, 28] });
    expect(m.epochs).toHaveLength(1);
    const e = m.epochs[0];
    expect(e.epoch).toBe(1);
    expect(e.examplesPerSecond).toBeGreaterThan(0);
    for (const v of [e.train.elbo, e.train.kl, e.validation.elbo, e.validation.kl]) expect(Number.isFinite(v)).toBe(true);
    expect(e.train.elbo).toBeLessThan(0);
    expect(m.test.examples).toBe(20);
    expect(m.test.nllSamples).toBe(8);
    // The importance-sampled bound is at least as tight as the ELBO on average; with S = 8 and one ELBO
    // sample both are noisy, so only the sign and finiteness are pinned here.
    expect(m.test.nll).toBeGreaterThan(0);
    expect(m.test.elbo).toBeLessThan(0);
    // The printed summary shows the stored numbers.
    expect(result.stdout).toContain(`test ELBO       ${m.test.elbo.toFixed(2)} nats`);
  });

  it('samples.png and reconstructions.png are valid PNGs of the documented size with real content', () => {
    const samples = readPng(path.join(run, 'samples.png'));
    // 64 samples, 8 per row, 28×28 pixels at scale 2 with 2-pixel gaps: 2 + 8 × (56 + 2) = 466.
    expect([samples.width, samples.height]).toEqual([466, 466]);
    expect(levels(samples)).toBeGreaterThan(20);
    const rec = readPng(path.join(run, 'reconstructions.png'));
    // The 20 test inputs (3 rows of 8) beside their reconstructions, 12-pixel margins:
    // 2 × 466 + 3 × 12 wide, 2 + 3 × 58 + 2 × 12 high.
    expect([rec.width, rec.height]).toEqual([968, 200]);
    const left = meanOver(rec, 12, 12, 466, 176);
    const right = meanOver(rec, 12 + 466 + 12, 12, 466, 176);
    // Both halves hold drawings (not blank white 255, not black).
    for (const m of [left, right]) {
      expect(m).toBeGreaterThan(60);
      expect(m).toBeLessThan(250);
    }
    expect(levels(rec)).toBeGreaterThan(20);
  });

  it('curves.svg is an SVG with the ELBO and KL panels', () => {
    const svg = fs.readFileSync(path.join(run, 'curves.svg'), 'utf8');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('ELBO (nats per example)');
    expect(svg).toContain('KL (nats per example)');
  });

  it('eval reproduces the test ELBO and NLL of the run exactly', async () => {
    const m = JSON.parse(fs.readFileSync(path.join(run, 'metrics.json'), 'utf8'));
    // A different thread count: results are bit-identical at any thread count.
    const r = await flowvae('eval', run, '--json', '--threads', '2');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.examples).toBe(20);
    expect(out.elbo).toBe(m.test.elbo);
    expect(out.kl).toBe(m.test.kl);
    expect(out.nll).toBe(m.test.nll);
    expect(out.nllSamples).toBe(8);
  });

  it('eval --samples changes the NLL estimate but not the ELBO', async () => {
    const m = JSON.parse(fs.readFileSync(path.join(run, 'metrics.json'), 'utf8'));
    const r = await flowvae('eval', run, '--json', '--samples', '3', '--threads', '1');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.nllSamples).toBe(3);
    expect(out.elbo).toBe(m.test.elbo);
    expect(out.nll).not.toBe(m.test.nll);
  });

  it('sample writes a PNG grid of the requested count', async () => {
    const file = path.join(tmp, 'grid.png');
    const r = await flowvae('sample', run, '-n', '10', '--columns', '5', '--out', file);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`10 examples (seed 999) -> ${file}`);
    const png = readPng(file);
    // 5 columns × 2 rows of 56-pixel cells with 2-pixel gaps.
    expect([png.width, png.height]).toEqual([2 + 5 * 58, 2 + 2 * 58]);
    expect(levels(png)).toBeGreaterThan(20);
  });
});

describe('flowvae train on a CSV file', () => {
  it('holds out a test set, picks a Gaussian likelihood for data outside [0, 1] and draws rows as scatter plots', async () => {
    const csv = path.join(tmp, 'table.csv');
    const lines = ['a,b,c,d,e,f'];
    for (let r = 0; r < 40; r++) lines.push(Array.from({ length: 6 }, (_, c) => (Math.sin(r * 1.7 + c * 0.9) * 3 + c).toFixed(4)).join(','));
    fs.writeFileSync(csv, `${lines.join('\n')}\n`);
    const run = path.join(tmp, 'csv-run');
    const r = await flowvae(
      'train',
      '--data',
      `csv:${csv}`,
      '--epochs',
      '2',
      '--batch',
      '8',
      '--hidden',
      '16',
      '--latent',
      '2',
      '--layers',
      '2',
      '--samples',
      '4',
      '--threads',
      '1',
      '--out',
      run,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const m = JSON.parse(fs.readFileSync(path.join(run, 'metrics.json'), 'utf8'));
    expect(m.settings).toMatchObject({ likelihood: 'gaussian', binarize: 'none' });
    // 20 % of 40 rows held out as the test set, 10 % of the remaining 32 for validation.
    expect(m.data).toMatchObject({ train: 29, validation: 3, test: 8, dim: 6, imageShape: [1, 6] });
    expect(m.epochs).toHaveLength(2);
    expect(Number.isFinite(m.test.nll)).toBe(true);
    // Test rows beside samples (first two columns), two 256-pixel squares.
    for (const picture of ['samples.png', 'reconstructions.png']) {
      const png = readPng(path.join(run, picture));
      expect([png.width, png.height]).toEqual([3 * 12 + 2 * 256, 2 * 12 + 256]);
      // Points drawn in both squares (left: the test rows; right: samples or reconstructions).
      for (const left of [12, 12 + 256 + 12]) {
        let marked = 0;
        for (let y = 12; y < 12 + 256; y++) for (let x = left; x < left + 256; x++) if (png.data[4 * (y * png.width + x)] < 250) marked++;
        expect(marked, `${picture} panel at x ${left}`).toBeGreaterThan(3);
      }
    }
  });

  it('picks defaults for tabular data and says so: continuous values in [0, 1] are Gaussian, binary ones Bernoulli; latent at most the width', async () => {
    const unit = path.join(tmp, 'unit.csv');
    const binary = path.join(tmp, 'binary.csv');
    const rows = (f: (r: number, c: number) => string) => ['a,b', ...Array.from({ length: 40 }, (_, r) => `${f(r, 0)},${f(r, 1)}`)].join('\n') + '\n';
    fs.writeFileSync(
      unit,
      rows((r, c) => (0.5 + 0.4 * Math.sin(r * 1.3 + c)).toFixed(4)),
    );
    fs.writeFileSync(
      binary,
      rows((r, c) => String((r + c) % 2)),
    );
    const common = ['--epochs', '1', '--warmup', '1', '--batch', '8', '--hidden', '8', '--layers', '2', '--samples', '4', '--threads', '1'];
    const a = await flowvae('train', '--data', `csv:${unit}`, ...common, '--out', path.join(tmp, 'unit-run'));
    expect(a.code).toBe(0);
    expect(a.stdout).toContain('  defaults for tabular data: likelihood gaussian (continuous values), latent 2 (the width of a row)\n');
    const unitMetrics = JSON.parse(fs.readFileSync(path.join(tmp, 'unit-run', 'metrics.json'), 'utf8'));
    expect(unitMetrics.settings).toMatchObject({ likelihood: 'gaussian', binarize: 'none', latent: 2 });
    // Posterior collapse is visible: active units per epoch in metrics.json and in the summary.
    const units = unitMetrics.epochs[0].activeUnits;
    expect(units).toBeGreaterThanOrEqual(0);
    expect(a.stdout).toContain(`  active units    ${units} of 2 (Cov_x E_q[z_d] > 0.01 on the validation set)\n`);
    const b = await flowvae('train', '--data', `csv:${binary}`, ...common, '--out', path.join(tmp, 'binary-run'));
    expect(b.code).toBe(0);
    expect(b.stdout).toContain(
      '  defaults for tabular data: likelihood bernoulli (every value is 0 or 1), no binarization (the values are 0 or 1 already), latent 2 (the width of a row)\n',
    );
    expect(JSON.parse(fs.readFileSync(path.join(tmp, 'binary-run', 'metrics.json'), 'utf8')).settings).toMatchObject({
      likelihood: 'bernoulli',
      binarize: 'none',
      latent: 2,
    });
  });

  it('--kl sampled trains a Gaussian posterior on the sampled KL, recorded in the settings and the checkpoint', async () => {
    const csv = path.join(tmp, 'table-kl.csv');
    const lines = ['a,b,c,d'];
    for (let r = 0; r < 30; r++) lines.push(Array.from({ length: 4 }, (_, c) => (Math.cos(r * 0.7 + c) * 2).toFixed(4)).join(','));
    fs.writeFileSync(csv, `${lines.join('\n')}\n`);
    const run = path.join(tmp, 'kl-run');
    const r = await flowvae(
      'train',
      '--data',
      `csv:${csv}`,
      '--posterior',
      'diagonal',
      '--kl',
      'sampled',
      '--epochs',
      '1',
      '--batch',
      '8',
      '--hidden',
      '8',
      '--latent',
      '2',
      '--samples',
      '4',
      '--threads',
      '1',
      '--out',
      run,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('diagonal Gaussian posterior (sampled KL)');
    const m = JSON.parse(fs.readFileSync(path.join(run, 'metrics.json'), 'utf8'));
    expect(m.settings).toMatchObject({ posterior: 'diagonal', kl: 'sampled' });
    expect(VAE.load(run, { backend: 'reference' }).config.kl).toBe('sampled');
  });

  it('--prior and --objective build the parts, recorded in the settings and the checkpoint', async () => {
    const run = path.join(tmp, 'parts-run');
    const r = await flowvae(
      'train',
      ...TINY,
      '--epochs',
      '1',
      '--hidden',
      '16',
      '--latent',
      '4',
      '--prior',
      'mixture',
      '--prior-components',
      '3',
      '--objective',
      'iwae',
      '--iwae-samples',
      '2',
      '--out',
      run,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('mixture prior');
    const m = JSON.parse(fs.readFileSync(path.join(run, 'metrics.json'), 'utf8'));
    expect(m.settings).toMatchObject({ prior: 'mixture', priorComponents: 3, objective: 'iwae', iwaeSamples: 2 });
    const config = VAE.load(run, { backend: 'reference' }).config;
    expect(config.prior).toEqual({ kind: 'mixture', components: 3 });
    expect(config.objective).toEqual({ kind: 'iwae', samples: 2 });
    const flowRun = path.join(tmp, 'flow-prior-run');
    const f = await flowvae(
      'train',
      ...TINY,
      '--epochs',
      '1',
      '--hidden',
      '16',
      '--latent',
      '4',
      '--prior',
      'flow',
      '--prior-flow',
      'realnvp',
      '--prior-layers',
      '2',
      '--out',
      flowRun,
    );
    expect(f.code).toBe(0);
    expect(VAE.load(flowRun, { backend: 'reference' }).config.prior).toMatchObject({ kind: 'flow', flow: 'realnvp', layers: 2 });
  });
});

describe('flowvae train --resume', () => {
  it('continues from the checkpoint: the epoch count continues and the run matches an uninterrupted one', async () => {
    const straight = path.join(tmp, 'straight');
    const split = path.join(tmp, 'split');
    const [a, b] = await Promise.all([
      flowvae('train', '--epochs', '2', ...TINY, '--out', straight),
      flowvae('train', '--epochs', '1', ...TINY, '--out', split),
    ]);
    expect(a.code).toBe(0);
    expect(b.code).toBe(0);
    const r = await flowvae('train', '--resume', split, '--epochs', '2', '--threads', '1', '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // --json: every line is one JSON object.
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(events.map((e) => e.type)).toEqual(['start', 'epoch', 'summary']);
    expect(events[0].startEpoch).toBe(1);
    expect(events[1].epoch).toBe(2);
    const resumed = JSON.parse(fs.readFileSync(path.join(split, 'metrics.json'), 'utf8'));
    const direct = JSON.parse(fs.readFileSync(path.join(straight, 'metrics.json'), 'utf8'));
    expect(resumed.epochs.map((e: { epoch: number }) => e.epoch)).toEqual([1, 2]);
    // Optimizer moments, noise offset and shuffles were restored: the second epoch is the same to the bit.
    expect(resumed.epochs[1].train).toEqual(direct.epochs[1].train);
    expect(resumed.epochs[1].validation).toEqual(direct.epochs[1].validation);
    expect(resumed.test.elbo).toBe(direct.test.elbo);
    expect(VAE.load(split).trainingState?.epoch).toBe(2);
  });

  it('refuses to change the model of a resumed run, and to train no further', async () => {
    const run = path.join(tmp, 'default');
    const r = await flowvae('train', '--resume', run, '--latent', '8', '--epochs', '2');
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('error: --latent 8 differs from the run being resumed (40); a resumed run keeps its model and data\n');
    const again = await flowvae('train', '--resume', run, '--epochs', '1');
    expect(again.code).toBe(2);
    expect(again.stderr).toBe(`error: ${run} has already trained 1 epochs; pass --epochs above 1 to train more\n`);
  });
});

describe('flowvae train, Ctrl-C', () => {
  it('SIGINT stops after the current batch, exits 130 and leaves a loadable checkpoint', async () => {
    const run = path.join(tmp, 'interrupted');
    const child = start(['train', '--epochs', '1000', '--train-size', '300', '--test-size', '20', '--threads', '1', '--out', run]);
    const done = finish(child);
    // Interrupt once the first epoch has been logged (a checkpoint exists by then).
    await firstEpochLogged(child);
    child.kill('SIGINT');
    const r = await done;
    expect(r.code).toBe(130);
    expect(r.signal).toBeNull();
    expect(r.stdout).toContain('flowvae: stopping after the current batch');
    expect(r.stdout).toMatch(/flowvae: interrupted (in epoch \d+ at batch \d+\/3|after epoch \d+); checkpoint saved to /);
    expect(r.stdout).toContain(`continue with: flowvae train --resume ${run}\n`);
    const m = JSON.parse(fs.readFileSync(path.join(run, 'metrics.json'), 'utf8'));
    expect(m.status).toBe('interrupted');
    expect(m.test).toBeNull();
    // The checkpoint loads, with the training state of the last epoch and, when
    // the interruption came mid-epoch, the batches done of the next one.
    const vae = VAE.load(run);
    const state = vae.trainingState!;
    const partial = m.epochs[m.epochs.length - 1].interrupted;
    expect(state.epoch + (partial ? 1 : 0)).toBe(m.epochs.length);
    expect(state.batch).toBe(partial ? partial.batches : 0);
    expect(m.epochs.length).toBeGreaterThanOrEqual(1);
    expect(Number.isFinite(vae.elbo(vae.sample(4)).elbo)).toBe(true);
  });
});

describe('flowvae train: a run folder belongs to one live run', () => {
  const csv = twoColumnCsv('lock.csv');
  const small = ['--data', `csv:${csv}`, '--batch', '8', '--hidden', '8', '--latent', '2', '--layers', '2', '--samples', '4', '--threads', '1'];

  it('default names never collide: runs started in the same second get -2, -3', () => {
    const parent = path.join(tmp, 'same-second');
    const now = new Date(2026, 11, 6, 14, 30, 5);
    expect([claimNewRunFolder(parent, now), claimNewRunFolder(parent, now), claimNewRunFolder(parent, now)]).toEqual(
      ['20261206-143005', '20261206-143005-2', '20261206-143005-3'].map((d) => path.join(parent, d)),
    );
  });

  it('a second run in a live run folder is refused; a lock left by a killed run is taken over and its temporary files removed', async () => {
    const run = path.join(tmp, 'locked');
    const first = start(['train', '--epochs', '100000', ...small, '--out', run]);
    const firstDone = finish(first);
    await firstEpochLogged(first);
    const second = await flowvae('train', '--epochs', '2', ...small, '--out', run);
    expect(second.code).toBe(1);
    expect(second.stderr).toBe(`error: ${run} is in use by another flowvae run (pid ${first.pid}); wait for it to finish or pass another --out\n`);
    first.kill('SIGKILL');
    await firstDone;
    expect(fs.existsSync(path.join(run, LOCK_FILE))).toBe(true);
    // What a kill in the middle of a save leaves behind.
    fs.writeFileSync(path.join(run, `.model.safetensors.${first.pid}.0123456789ab.tmp`), 'partial');
    fs.writeFileSync(path.join(run, `.metrics.json.${first.pid}.ba9876543210.tmp`), 'partial');
    const epochs = JSON.parse(fs.readFileSync(path.join(run, 'metrics.json'), 'utf8')).epochs.length;
    const resumed = await flowvae('train', '--resume', run, '--epochs', String(epochs + 1));
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    expect(fs.readdirSync(run).filter((f) => f.includes('.tmp') || f === LOCK_FILE)).toEqual([]);
  });

  it('a run killed during its final evaluation is finished by --resume (test numbers and pictures), and only then refused', async () => {
    const run = path.join(tmp, 'killed-in-test');
    expect((await flowvae('train', '--epochs', '2', ...small, '--out', run)).code).toBe(0);
    // What a kill during the test NLL leaves: status running, no test record, no pictures.
    const file = path.join(run, 'metrics.json');
    const m = JSON.parse(fs.readFileSync(file, 'utf8'));
    fs.writeFileSync(file, JSON.stringify({ ...m, status: 'running', test: null }));
    fs.rmSync(path.join(run, 'samples.png'));
    fs.rmSync(path.join(run, 'reconstructions.png'));
    const r = await flowvae('train', '--resume', run);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('flowvae: training is complete (2 epochs); finishing the test evaluation and pictures');
    const done = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(done.status).toBe('completed');
    expect(done.epochs).toHaveLength(2);
    expect(done.test.nll).toBe(m.test.nll);
    expect(fs.existsSync(path.join(run, 'samples.png')) && fs.existsSync(path.join(run, 'reconstructions.png'))).toBe(true);
    const again = await flowvae('train', '--resume', run);
    expect(again.code).toBe(2);
    expect(again.stderr).toBe(`error: ${run} has already trained 2 epochs; pass --epochs above 2 to train more\n`);
  });

  it('killed between the epoch record and the model save, a resumed run still has every epoch once', async () => {
    const run = path.join(tmp, 'record-then-model');
    expect((await flowvae('train', '--epochs', '2', ...small, '--out', run)).code).toBe(0);
    const model2 = fs.readFileSync(path.join(run, 'model.safetensors'));
    expect((await flowvae('train', '--resume', run, '--epochs', '3')).code).toBe(0);
    const third = JSON.parse(fs.readFileSync(path.join(run, 'metrics.json'), 'utf8')).epochs[2];
    // The state a kill leaves after epoch 3's record was written but not its model.
    fs.writeFileSync(path.join(run, 'model.safetensors'), model2);
    expect((await flowvae('train', '--resume', run, '--epochs', '4')).code).toBe(0);
    const m = JSON.parse(fs.readFileSync(path.join(run, 'metrics.json'), 'utf8'));
    expect(m.epochs.map((e: { epoch: number }) => e.epoch)).toEqual([1, 2, 3, 4]);
    // Epoch 3 was trained again from the epoch-2 checkpoint: the same numbers.
    expect(m.epochs[2].train).toEqual(third.train);
  });
});

describe('flowvae train, closed output and SIGTERM', () => {
  const csv = twoColumnCsv('pipe.csv');
  const small = ['--batch', '8', '--hidden', '8', '--latent', '2', '--layers', '2', '--samples', '4', '--threads', '1'];

  it('a reader that closes stdout (flowvae train | head -1) does not stop the run', async () => {
    const run = path.join(tmp, 'closed-stdout');
    const child = start(['train', '--data', `csv:${csv}`, '--epochs', '20', ...small, '--out', run]);
    // Read the first line, then close the pipe as head does.
    child.stdout!.once('data', () => child.stdout!.destroy());
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const m = JSON.parse(fs.readFileSync(path.join(run, 'metrics.json'), 'utf8'));
    expect(m.status).toBe('completed');
    expect(m.epochs).toHaveLength(20);
  });

  it('says when the KL warm-up is longer than the run', async () => {
    const r = await flowvae('train', '--data', `csv:${csv}`, '--epochs', '4', ...small, '--out', path.join(tmp, 'short-warmup'));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      '  note: the KL warm-up (10 epochs) is longer than the run (4): β ends at 0.40, so the model never trains on the full ELBO (pass --warmup 4 or less)\n',
    );
    const fine = await flowvae('train', '--data', `csv:${csv}`, '--epochs', '4', '--warmup', '4', ...small, '--out', path.join(tmp, 'fitting-warmup'));
    expect(fine.stdout).not.toContain('note: the KL warm-up');
  });

  it('--threads beyond the cores uses the cores and says so', async () => {
    const run = path.join(tmp, 'many-threads');
    const args = ['train', '--data', `csv:${csv}`, '--epochs', '1', ...small.filter((a, i, all) => a !== '--threads' && all[i - 1] !== '--threads')];
    const r = await flowvae(...args, '--threads', '1000', '--out', run);
    const cores = os.availableParallelism();
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(cores < 1000 ? `flowvae: --threads 1000 is more than the ${cores} cores here; using ${cores}\n` : '');
    expect(JSON.parse(fs.readFileSync(path.join(run, 'metrics.json'), 'utf8')).threads).toBe(Math.min(cores, 1000));
  });

  it('SIGTERM stops after the current batch and exits 143 (128 + 15)', async () => {
    const run = path.join(tmp, 'terminated');
    const child = start(['train', '--data', `csv:${csv}`, '--epochs', '100000', ...small, '--out', run]);
    const done = finish(child);
    await firstEpochLogged(child);
    child.kill('SIGTERM');
    const r = await done;
    expect(r.code).toBe(143);
    expect(r.signal).toBeNull();
    expect(JSON.parse(fs.readFileSync(path.join(run, 'metrics.json'), 'utf8')).status).toBe('interrupted');
  });
});

describe.concurrent('flowvae command line errors', () => {
  // Each case: arguments, exit code, the one line on stderr.
  const cases: [string[], number, string][] = [
    [['train', '--epoch', '3'], 2, `error: unknown option '--epoch' (Did you mean --epochs?) (see "flowvae train --help")`],
    [['train', '--epochs', '0'], 2, `error: option '--epochs <n>' argument '0' is invalid. Expected a positive integer. (see "flowvae train --help")`],
    [['train', '--lr', 'fast'], 2, `error: option '--lr <rate>' argument 'fast' is invalid. Expected a number in (0, 10]. (see "flowvae train --help")`],
    // The library's limit, refused as a bad option value before any run folder is made.
    [['train', '--lr', '1e10'], 2, `error: option '--lr <rate>' argument '1e10' is invalid. Expected a number in (0, 10]. (see "flowvae train --help")`],
    [
      ['train', '--hidden', '300,x'],
      2,
      `error: option '--hidden <widths>' argument '300,x' is invalid. Expected comma-separated positive integers, e.g. 300,300. (see "flowvae train --help")`,
    ],
    [
      ['train', '--data', 'mnist'],
      2,
      `error: option '--data <source>' argument 'mnist' is invalid. Expected mnist-subset | fashion-mnist | idx:<dir> | csv:<file> | npy:<file>. (see "flowvae train --help")`,
    ],
    [
      ['train', '--flow', 'planr'],
      2,
      `error: option '--flow <family>' argument 'planr' is invalid. Allowed choices are ${Object.keys(FLOW_FAMILIES).join(', ')}. (see "flowvae train --help")`,
    ],
    [['train', '--posterior', 'diagonal', '--flow', 'radial'], 2, 'error: --flow needs --posterior flow, but --posterior is diagonal'],
    [['train', '--kl', 'closed-form'], 2, 'error: --kl closed-form needs --posterior diagonal or full-covariance; a flow posterior has no closed-form KL'],
    [['train', '--prior-components', '4'], 2, 'error: --prior-components needs --prior mixture, but --prior is standard-normal'],
    [['train', '--prior', 'mixture', '--prior-flow', 'maf'], 2, 'error: --prior-flow needs --prior flow, but --prior is mixture'],
    [['train', '--iwae-samples', '3'], 2, 'error: --iwae-samples needs --objective iwae, but --objective is elbo'],
    [['train', '--objective', 'iwae', '--free-bits', '0.5'], 2, 'error: --free-bits applies to the ELBO objective, not to --objective iwae'],
    [
      ['train', '--posterior', 'diagonal', '--kl', 'closed-form', '--prior', 'learned-gaussian'],
      2,
      'error: --kl closed-form needs the standard-normal prior and the ELBO objective',
    ],
    [
      ['train', '--kl', 'exact'],
      2,
      `error: option '--kl <estimate>' argument 'exact' is invalid. Allowed choices are closed-form, sampled. (see "flowvae train --help")`,
    ],
    [['train', 'extra'], 2, `error: too many arguments for 'train'. Expected 0 arguments but got 1. (see "flowvae train --help")`],
    [['trian'], 2, `error: unknown command 'trian' (Did you mean train?) (see "flowvae --help")`],
    [['eval'], 2, `error: missing required argument 'run' (see "flowvae eval --help")`],
    // Sizes that cannot fit are refused before anything is allocated, naming the option. Parameters:
    // encoder 785·300 + 301·300, heads 2·301·1e5, planar head 301·16·(2e5 + 1), decoder 100001·300 + 301·300 + 301·784.
    [
      ['train', '--latent', '100000'],
      2,
      `error: --latent 100000 makes a model of 1,054,057,200 parameters that needs about 53.7 GB, more than this machine can give it (${(os.totalmem() / 1024 ** 3).toFixed(1)} GB in all); choose a smaller value`,
    ],
    // cuda is a choice like the others; without the CUDA build it is refused with the reason.
    [
      ['train', '--backend', 'cuda', '--epochs', '1'],
      1,
      'error: Backend "cuda" is unavailable: this build has no CUDA support (build with cmake-js and FLOWVAE_CUDA=1)',
    ],
    // The bytes are PNG whatever the name: a .jpg name is refused rather than written with PNG bytes.
    [
      ['sample', 'x', '--out', 'x.jpg'],
      2,
      `error: option '--out <file>' argument 'x.jpg' is invalid. Expected a file name ending in .png (pictures are written as PNG). (see "flowvae sample --help")`,
    ],
    [['sample', 'x', '-n', '-3'], 2, `error: option '-n, --count <n>' argument '-3' is invalid. Expected a positive integer. (see "flowvae sample --help")`],
  ];
  for (const [args, code, line] of cases) {
    it(`flowvae ${args.join(' ')}`, async () => {
      const r = await flowvae(...args);
      expect(r.code).toBe(code);
      expect(r.stderr).toBe(`${line}\n`);
      expect(r.stdout).toBe('');
    });
  }

  it('a bad environment variable is a usage error (exit 2) naming the variable, before any run folder exists', async () => {
    const run = path.join(tmp, 'env-run');
    const child = spawn(process.execPath, ['--import', 'tsx', entry, 'train', '--epochs', '1', '--out', run], {
      cwd: root,
      env: { ...process.env, FLOWVAE_BACKEND: '', FLOWVAE_SIMD: 'avx9' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const r = await finish(child);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'error: Expected one of "scalar", "avx2", "avx512" (a cap on the vector instructions used) for the environment variable FLOWVAE_SIMD but received "avx9"\n',
    );
    expect(fs.existsSync(run)).toBe(false);
  });

  it('a missing run folder and a bad data file fail with exit code 1 and one line', async () => {
    const missing = path.join(tmp, 'no-such-run');
    const r = await flowvae('eval', missing);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: ${missing} is not a run folder (no such directory)\n`);
    const csv = path.join(tmp, 'bad.csv');
    fs.writeFileSync(csv, '0.1,0.2\n0.3,nan\n0.5,0.6\n');
    const bad = await flowvae('train', '--data', `csv:${csv}`, '--out', path.join(tmp, 'bad-run'));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(`error: ${csv}: row 1, column 1 is NaN (line 2, field 2)\n`);
  });

  it('--help works on the program and on every subcommand', async () => {
    const top = await flowvae('--help');
    expect(top.code).toBe(0);
    for (const c of ['train', 'eval', 'sample', 'fit2d', 'backends', 'bench']) expect(top.stdout).toContain(`  ${c} `);
    const helps = await Promise.all(['train', 'eval', 'sample', 'fit2d', 'backends', 'bench'].map((c) => flowvae(c, '--help')));
    helps.forEach((h, i) => {
      expect(h.code).toBe(0);
      expect(h.stdout).toContain(`Usage: flowvae ${['train', 'eval', 'sample', 'fit2d', 'backends', 'bench'][i]}`);
    });
    expect(helps[0].stdout).toContain('--free-bits <nats>');
  });
});

describe('flowvae fit2d', () => {
  it('fits U1 by reverse KL, writes the three-panel picture and reports the reverse KL', async () => {
    const file = path.join(tmp, 'u1.png');
    const r = await flowvae(
      'fit2d',
      '--target',
      'u1',
      '--flow',
      'planar',
      '--layers',
      '8',
      '--steps',
      '400',
      '--warmup',
      '0',
      '--kl-samples',
      '4000',
      '--threads',
      '1',
      '--out',
      file,
      '--json',
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(events[0]).toMatchObject({ type: 'start', target: 'U1', flow: 'planar', layers: 8, steps: 400 });
    const progress = events.filter((e) => e.type === 'progress');
    expect(progress.map((e) => e.step)).toEqual([40, 80, 120, 160, 200, 240, 280, 320, 360, 400]);
    // The loss (mean of log q − log p̃ over a window) falls as the fit improves.
    expect(progress[9].loss).toBeLessThan(progress[0].loss - 0.5);
    const summary = events[events.length - 1];
    expect(summary.type).toBe('summary');
    // log Z of U1 by quadrature (test/targets2d.test.ts pins it); KL ≥ 0 up to its Monte Carlo error.
    expect(summary.logZ).toBeCloseTo(1.8775, 3);
    expect(summary.reverseKL).toBeGreaterThan(-4 * summary.standardError);
    expect(summary.reverseKL).toBeLessThan(2);
    const png = readPng(file);
    // Three 256-pixel panels with 8-pixel margins.
    expect([png.width, png.height]).toEqual([3 * 256 + 4 * 8, 256 + 2 * 8]);
    // The target panel is a viridis heatmap: dark purple (68, 1, 84) far out, bright where U1 has its mass (|z| = 2, z1 = ±2).
    const at = (x: number, y: number) => Array.from(png.data.subarray(4 * (y * png.width + x), 4 * (y * png.width + x) + 3));
    expect(at(8 + 5, 8 + 5)).toEqual([68, 1, 84]);
    // z = (2, 0) (column (2 + 4)/8 × 256 = 192, row 128) lies on U1's mass; z = (0, 2) (column 128, row 64) on
    // the ring but between the two lobes, where the density is e^-4.9 of the peak. The colour scale is shared
    // with the fit, so only the order is pinned: transposed or flipped axes would swap them.
    expect(at(8 + 192, 8 + 128)[1]).toBeGreaterThan(at(8 + 128, 8 + 64)[1] + 40);
  });

  it('rejects an unknown target', async () => {
    const r = await flowvae('fit2d', '--target', 'u9');
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `error: option '--target <name>' argument 'u9' is invalid. Allowed choices are u1, u2, u3, u4, two-moons, rings, eight-gaussians, ring-radius. (see "flowvae fit2d --help")\n`,
    );
  });

  it('fits the conditional ring-radius target by maximum likelihood and pictures q(x | c) at three contexts', async () => {
    const file = path.join(tmp, 'ring.png');
    const r = await flowvae('fit2d', '--target', 'ring-radius', '--layers', '2', '--steps', '400', '--threads', '1', '--out', file, '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const events = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(events[0]).toMatchObject({ type: 'start', target: 'ring-radius', flow: 'spline-coupling', epochs: 5 });
    const summary = events[events.length - 1];
    // 5 epochs of a 2-layer spline flow come within 0.12 nats of the exact conditional log-likelihood (26 epochs of 4 layers: 0.07).
    expect(summary.gap).toBeGreaterThan(-0.05);
    expect(summary.gap).toBeLessThan(1);
    const png = readPng(file);
    expect([png.width, png.height]).toEqual([4 * 256 + 5 * 8, 256 + 2 * 8]);
  });

  it('refuses a flow that takes no context for a conditional target', async () => {
    const r = await flowvae('fit2d', '--target', 'ring-radius', '--flow', 'planar');
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'error: --flow planar takes no context; --target ring-radius needs one of maf, iaf, realnvp, nice, glow, spline-coupling, spline-autoregressive\n',
    );
  });
});

describe('flowvae bench', () => {
  it('runs bench/index.ts from a clone (an unknown suite is its error and exit code)', async () => {
    const r = await flowvae('bench', 'no-such-suite');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Unknown benchmark suite "no-such-suite"; expected one of dense, kernels, flows');
  });
});

describe('flowvae backends', () => {
  it('lists every backend with its availability, as text and as JSON', async () => {
    const [text, json] = await Promise.all([flowvae('backends'), flowvae('backends', '--json')]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^ {2}reference .*available: float64/m);
    const parsed = JSON.parse(json.stdout);
    expect(parsed.backends.map((b: { name: string }) => b.name)).toEqual(['reference', 'cpu', 'cuda']);
    for (const b of parsed.backends) {
      if (!b.available) expect(text.stdout).toContain(`unavailable: ${b.reason}`);
    }
  });
});

describe('the memory estimate of flowvae train', () => {
  const base: TrainSettings = {
    data: 'x',
    testData: null,
    trainSize: null,
    testSize: null,
    validation: 0.1,
    posterior: 'flow',
    kl: null,
    flow: 'planar',
    layers: 3,
    latent: 4,
    hidden: [7, 5],
    likelihood: 'bernoulli',
    binarize: 'none',
    epochs: 1,
    batch: 10,
    lr: 1e-3,
    warmup: 0,
    freeBits: 0,
    seed: 1,
    samples: 4,
  };
  const cases: Partial<TrainSettings>[] = [
    { posterior: 'diagonal', flow: null, layers: null },
    { posterior: 'full-covariance', flow: null, layers: null, likelihood: 'gaussian' },
    { flow: 'planar' },
    { flow: 'radial', hidden: [6] },
    { flow: 'sylvester-orthogonal' },
    { flow: 'sylvester-householder' },
    { flow: 'sylvester-triangular' },
    { flow: 'iaf', layers: 2 },
    { flow: 'maf', layers: 2 },
  ];
  for (const c of cases) {
    const s = { ...base, ...c };
    it(`counts the parameters a built model has: ${s.posterior} ${s.flow ?? ''}`, () => {
      const vae = new VAE({
        inputDim: 9,
        latentDim: s.latent,
        encoder: { hidden: s.hidden },
        decoder: { hidden: s.hidden },
        likelihood: s.likelihood as 'bernoulli' | 'gaussian',
        posterior: s.posterior === 'flow' ? { flow: s.flow!, layers: s.layers! } : s.posterior,
        backend: 'reference',
      });
      expect(estimateTraining(s, 9).parameters).toBe(vae.parameters().reduce((n, p) => n + p.value.length, 0));
    });
  }
});
