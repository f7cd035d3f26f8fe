/**
 * Elementwise affine flow: a learned scale and shift per dimension,
 *
 *   y = x ⊙ e^{logScale} + shift,   log|det J| = Σ_j logScale[j]
 *
 * (the scale is parametrized by its log, so it stays positive). Parameters
 * `logScale` `[dim]` and `shift` `[dim]` start at 0: the identity. ActNorm
 * (./actnorm.ts) is the same map with a data-dependent initialization.
 *
 * Backward reads the input of the last forward: do not modify it before
 * calling backward.
 */
import type { Backend } from '../backend/backend';
import type { FloatArray } from '../backend/types';
import { createParameter, type Parameter } from '../nn/parameter';
import { Workspace, type Flow, type FlowCallOptions, type FlowForwardResult, type FlowGradients, type FlowInverseResult } from './flow';
import { checkBackwardCall, checkUnconditionalCall, resolvePieceOptions, type GlowPieceOptions } from './glow-common';

export type ElementwiseAffineOptions = GlowPieceOptions;

export class ElementwiseAffine implements Flow {
  readonly kind: string;
  readonly dim: number;
  readonly backend: Backend;
  readonly amortizedSize = 0;
  readonly contextDim = 0;
  /** `[dim]`: log of the per-dimension scale. */
  readonly logScale: Parameter;
  /** `[dim]` */
  readonly shift: Parameter;
  protected readonly ws: Workspace;
  private readonly className: string;
  private input: FloatArray | null = null;
  private batch = 0;

  /** `names` is for subclasses (ActNorm): their family and class names. */
  constructor(options: ElementwiseAffineOptions, names = { kind: 'elementwise-affine', className: 'ElementwiseAffine' }) {
    const { dim, backend } = resolvePieceOptions(options, ['dim', 'backend'], 'glow');
    this.kind = names.kind;
    this.className = names.className;
    this.dim = dim;
    this.backend = backend;
    this.logScale = createParameter(backend, 'logScale', [dim]);
    this.shift = createParameter(backend, 'shift', [dim]);
    this.ws = new Workspace(backend);
  }

  parameters(): Parameter[] {
    return [this.logScale, this.shift];
  }

  /** Called by forward before the map is applied (ActNorm initializes here). */
  protected beforeForward(_x: FloatArray, _batch: number, _options: FlowCallOptions | undefined): void {}

  forward(x: FloatArray, batch: number, options?: FlowCallOptions): FlowForwardResult {
    checkUnconditionalCall(this.kind, this.backend, x, 'x', batch, this.dim, options);
    this.beforeForward(x, batch, options);
    const y = this.ws.get('y', batch * this.dim);
    const logDet = this.ws.get('logDet', batch);
    this.backend.glow.affineForward(x, this.logScale.value, this.shift.value, y, logDet, batch, this.dim);
    this.input = x;
    this.batch = batch;
    return { y, logDet };
  }

  inverse(y: FloatArray, batch: number, options?: FlowCallOptions): FlowInverseResult {
    checkUnconditionalCall(this.kind, this.backend, y, 'y', batch, this.dim, options);
    const x = this.ws.get('inverseX', batch * this.dim);
    const logDet = this.ws.get('inverseLogDet', batch);
    this.backend.glow.affineInverse(y, this.logScale.value, this.shift.value, x, logDet, batch, this.dim);
    return { x, logDet };
  }

  backward(gradOutput: FloatArray, gradLogDet: FloatArray): FlowGradients {
    const batch = this.batch;
    checkBackwardCall(this.className, this.backend, batch, this.dim, gradOutput, gradLogDet);
    const dx = this.ws.get('gradInput', batch * this.dim);
    this.backend.glow.affineBackward(this.input!, this.logScale.value, gradOutput, gradLogDet, dx, this.logScale.grad, this.shift.grad, batch, this.dim);
    return { gradInput: dx, gradParams: null, gradContext: null };
  }
}
