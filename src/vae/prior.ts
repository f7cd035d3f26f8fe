/**
 * The VAE's prior p(z). Built-in kinds:
 *
 * - `standard-normal` N(0, I) (default): the closed-form KL applies.
 * - `learned-gaussian`: N(m, diag e^{lv}) with m, lv trained (`prior.mean`, `prior.logvar`).
 * - `mixture`: Σ_k π_k N(μ_k, diag σ_k²), π = softmax(`prior.logits`), means
 *   `prior.means` `[K, D]` and log-variances `prior.logvars` `[K, D]` trained;
 *   log p(z) = logsumexp_k(log π_k + log N(z; μ_k, σ_k²)).
 * - `flow`: z = f(u), u ~ N(0, I), for a registered flow family with shared
 *   parameters (`prior.flow.*`); its forward is taken as the density direction
 *   f⁻¹, so log p(z) = log N(f⁻¹(z)) + log|det ∂f⁻¹/∂z| costs one forward
 *   (cheap for MAF, coupling, Glow and spline flows) and `sample` runs the
 *   flow's inverse.
 *
 * With any prior but N(0, I) the VAE estimates the KL term by sampling.
 */
import type { Backend } from '../backend/backend';
import type { FloatArray } from '../backend/types';
import { expected, rangeError, typeError } from '../errors';
import { FLOW_FAMILIES } from '../flows';
import { Workspace, type Flow } from '../flows/flow';
import { createParameter, initNormal, prefixBuffers, prefixParameters, type NamedBuffer, type Parameter } from '../nn/parameter';
import { checkKnownKeys, checkOneOf, checkPositiveInt } from '../validate';
import { logSumExp } from './likelihood';

const LOG_2PI = Math.log(2 * Math.PI);

export type PriorKind = 'standard-normal' | 'learned-gaussian' | 'mixture' | 'flow';
export const PRIOR_KINDS: readonly PriorKind[] = ['standard-normal', 'learned-gaussian', 'mixture', 'flow'];

export type PriorSpec =
  | PriorKind
  | { kind: 'standard-normal' }
  | { kind: 'learned-gaussian' }
  /** K components (default 10). */
  | { kind: 'mixture'; components?: number }
  /** A registered flow family with shared parameters, `layers` (default 4) and its options. */
  | { kind: 'flow'; flow: string; layers?: number; [option: string]: unknown };

/** A prior spec with every field resolved (as stored in checkpoints). */
export type ResolvedPrior =
  | { kind: 'standard-normal' }
  | { kind: 'learned-gaussian' }
  | { kind: 'mixture'; components: number }
  | { kind: 'flow'; flow: string; layers: number; [option: string]: unknown };

/** What the VAE needs of a prior. */
export interface Prior {
  readonly kind: string;
  readonly dim: number;
  /** True for N(0, I), against which the closed-form KL is written. */
  readonly standard: boolean;
  /** True when `sample` reads the uniforms `u` (a mixture's component choice); otherwise none are drawn. */
  readonly usesUniforms?: boolean;
  /** Trained tensors (full names, `prior.*`). */
  parameters(): Parameter[];
  buffers(): NamedBuffer[];
  /** out[r] = log p(z_r) for `batch` rows of `z` `[batch, dim]`. */
  logProb(z: FloatArray, out: FloatArray, batch: number, training?: boolean): void;
  /** After `logProb`: dz += dRow[r] · ∂ log p(z_r)/∂z_r; parameter gradients accumulate. */
  backward(dRow: FloatArray, dz: FloatArray, batch: number): void;
  /** `[batch, dim]` draws made from standard normals `eps` `[batch, dim]` and uniforms `u` `[batch]`. */
  sample(eps: FloatArray, u: FloatArray, batch: number): FloatArray;
}

export function resolvePrior(value: PriorSpec | undefined): ResolvedPrior {
  const spec = value ?? 'standard-normal';
  if (typeof spec === 'string') {
    const kind = checkOneOf(spec, 'prior', PRIOR_KINDS);
    if (kind === 'flow') throw rangeError('A flow prior needs its family: pass { kind: "flow", flow: "maf" } (or another family)');
    if (kind === 'mixture') return { kind, components: 10 };
    return { kind };
  }
  if (typeof spec !== 'object' || spec === null) throw typeError(expected('prior kind or object { kind, … }', 'prior', spec));
  const kind = checkOneOf(spec.kind, 'prior.kind', PRIOR_KINDS);
  if (kind === 'standard-normal' || kind === 'learned-gaussian') {
    checkKnownKeys(spec, 'prior', ['kind']);
    return { kind };
  }
  if (kind === 'mixture') {
    checkKnownKeys(spec, 'prior', ['kind', 'components']);
    return { kind, components: checkPositiveInt((spec as { components?: number }).components ?? 10, 'prior.components') };
  }
  const { flow, layers, ...extra } = spec as { kind: 'flow'; flow: string; layers?: number };
  const name = checkOneOf(flow, 'prior.flow', Object.keys(FLOW_FAMILIES));
  if (!FLOW_FAMILIES[name].shareable) throw rangeError(`The ${name} flow needs amortized parameters and cannot be a prior`);
  return { ...extra, kind, flow: name, layers: checkPositiveInt(layers ?? 4, 'prior.layers') };
}

