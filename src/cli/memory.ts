/**
 * What a `flowvae train` run will need in memory, estimated from its
 * settings before anything is allocated, so that sizes that cannot fit
 * (`--latent 100000` on 2-D data: 12 GB; `--layers 100000`: 137 M
 * parameters) are refused up front, naming the option that makes them large.
 */
import os from 'node:os';
import { backendByName } from '../backend';
import { FLOW_FAMILIES } from '../flows';
import { CliError, EXIT_USAGE } from './args';
import type { TrainSettings } from './run-folder';

/** Rows the evaluation runs at once (importance samples of one example). */
const EVAL_ROWS = 500;
const FLOAT_BYTES = 4;

function mlpParameters(sizes: readonly number[]): number {
  let n = 0;
  for (let i = 0; i + 1 < sizes.length; i++) n += (sizes[i] + 1) * sizes[i + 1];
  return n;
}

/** Parameters of the posterior's flow or covariance part and the per-row amortized parameters. */
function posteriorSizes(s: TrainSettings, trunk: number): { parameters: number; perRow: number } {
  const D = s.latent;
  if (s.posterior === 'diagonal') return { parameters: 0, perRow: 0 };
  if (s.posterior === 'full-covariance') {
    const m = (D * (D - 1)) / 2;
    return { parameters: (trunk + 1) * m, perRow: m };
  }
  const K = s.layers ?? 1;
  if (s.flow === 'iaf' || s.flow === 'maf') {
    // K MADEs D → 4D → 2D (IAF: with an encoder context of width D into the hidden layer).
    const H = 4 * D;
    const context = s.flow === 'iaf' ? D : 0;
    const made = D * H + H + context * H + 2 * D * H + 2 * D;
    return { parameters: K * made + (context > 0 ? (trunk + 1) * context : 0), perRow: K * (H + 2 * D) };
  }
  // Amortized families: the encoder head emits every layer's parameters per row.
  // Building the flow allocates nothing that grows with its size.
  const flow = FLOW_FAMILIES[s.flow!].create({ dim: D, layers: K, amortized: true, seed: 0, backend: backendByName('reference'), extra: {} });
  return { parameters: (trunk + 1) * flow.amortizedSize, perRow: flow.amortizedSize };
}

/** Bytes and parameters a run with settings `s` on rows of width `dim` needs, roughly. */
export function estimateTraining(s: TrainSettings, dim: number): { bytes: number; parameters: number } {
  const trunk = s.hidden.length > 0 ? s.hidden[s.hidden.length - 1] : dim;
  const post = posteriorSizes(s, trunk);
  const parameters =
    mlpParameters([dim, ...s.hidden]) +
    2 * (trunk + 1) * s.latent +
    post.parameters +
    mlpParameters([s.latent, ...s.hidden, dim]) +
    (s.likelihood === 'gaussian' ? dim : 0);
  // Each parameter: value, gradient and Adam's two moments. Per row: the
  // amortized parameters (head output, gradient, the flow's stash) and the
  // activations of every layer with their gradients.
  const rows = Math.max(s.batch, EVAL_ROWS);
  const widths = dim * 2 + s.hidden.reduce((a, b) => a + b, 0) * 2 + s.latent * (4 + 2 * (s.layers ?? 0));
  const bytes = FLOAT_BYTES * (4 * parameters + rows * (3 * post.perRow + 3 * widths));
  return { bytes, parameters };
}

const GB = 1024 ** 3;

/**
 * Refuses settings whose estimate exceeds 80 % of this machine's memory,
 * naming the option among --latent, --layers and --hidden whose default
 * would shrink the run most.
 */
export function checkFitsInMemory(s: TrainSettings, dim: number, defaults: { latent: number; hidden: number[]; layers: number | null }): void {
  const { bytes, parameters } = estimateTraining(s, dim);
  const limit = 0.8 * os.totalmem();
  if (bytes <= limit) return;
  const candidates: [string, TrainSettings][] = [
    [`--latent ${s.latent}`, { ...s, latent: Math.min(defaults.latent, s.latent) }],
    [`--layers ${s.layers}`, { ...s, layers: defaults.layers }],
    [`--hidden ${s.hidden.join(',')}`, { ...s, hidden: defaults.hidden }],
  ];
  const [culprit] = candidates.map(([flag, smaller]) => [flag, estimateTraining(smaller, dim).bytes] as const).reduce((a, b) => (b[1] < a[1] ? b : a));
  throw new CliError(
    `error: ${culprit} makes a model of ${parameters.toLocaleString('en-US')} parameters that needs about ${(bytes / GB).toFixed(1)} GB, ` +
      `more than this machine can give it (${(os.totalmem() / GB).toFixed(1)} GB in all); choose a smaller value`,
    EXIT_USAGE,
  );
}
