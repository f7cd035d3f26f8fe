/**
 * Test-set numbers shared by `train` (its summary) and `eval`, computed the
 * same way from the same seeds so `flowvae eval <run>` reproduces the run's
 * summary exactly (same backend, any thread count):
 *
 *   - ELBO: one posterior sample per example, noise stream TEST_ELBO_SEED;
 *   - NLL:  −log p(x) by importance sampling with S samples per example
 *           (VAE.logLikelihood), example i drawing from stream
 *           TEST_NLL_SEED + i, one example per call so the loop can yield
 *           between examples (progress, Ctrl-C).
 *
 * With a Bernoulli likelihood and dynamic binarization in training, the
 * test (and validation) images are binarized once with a fixed stream, as in
 * the papers' stochastically binarized MNIST.
 */
import type { Backend } from '../backend/backend';
import type { Dataset } from '../data/dataset';
import type { ElboTerms, VAE } from '../vae/vae';

export const TEST_ELBO_SEED = 20_151;
export const TEST_NLL_SEED = 5_000_000;
export const TEST_BINARIZE_SEED = 777_001;
export const VALIDATION_BINARIZE_SEED = 777_002;

/** A fixed Bernoulli sample of grey-level data in [0, 1] (one uniform per value from stream `seed`). */
export function binarizeOnce(backend: Backend, x: Float32Array, seed: number): Float32Array {
  const u = backend.alloc(x.length);
  backend.rng.uniform(seed, 0, u);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = u[i] < x[i] ? 1 : 0;
  return out;
}

/** The rows a run is evaluated on (binarized once when training binarized dynamically). */
export function evaluationRows(backend: Backend, data: Dataset, binarized: boolean, seed: number): Float32Array {
  return binarized ? binarizeOnce(backend, data.x, seed) : data.x;
}

export function testElbo(vae: VAE, x: Float32Array): ElboTerms {
  return vae.elbo(x, { samples: 1, seed: TEST_ELBO_SEED });
}

export interface NllOptions {
  samples: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Mean importance-sampled −log p(x) over the rows of `x` (nats per example),
 * or null when aborted through `signal`.
 */
export async function testNll(vae: VAE, x: Float32Array, options: NllOptions): Promise<number | null> {
  const dim = vae.inputDim;
  const n = x.length / dim;
  const batch = Math.min(options.samples, 500);
  let sum = 0;
  let lastYield = performance.now();
  for (let i = 0; i < n; i++) {
    if (options.signal?.aborted) return null;
    const row = x.subarray(i * dim, (i + 1) * dim);
    sum += vae.logLikelihood(row, { samples: options.samples, batch, seed: TEST_NLL_SEED + i }).mean;
    // Let progress output and signal handlers run about ten times a second.
    if (performance.now() - lastYield > 100 || i === n - 1) {
      options.onProgress?.(i + 1, n);
      await new Promise<void>((resolve) => setImmediate(resolve));
      lastYield = performance.now();
    }
  }
  return -sum / n;
}