export function createPrior(backend: Backend, spec: ResolvedPrior, dim: number, seed: number): Prior {
  switch (spec.kind) {
    case 'standard-normal':
      return new StandardNormalPrior(backend, dim);
    case 'learned-gaussian':
      return new LearnedGaussianPrior(backend, dim);
    case 'mixture':
      return new MixturePrior(backend, dim, spec.components, seed);
    case 'flow':
      return new FlowPrior(backend, dim, spec, seed);
  }
}

export class StandardNormalPrior implements Prior {
  readonly kind = 'standard-normal';
  readonly standard = true;
  private readonly ws: Workspace;
  private lastZ: FloatArray | null = null;
  constructor(
    readonly backend: Backend,
    readonly dim: number,
  ) {
    this.ws = new Workspace(backend);
  }
  parameters(): Parameter[] {
    return [];
  }
  buffers(): NamedBuffer[] {
    return [];
  }
  logProb(z: FloatArray, out: FloatArray, batch: number): void {
    this.backend.gaussian.logStandard(z, out, batch, this.dim);
    this.lastZ = z;
  }
  backward(dRow: FloatArray, dz: FloatArray, batch: number): void {
    const dPrior = this.ws.get('dz', batch * this.dim);
    this.backend.gaussian.logStandardBackward(this.lastZ!, dRow, dPrior, batch, this.dim);
    for (let i = 0; i < batch * this.dim; i++) dz[i] += dPrior[i];
  }
  sample(eps: FloatArray): FloatArray {
    return eps;
  }
}

/** N(m, diag e^{lv}) with m and lv trained; starts at N(0, I). */
export class LearnedGaussianPrior implements Prior {
  readonly kind = 'learned-gaussian';
  readonly standard = false;
  readonly mean: Parameter;
  readonly logVar: Parameter;
  private readonly ws: Workspace;
  private lastZ: FloatArray | null = null;
  constructor(
    readonly backend: Backend,
    readonly dim: number,
  ) {
    this.mean = createParameter(backend, 'prior.mean', [dim]);
    this.logVar = createParameter(backend, 'prior.logvar', [dim]);
    this.ws = new Workspace(backend);
  }
  parameters(): Parameter[] {
    return [this.mean, this.logVar];
  }
  buffers(): NamedBuffer[] {
    return [];
  }
  logProb(z: FloatArray, out: FloatArray, batch: number): void {
    const D = this.dim;
    const m = this.mean.value;
    const lv = this.logVar.value;
    for (let r = 0; r < batch; r++) {
      let s = 0;
      for (let j = 0; j < D; j++) {
        const d = z[r * D + j] - m[j];
        s += LOG_2PI + lv[j] + d * d * Math.exp(-lv[j]);
      }
      out[r] = -0.5 * s;
    }
    this.lastZ = z;
  }
  backward(dRow: FloatArray, dz: FloatArray, batch: number): void {
    const D = this.dim;
    const z = this.lastZ!;
    const m = this.mean.value;
    const lv = this.logVar.value;
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < D; j++) {
        const prec = Math.exp(-lv[j]);
        const d = z[r * D + j] - m[j];
        dz[r * D + j] -= dRow[r] * d * prec;
        this.mean.grad[j] += dRow[r] * d * prec;
        this.logVar.grad[j] += dRow[r] * 0.5 * (d * d * prec - 1);
      }
    }
  }
  sample(eps: FloatArray, _u: FloatArray, batch: number): FloatArray {
    const D = this.dim;
    const z = this.ws.get('sample', batch * D);
    for (let r = 0; r < batch; r++) for (let j = 0; j < D; j++) z[r * D + j] = this.mean.value[j] + Math.exp(0.5 * this.logVar.value[j]) * eps[r * D + j];
    return z;
  }
}

/**
 * Mixture of K diagonal Gaussians with learned weights, means and scales.
 * The means start as standard normal draws (so the components differ), the
 * log-variances at 0 and the weights equal.
 */
