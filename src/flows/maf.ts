/**
 * Masked autoregressive flow (Papamakarios et al. 2017), in the
 * density-estimation direction: forward maps data x to noise u in one MADE
 * pass per step,
 *
 *   (m, α) = MADE_k(x, h),  u = (x − m) ⊙ exp(−α),  log|det J| = −Σ α,
 *
 * with the ordering reversed between steps; the inverse (sampling, u → x)
 * takes D sequential passes per step. α is unbounded as in the paper; the
 * MADE output layer starts small so every step starts near the identity.
 */
import type { StepKernels } from './autoregressive';
import { AutoregressiveFlow, type AutoregressiveFlowOptions } from './autoregressive';

export type MAFOptions = AutoregressiveFlowOptions;

export class MAFFlow extends AutoregressiveFlow {
  readonly kind = 'maf';
  private readonly kernels: StepKernels;

  constructor(options: MAFOptions) {
    super(options, 0.1);
    const k = this.backend.autoregressive;
    this.kernels = { forward: k.mafForward, backward: k.mafBackward, inverse: k.mafInverse };
  }

  protected get step(): StepKernels {
    return this.kernels;
  }
}
