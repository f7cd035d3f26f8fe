/**
 * NICE's diagonal scaling layer (Dinh et al. 2015, §3.3): a shared per-dimension
 * log-scale `logScale` `[dim]` (initially 0, the identity),
 *
 *   y = x ⊙ exp(logScale),   log|det| = Σ logScale.
 *
 * NICE puts it after its additive couplings, which are volume-preserving, so
 * the model can still weight the dimensions.
 */
import type { Backend } from '../backend/backend';
import type { FloatArray } from '../backend/types';
import { expected, rangeError, typeError } from '../errors';
import { createParameter, type Parameter } from '../nn/parameter';
import { checkArray, checkPositiveInt } from '../validate';
import { Workspace, type Flow, type FlowForwardResult, type FlowGradients, type FlowInverseResult } from './flow';

export interface ScalingFlowOptions {
  dim: number;
  backend: Backend;
}

export class ScalingFlow implements Flow {
  readonly kind = 'scaling';
  readonly dim: number;
  readonly backend: Backend;
  readonly amortizedSize = 0;
  readonly contextDim = 0;
  readonly logScale: Parameter;
  private readonly ws: Workspace;
  private input: FloatArray | null = null;
  private batch = 0;

  constructor(options: ScalingFlowOptions) {
    if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
    this.dim = checkPositiveInt(options.dim, 'dim');
    if (typeof options.backend !== 'object' || options.backend === null) throw typeError(expected('Backend', 'backend', options.backend));
    this.backend = options.backend;
    this.logScale = createParameter(this.backend, 'logScale', [this.dim]);
    this.ws = new Workspace(this.backend);
  }

  parameters(): Parameter[] {
    return [this.logScale];
  }

  forward(x: FloatArray, batch: number): FlowForwardResult {
    checkPositiveInt(batch, 'batch');
    checkArray(x, 'x', batch * this.dim);
    const y = this.ws.get('y', batch * this.dim);
    const logDet = this.ws.get('logDet', batch);
    this.backend.coupling.scaleForward(x, this.logScale.value, y, logDet, batch, this.dim);
    this.input = x;
    this.batch = batch;
    return { y, logDet };
  }

  inverse(y: FloatArray, batch: number): FlowInverseResult {
    checkPositiveInt(batch, 'batch');
    checkArray(y, 'y', batch * this.dim);
    const x = this.ws.get('x', batch * this.dim);
    const logDet = this.ws.get('inverseLogDet', batch);
    this.backend.coupling.scaleInverse(y, this.logScale.value, x, logDet, batch, this.dim);
    return { x, logDet };
  }

  backward(gradOutput: FloatArray, gradLogDet: FloatArray): FlowGradients {
    const batch = this.batch;
    if (batch === 0) throw rangeError('scaling backward called before forward');
    checkArray(gradOutput, 'gradOutput', batch * this.dim);
    checkArray(gradLogDet, 'gradLogDet', batch);
    const dx = this.ws.get('dx', batch * this.dim);
    this.backend.coupling.scaleBackward(this.input!, this.logScale.value, gradOutput, gradLogDet, dx, this.logScale.grad, batch, this.dim);
    return { gradInput: dx, gradParams: null, gradContext: null };
  }
}
