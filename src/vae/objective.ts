/**
 * The VAE's training objective, as per-row weights of its terms.
 *
 * - `elbo` (default): mean over examples of log p(x | z) − β·KL, one
 *   posterior draw per example; free bits λ hold the KL term constant (no
 *   gradient) while the batch's mean KL is below λ · latentDim.
 * - `iwae` (Burda et al. 2016): K draws per example,
 *   L_K = log (1/K) Σ_k w_k with log w_k = log p(x | z_k) + β (log p(z_k) − log q(z_k | x));
 *   its gradient weighs each draw by softmax_k(log w_k). K = 1 is the ELBO
 *   with the sampled KL, exactly. β < 1 tempers the KL part of the weights
 *   during warm-up as it does for the ELBO.
 *
 * Rows are laid out example-major: the draws of example i are rows i·K … i·K + K − 1.
 */
import type { FloatArray } from '../backend/types';
import { expected, rangeError, typeError } from '../errors';
import type { ElboTerms } from '../train/fit';
import { checkKnownKeys, checkOneOf, checkPositiveInt } from '../validate';
import { logSumExp } from './likelihood';

export type ObjectiveSpec = 'elbo' | 'iwae' | { kind: 'elbo' } | { kind: 'iwae'; samples?: number };
export type ResolvedObjective = { kind: 'elbo' } | { kind: 'iwae'; samples: number };

export function resolveObjective(value: ObjectiveSpec | undefined): ResolvedObjective {
  const spec = value ?? 'elbo';
  if (typeof spec === 'string') {
    const kind = checkOneOf(spec, 'objective', ['elbo', 'iwae'] as const);
    return kind === 'elbo' ? { kind } : { kind, samples: 5 };
  }
  if (typeof spec !== 'object' || spec === null) throw typeError(expected('"elbo", "iwae" or { kind, samples }', 'objective', spec));
  const kind = checkOneOf(spec.kind, 'objective.kind', ['elbo', 'iwae'] as const);
  if (kind === 'elbo') {
    checkKnownKeys(spec, 'objective', ['kind']);
    return { kind };
  }
  checkKnownKeys(spec, 'objective', ['kind', 'samples']);
  return { kind, samples: checkPositiveInt((spec as { samples?: number }).samples ?? 5, 'objective.samples') };
}

export interface ObjectiveWeights {
  /** The batch's terms (per example means); `objective` is the value the step maximizes. */
  terms: ElboTerms;
  /** ∂loss/∂log p(x | z) per row. */
  dLogpx: FloatArray;
  /** ∂loss/∂KL per row (KL: closed form, or log q(z | x) − log p(z)). */
  dKl: FloatArray;
}

export interface Objective {
  readonly kind: string;
  /** Posterior draws per example. */
  readonly samples: number;
  /**
   * From the per-row terms of `examples` examples × `samples` draws, the
   * batch's terms and the weights of each row's terms in the loss (written
   * into `dLogpx`, `dKl`).
   */
  weigh(
    logpx: FloatArray,
    kl: FloatArray,
    examples: number,
    options: { beta: number; freeBits: number; latentDim: number },
    dLogpx: FloatArray,
    dKl: FloatArray,
  ): ElboTerms;
}

export function createObjective(spec: ResolvedObjective): Objective {
  return spec.kind === 'elbo' ? new ElboObjective() : new IwaeObjective(spec.samples);
}

export class ElboObjective implements Objective {
  readonly kind = 'elbo';
  readonly samples = 1;
  weigh(
    logpx: FloatArray,
    kl: FloatArray,
    batch: number,
    o: { beta: number; freeBits: number; latentDim: number },
    dLogpx: FloatArray,
    dKl: FloatArray,
  ): ElboTerms {
    const terms = averageTerms(logpx, kl, batch);
    // Free bits: below the floor the KL term is constant, so it contributes no gradient.
    const klWeight = o.freeBits > 0 && terms.kl < o.freeBits * o.latentDim ? 0 : o.beta;
    dLogpx.fill(-1 / batch, 0, batch);
    dKl.fill(klWeight / batch, 0, batch);
    return terms;
  }
}

export class IwaeObjective implements Objective {
  readonly kind = 'iwae';
  constructor(readonly samples: number) {}
  weigh(logpx: FloatArray, kl: FloatArray, examples: number, o: { beta: number; freeBits: number }, dLogpx: FloatArray, dKl: FloatArray): ElboTerms {
    if (o.freeBits > 0) throw rangeError('"freeBits" applies to the ELBO objective, not to IWAE');
    const K = this.samples;
    const rows = examples * K;
    const terms = averageTerms(logpx, kl, rows);
    // log w of each draw into dLogpx first (reused as scratch), then the softmax weights.
    let bound = 0;
    for (let i = 0; i < examples; i++) {
      for (let k = i * K; k < (i + 1) * K; k++) dLogpx[k] = logpx[k] - o.beta * kl[k];
      const lse = logSumExp(dLogpx, i * K, K);
      bound += lse - Math.log(K);
      for (let k = i * K; k < (i + 1) * K; k++) {
        const s = Math.exp(dLogpx[k] - lse);
        dLogpx[k] = -s / examples;
        dKl[k] = (o.beta * s) / examples;
      }
    }
    return { ...terms, objective: bound / examples };
  }
}

/** Means over `rows` rows of log p(x | z) and KL, and the ELBO. */
export function averageTerms(logpx: FloatArray, kl: FloatArray, rows: number): ElboTerms {
  let rec = 0;
  let k = 0;
  for (let r = 0; r < rows; r++) {
    rec += logpx[r];
    k += kl[r];
  }
  return { elbo: (rec - k) / rows, reconstruction: rec / rows, kl: k / rows };
}
