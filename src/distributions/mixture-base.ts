/**
 * A learned base for a FlowDistribution: a mixture of K diagonal Gaussians
 * whose weights, means and scales train with the flow by maximum likelihood
 * (`base.logits`, `base.means` `[K, dim]`, `base.logvars` `[K, dim]`). The
 * same mixture as the VAE's mixture prior (src/vae/prior.ts), under the
 * interface of DiagonalGaussian. A draw takes `dim` normals and one uniform
 * (the component) from the noise stream.
 */
import type { Backend } from '../backend/backend';
import type { FloatArray } from '../backend/types';
import { Workspace } from '../flows/flow';
import type { Parameter } from '../nn/parameter';
import { MixturePrior } from '../vae/prior';

export class MixtureBase {
  readonly kind = 'mixture';
  /** Stream elements one draw takes: its normals, then (after the batch's normals) its uniform. */
  readonly noisePerRow: number;
  readonly mixture: MixturePrior;
  private readonly ws: Workspace;

  constructor(
    readonly backend: Backend,
    readonly dim: number,
    readonly components: number,
    seed: number,
  ) {
    this.mixture = new MixturePrior(backend, dim, components, seed, 'base');
    this.noisePerRow = dim + 1;
    this.ws = new Workspace(backend);
  }

  parameters(): Parameter[] {
    return this.mixture.parameters();
  }

  /** `batch` draws from elements `offset …` of stream `seed` into `x`, with their log-densities; `eps` gets the normals. */
  sampleInto(seed: number, offset: number, eps: FloatArray, x: FloatArray, logProb: FloatArray, batch: number): void {
    const u = this.ws.get('u', batch);
    this.backend.rng.normal(seed, offset, eps);
    this.backend.rng.uniform(seed, offset + batch * this.dim, u);
    x.set(this.mixture.sample(eps, u, batch));
    this.mixture.logProb(x, logProb, batch);
  }

  logProbInto(x: FloatArray, out: FloatArray, batch: number): void {
    this.mixture.logProb(x, out, batch);
  }

  /** dx = dOut[r] · ∇ log p(x_r) (overwritten); the mixture's parameter gradients accumulate. */
  logProbBackward(x: FloatArray, dOut: FloatArray, dx: FloatArray, batch: number): void {
    this.mixture.logProb(x, this.ws.get('logp', batch), batch);
    dx.fill(0, 0, batch * this.dim);
    this.mixture.backward(dOut, dx, batch);
  }
}
