/**
 * The run folder `flowvae train` writes and `eval`, `sample` and
 * `train --resume` read:
 *
 *   model.safetensors    the model with its training state (every epoch)
 *   metrics.json         settings, per-epoch metrics, test numbers, status
 *   curves.svg           ELBO and KL per epoch (every epoch)
 *   samples.png          generated examples (at the end)
 *   reconstructions.png  test inputs beside their reconstructions (at the end)
 */
import fs from 'node:fs';
import path from 'node:path';
import { isTemporaryFile, writeFileAtomicSync } from '../io/atomic';
import type { ElboTerms } from '../vae/vae';
import { CliError, EXIT_FAILURE } from './args';

export const MODEL_FILE = 'model.safetensors';
export const METRICS_FILE = 'metrics.json';

/** Everything that defines a training run, resolved (what `--resume` reuses). */
export interface TrainSettings {
  data: string;
  testData: string | null;
  trainSize: number | null;
  testSize: number | null;
  validation: number;
  posterior: 'diagonal' | 'full-covariance' | 'flow';
  /** The KL estimate; null: the posterior's default (closed form for Gaussians, sampled with a flow). */
  kl?: 'closed-form' | 'sampled' | null;
  flow: string | null;
  layers: number | null;
  /** The prior (absent in runs of earlier versions: standard normal). */
  prior?: 'standard-normal' | 'learned-gaussian' | 'mixture' | 'flow';
  /** Mixture components, or the flow family and layers of a flow prior; null otherwise. */
  priorComponents?: number | null;
  priorFlow?: string | null;
  priorLayers?: number | null;
  /** The training objective (absent: the ELBO) and the IWAE draws per example. */
  objective?: 'elbo' | 'iwae';
  iwaeSamples?: number | null;
  latent: number;
  hidden: number[];
  likelihood: 'bernoulli' | 'gaussian';
  binarize: 'dynamic' | 'none';
  epochs: number;
  batch: number;
  lr: number;
  warmup: number;
  freeBits: number;
  seed: number;
  samples: number;
}

export interface EpochRecord {
  epoch: number;
  train: ElboTerms;
  validation?: ElboTerms;
  lr: number;
  beta: number;
  examplesPerSecond: number;
  seconds: number;
  /** Set when Ctrl-C stopped this epoch early: batches done of the epoch's total. */
  interrupted?: { batches: number; of: number };
  /** Latent dimensions with Cov_x E_q[z_d] > 0.01 on the validation set (posterior collapse shows here). */
  activeUnits?: number;
  /** KL per latent dimension on the validation set (diagonal posterior). */
  klPerDimension?: number[];
}

export interface TestRecord {
  examples: number;
  elbo: number;
  reconstruction: number;
  kl: number;
  /** Importance-sampled −log p(x), nats per example (null when interrupted). */
  nll: number | null;
  nllSamples: number;
  seconds: number;
}

export interface RunMetrics {
  flowvae: string;
  status: 'running' | 'completed' | 'interrupted';
  settings: TrainSettings;
  backend: string;
  threads: number;
  model: { description: string; parameters: number };
  data: { name: string; train: number; validation: number; test: number; dim: number; imageShape: [number, number] };
  epochs: EpochRecord[];
  /** Seconds spent in training epochs, over all sessions of the run. */
  trainSeconds: number;
  test: TestRecord | null;
}

/** The lock file of a run folder in use: the pid of the flowvae process training in it. */
export const LOCK_FILE = '.flowvae.lock';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Makes this process the only live run in `dir` (created if needed): a lock
 * file with our pid, created exclusively. A lock left by a process that no
 * longer runs (a crash, kill -9) is taken over; one held by a live process is
 * refused. The lock goes when this process exits, however it exits.
 */
export function lockRunFolder(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const lock = path.join(dir, LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = fs.openSync(lock, 'wx');
      fs.writeSync(fd, `${process.pid}\n`);
      fs.closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
      const holder = Number.parseInt(fs.readFileSync(lock, 'utf8'), 10);
      if (Number.isInteger(holder) && holder !== process.pid && alive(holder)) {
        throw new CliError(`error: ${dir} is in use by another flowvae run (pid ${holder}); wait for it to finish or pass another --out`, EXIT_FAILURE);
      }
      fs.rmSync(lock, { force: true });
    }
  }
  process.once('exit', () => fs.rmSync(lock, { force: true }));
  removeStaleTemporaries(dir);
}

/**
 * Temporary files of writes that never finished (a kill during a save of the
 * model, the metrics or the curves). Only called while holding the folder's
 * lock, so no live writer owns them.
 */
function removeStaleTemporaries(dir: string): void {
  for (const name of fs.readdirSync(dir)) if (isTemporaryFile(name)) fs.rmSync(path.join(dir, name), { force: true });
}

/**
 * A new run folder `<parent>/<date>-<time>` that no other run has: claimed
 * with an exclusive mkdir, with `-2`, `-3`, … appended when runs start in
 * the same second.
 */
export function claimNewRunFolder(parent = 'runs', now = new Date()): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  const stamp = `${now.getFullYear()}${pad(now.getMonth() + 1)}${pad(now.getDate())}-${pad(now.getHours())}${pad(now.getMinutes())}${pad(now.getSeconds())}`;
  fs.mkdirSync(parent, { recursive: true });
  for (let k = 1; ; k++) {
    const dir = path.join(parent, k === 1 ? stamp : `${stamp}-${k}`);
    try {
      fs.mkdirSync(dir);
      return dir;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

/** Writes JSON atomically (a reader never sees half a file, a kill leaves the old one). */
export function writeJsonAtomic(file: string, value: unknown): void {
  writeTextAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

export function writeTextAtomic(file: string, text: string): void {
  writeFileAtomicSync(file, Buffer.from(text, 'utf8'));
}

/** The run folder's metrics; a CliError when `dir` is not a run folder. */
export function readRunMetrics(dir: string): RunMetrics {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new CliError(`error: ${dir} is not a run folder (no such directory)`, EXIT_FAILURE);
  }
  const file = path.join(dir, METRICS_FILE);
  if (!fs.existsSync(file)) throw new CliError(`error: ${dir} is not a run folder (no ${METRICS_FILE})`, EXIT_FAILURE);
  if (!fs.existsSync(path.join(dir, MODEL_FILE))) throw new CliError(`error: ${dir} has no ${MODEL_FILE}`, EXIT_FAILURE);
  try {
    const metrics = JSON.parse(fs.readFileSync(file, 'utf8')) as RunMetrics;
    if (typeof metrics !== 'object' || metrics === null || typeof metrics.settings !== 'object' || !Array.isArray(metrics.epochs)) {
      throw new Error('missing "settings" or "epochs"');
    }
    return metrics;
  } catch (err) {
    throw new CliError(`error: ${file} is not a flowvae metrics file (${(err as Error).message})`, EXIT_FAILURE);
  }
}