export class MixturePrior implements Prior {
  readonly kind = 'mixture';
  readonly standard = false;
  readonly usesUniforms = true;
  readonly logits: Parameter;
  readonly means: Parameter;
  readonly logVars: Parameter;
  private readonly ws: Workspace;
  private lastZ: FloatArray | null = null;
  constructor(
    readonly backend: Backend,
    readonly dim: number,
    readonly components: number,
    seed: number,
    /** Name prefix of the parameters (a FlowDistribution's mixture base uses `base`). */
    prefix = 'prior',
  ) {
    this.logits = createParameter(backend, `${prefix}.logits`, [components]);
    this.means = createParameter(backend, `${prefix}.means`, [components, dim]);
    this.logVars = createParameter(backend, `${prefix}.logvars`, [components, dim]);
    initNormal(backend, this.means.value, seed, 0, 1);
    this.ws = new Workspace(backend);
  }
  parameters(): Parameter[] {
    return [this.logits, this.means, this.logVars];
  }
  buffers(): NamedBuffer[] {
    return [];
  }
  /** log π_k + log N(z_r; μ_k, σ_k²) for every row and component, into `joint` `[batch, K]`. */
  private joint(z: FloatArray, batch: number): FloatArray {
    const { dim: D, components: K } = this;
    const joint = this.ws.get('joint', batch * K);
    const logNorm = logSumExp(this.logits.value, 0, K);
    for (let r = 0; r < batch; r++) {
      for (let k = 0; k < K; k++) {
        let s = 0;
        for (let j = 0; j < D; j++) {
          const lv = this.logVars.value[k * D + j];
          const d = z[r * D + j] - this.means.value[k * D + j];
          s += LOG_2PI + lv + d * d * Math.exp(-lv);
        }
        joint[r * K + k] = this.logits.value[k] - logNorm - 0.5 * s;
      }
    }
    return joint;
  }
  logProb(z: FloatArray, out: FloatArray, batch: number): void {
    const K = this.components;
    const joint = this.joint(z, batch);
    for (let r = 0; r < batch; r++) out[r] = logSumExp(joint, r * K, K);
    this.lastZ = z;
  }
  backward(dRow: FloatArray, dz: FloatArray, batch: number): void {
    const { dim: D, components: K } = this;
    const z = this.lastZ!;
    const joint = this.joint(z, batch);
    const logNorm = logSumExp(this.logits.value, 0, K);
    for (let r = 0; r < batch; r++) {
      const lse = logSumExp(joint, r * K, K);
      for (let k = 0; k < K; k++) {
        const w = dRow[r] * Math.exp(joint[r * K + k] - lse); // dRow · responsibility γ_k
        this.logits.grad[k] += w - dRow[r] * Math.exp(this.logits.value[k] - logNorm);
        for (let j = 0; j < D; j++) {
          const lv = this.logVars.value[k * D + j];
          const prec = Math.exp(-lv);
          const d = z[r * D + j] - this.means.value[k * D + j];
          dz[r * D + j] -= w * d * prec;
          this.means.grad[k * D + j] += w * d * prec;
          this.logVars.grad[k * D + j] += w * 0.5 * (d * d * prec - 1);
        }
      }
    }
  }
  sample(eps: FloatArray, u: FloatArray, batch: number): FloatArray {
    const { dim: D, components: K } = this;
    const z = this.ws.get('sample', batch * D);
    const logNorm = logSumExp(this.logits.value, 0, K);
    for (let r = 0; r < batch; r++) {
      // The component whose cumulative weight first exceeds u_r.
      let k = 0;
      let acc = Math.exp(this.logits.value[0] - logNorm);
      while (k + 1 < K && acc <= u[r]) acc += Math.exp(this.logits.value[++k] - logNorm);
      for (let j = 0; j < D; j++) z[r * D + j] = this.means.value[k * D + j] + Math.exp(0.5 * this.logVars.value[k * D + j]) * eps[r * D + j];
    }
    return z;
  }
}

/** A flow prior: z = f(u), u ~ N(0, I); the flow module's forward computes f⁻¹. */
export class FlowPrior implements Prior {
  readonly kind = 'flow';
  readonly standard = false;
  readonly flow: Flow;
  private readonly ws: Workspace;
  private lastU: FloatArray | null = null;
  constructor(
    readonly backend: Backend,
    readonly dim: number,
    spec: Extract<ResolvedPrior, { kind: 'flow' }>,
    seed: number,
  ) {
    const { kind: _kind, flow, layers, ...extra } = spec;
    this.flow = FLOW_FAMILIES[flow].create({ dim, layers, amortized: false, seed, backend, extra });
    if (this.flow.contextDim > 0) throw rangeError(`The prior's ${flow} flow takes a context, which a prior does not have; leave its context option unset`);
    this.ws = new Workspace(backend);
  }
  parameters(): Parameter[] {
    return prefixParameters('prior.flow', this.flow.parameters());
  }
  buffers(): NamedBuffer[] {
    return this.flow.buffers ? prefixBuffers('prior.flow', this.flow.buffers()) : [];
  }
  logProb(z: FloatArray, out: FloatArray, batch: number, training = false): void {
    const { y: u, logDet } = this.flow.forward(z, batch, training ? { training } : {});
    this.backend.gaussian.logStandard(u, out, batch, this.dim);
    for (let r = 0; r < batch; r++) out[r] += logDet[r];
    this.lastU = u;
  }
  backward(dRow: FloatArray, dz: FloatArray, batch: number): void {
    const du = this.ws.get('du', batch * this.dim);
    this.backend.gaussian.logStandardBackward(this.lastU!, dRow, du, batch, this.dim);
    const { gradInput } = this.flow.backward(du, dRow);
    for (let i = 0; i < batch * this.dim; i++) dz[i] += gradInput[i];
  }
  sample(eps: FloatArray, _u: FloatArray, batch: number): FloatArray {
    return this.flow.inverse(eps, batch).x;
  }
}
