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

/** Writes JSON to a temporary file and renames it (a reader never sees half a file). */
export function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  fs.renameSync(tmp, file);
}

export function writeTextAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
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
