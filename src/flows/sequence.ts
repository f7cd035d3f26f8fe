/**
 * FlowSequence: flows applied one after another, x → f_K(…f_1(x)), with the
 * log-dets summed. Amortized parameters are laid out per row as the
 * concatenation of each member's block, in order; a shared context is handed
 * to every conditional member and its gradients summed.
 */
import type { Backend } from '../backend/backend';
import type { FloatArray } from '../backend/types';
import { expected, rangeError, typeError } from '../errors';
import { prefixBuffers, prefixParameters, type NamedBuffer, type Parameter } from '../nn/parameter';
import { checkArray, checkPositiveInt } from '../validate';
import { Workspace, type Flow, type FlowCallOptions, type FlowForwardResult, type FlowGradients, type FlowInverseResult } from './flow';

/** Copies columns [start, start + width) of a `[batch, srcWidth]` array into `dst` `[batch, width]`. */
export function gatherColumns(src: FloatArray, batch: number, srcWidth: number, start: number, width: number, dst: FloatArray): void {
  for (let r = 0; r < batch; r++) {
    const from = r * srcWidth + start;
    dst.set(src.subarray(from, from + width), r * width);
  }
}

/** Writes `src` `[batch, width]` into columns [start, start + width) of `dst` `[batch, dstWidth]`. */
export function scatterColumns(src: FloatArray, batch: number, width: number, dst: FloatArray, dstWidth: number, start: number): void {
  for (let r = 0; r < batch; r++) {
    dst.set(src.subarray(r * width, (r + 1) * width), r * dstWidth + start);
  }
}

export class FlowSequence implements Flow {
  readonly kind = 'sequence';
  readonly dim: number;
  readonly backend: Backend;
  readonly amortizedSize: number;
  readonly contextDim: number;
  readonly flows: readonly Flow[];
  private readonly offsets: number[];
  private readonly ws: Workspace;
  private batch = 0;

  constructor(flows: readonly Flow[]) {
    if (!Array.isArray(flows)) throw typeError(expected('array of flows', 'flows', flows));
    if (flows.length === 0) throw rangeError(expected('non-empty array of flows', 'flows', flows));
    const first = flows[0];
    this.dim = first.dim;
    this.backend = first.backend;
    let offset = 0;
    let contextDim = 0;
    this.offsets = [];
    flows.forEach((f, i) => {
      if (f.dim !== this.dim) throw rangeError(expected(`flow of dim ${this.dim}`, `flows[${i}]`, f.dim), 'ERR_SHAPE');
      if (f.backend !== this.backend) {
        throw rangeError(`Expected every flow on backend "${this.backend.name}" but "flows[${i}]" is on "${f.backend.name}"`);
      }
      if (f.contextDim > 0) {
        if (contextDim > 0 && f.contextDim !== contextDim) {
          throw rangeError(expected(`context width ${contextDim}`, `flows[${i}].contextDim`, f.contextDim), 'ERR_SHAPE');
        }
        contextDim = f.contextDim;
      }
      this.offsets.push(offset);
      offset += f.amortizedSize;
    });
    this.amortizedSize = offset;
    this.contextDim = contextDim;
    this.flows = [...flows];
    this.ws = new Workspace(this.backend);
  }

  parameters(): Parameter[] {
    return this.flows.flatMap((f, i) => prefixParameters(String(i), f.parameters()));
  }

  buffers(): NamedBuffer[] {
    return this.flows.flatMap((f, i) => (f.buffers ? prefixBuffers(String(i), f.buffers()) : []));
  }

  private memberOptions(i: number, batch: number, options: FlowCallOptions | undefined): FlowCallOptions {
    const f = this.flows[i];
    const member: FlowCallOptions = {};
    if (f.amortizedSize > 0) {
      const block = this.ws.get(`params.${i}`, batch * f.amortizedSize);
      gatherColumns(options!.params!, batch, this.amortizedSize, this.offsets[i], f.amortizedSize, block);
      member.params = block;
    }
    if (f.contextDim > 0) member.context = options!.context;
    if (options?.training) member.training = true;
    return member;
  }

  private checkOptions(batch: number, options: FlowCallOptions | undefined): void {
    checkPositiveInt(batch, 'batch');
    if (this.amortizedSize > 0) checkArray(options?.params, 'params', batch * this.amortizedSize);
    if (this.contextDim > 0) checkArray(options?.context, 'context', batch * this.contextDim);
  }

  forward(x: FloatArray, batch: number, options?: FlowCallOptions): FlowForwardResult {
    this.checkOptions(batch, options);
    checkArray(x, 'x', batch * this.dim);
    this.batch = batch;
    const logDet = this.ws.get('logDet', batch);
    logDet.fill(0);
    let h = x;
    for (let i = 0; i < this.flows.length; i++) {
      const out = this.flows[i].forward(h, batch, this.memberOptions(i, batch, options));
      for (let r = 0; r < batch; r++) logDet[r] += out.logDet[r];
      h = out.y;
    }
    return { y: h, logDet };
  }

  inverse(y: FloatArray, batch: number, options?: FlowCallOptions): FlowInverseResult {
    this.checkOptions(batch, options);
    checkArray(y, 'y', batch * this.dim);
    const logDet = this.ws.get('inverseLogDet', batch);
    logDet.fill(0);
    let h = y;
    for (let i = this.flows.length - 1; i >= 0; i--) {
      const out = this.flows[i].inverse(h, batch, this.memberOptions(i, batch, options));
      for (let r = 0; r < batch; r++) logDet[r] += out.logDet[r];
      h = out.x;
    }
    return { x: h, logDet };
  }

  backward(gradOutput: FloatArray, gradLogDet: FloatArray): FlowGradients {
    const batch = this.batch;
    if (batch === 0) throw rangeError('FlowSequence.backward called before forward');
    checkArray(gradOutput, 'gradOutput', batch * this.dim);
    checkArray(gradLogDet, 'gradLogDet', batch);
    const gradParams = this.amortizedSize > 0 ? this.ws.get('gradParams', batch * this.amortizedSize) : null;
    const gradContext = this.contextDim > 0 ? this.ws.get('gradContext', batch * this.contextDim) : null;
    gradContext?.fill(0);
    let g = gradOutput;
    for (let i = this.flows.length - 1; i >= 0; i--) {
      const f = this.flows[i];
      const grads = f.backward(g, gradLogDet);
      if (gradParams && grads.gradParams) {
        scatterColumns(grads.gradParams, batch, f.amortizedSize, gradParams, this.amortizedSize, this.offsets[i]);
      }
      if (gradContext && grads.gradContext) {
        for (let j = 0; j < gradContext.length; j++) gradContext[j] += grads.gradContext[j];
      }
      g = grads.gradInput;
    }
    return { gradInput: g, gradParams, gradContext };
  }
}
