/**
 * ActNorm (Kingma & Dhariwal 2018, Glow): a per-dimension affine map
 *
 *   y = x ⊙ e^{logScale} + shift,   log|det J| = Σ_j logScale[j]
 *
 * whose parameters are initialized from the data: the first training forward
 * (a call with `training: true`, as the training loops of VAE.fit and
 * FlowDistribution make) sets, per dimension,
 *
 *   logScale = −log(std + 1e-6),   shift = −mean · e^{logScale}
 *
 * with the batch's mean and population standard deviation (÷ batch), so that
 * batch's outputs have zero mean and unit variance per dimension (Glow's
 * epsilon keeps a constant column finite). After that they are ordinary
 * trained parameters. The statistics are computed in float64 in row order on
 * every backend, so cpu and reference start from the same values up to the
 * rounding of their inputs.
 *
 * The `initialized` flag is a buffer (`buffers()`), saved in checkpoints, so
 * a loaded model is not initialized again. `initialize(x, batch)` runs the
 * initialization explicitly on a chosen batch. Evaluation, sampling and
 * inverse calls never initialize (before training they use the current
 * parameters: the identity), so scoring a sample never changes the model.
 */
import type { FloatArray } from '../backend/types';
import { FlowVaeError, expected, rangeError } from '../errors';
import type { NamedBuffer } from '../nn/parameter';
import { checkArray, checkPositiveInt, firstNonFinite } from '../validate';
import { ElementwiseAffine } from './elementwise-affine';
import type { FlowCallOptions } from './flow';
import type { GlowPieceOptions } from './glow-common';

export type ActNormOptions = GlowPieceOptions;

/** Added to the standard deviation before inverting it (as in Glow). */
export const ACTNORM_EPSILON = 1e-6;

export class ActNorm extends ElementwiseAffine {
  /** `[1]`: 1 once initialized from data, else 0. */
  private readonly initializedFlag: NamedBuffer;

  constructor(options: ActNormOptions) {
    super(options, { kind: 'actnorm', className: 'ActNorm' });
    this.initializedFlag = { name: 'initialized', shape: [1], value: this.backend.alloc(1) };
  }

  /** Whether the parameters have been initialized from data (or loaded). */
  get initialized(): boolean {
    return this.initializedFlag.value[0] !== 0;
  }

  buffers(): NamedBuffer[] {
    return [this.initializedFlag];
  }

  /**
   * Sets logScale and shift so that `x` `[batch, dim]` maps to zero mean and
   * unit variance per dimension, and marks the module initialized. Needs at
   * least 2 rows (one row has no spread to normalize).
   */
  initialize(x: FloatArray, batch: number): void {
    checkPositiveInt(batch, 'batch');
    checkArray(x, 'x', batch * this.dim, this.backend.dtype);
    if (batch < 2) {
      throw rangeError(expected('batch of at least 2 rows to initialize ActNorm from', 'batch', batch));
    }
    const D = this.dim;
    const bad = firstNonFinite(x);
    if (bad >= 0) throw new FlowVaeError('ERR_NAN', `ActNorm.initialize: row ${Math.floor(bad / D)} of "x" is not finite`);
    const mean = new Float64Array(D);
    const sq = new Float64Array(D);
    for (let r = 0; r < batch; r++) for (let j = 0; j < D; j++) mean[j] += x[r * D + j];
    for (let j = 0; j < D; j++) mean[j] /= batch;
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < D; j++) {
        const d = x[r * D + j] - mean[j];
        sq[j] += d * d;
      }
    }
    const logScale = this.logScale.value;
    const shift = this.shift.value;
    for (let j = 0; j < D; j++) {
      logScale[j] = -Math.log(Math.sqrt(sq[j] / batch) + ACTNORM_EPSILON);
      // From the stored (possibly float32-rounded) log-scale, so the batch mean maps to 0.
      shift[j] = -mean[j] * Math.exp(logScale[j]);
    }
    this.initializedFlag.value[0] = 1;
  }

  protected override beforeForward(x: FloatArray, batch: number, options: FlowCallOptions | undefined): void {
    if (!this.initialized && options?.training) this.initialize(x, batch);
  }
}
