/** Reference fused Adam/AdamW (float64) with PyTorch's semantics, as defined in kernels/adam.ts. */
import { ADAM_STEP_OPTION_KEYS, checkAdamLearningRate, type AdamKernels, type AdamStepOptions } from '../kernels/adam';
import type { FloatArray } from '../types';
import {
  checkArray,
  checkBoolean,
  checkInRange,
  checkNonNegativeNumber,
  checkOptions,
  checkPositiveInt,
  checkPositiveNumber,
  checkSize,
  sharesMemory,
} from '../../validate';
import { expected, rangeError, typeError } from '../../errors';

/** The step updates its buffers in place while reading grads: views sharing memory would give wrong results. */
function checkDisjoint(a: FloatArray, aName: string, b: FloatArray, bName: string): void {
  if (sharesMemory(a, b)) throw rangeError(expected(`array not overlapping "${aName}"`, bName, b));
}

// The loops live in their own small functions: V8 then optimises each once,
// whatever the options (code paths first taken after a loop was optimised in
// place would otherwise leave it deoptimising on every call).
function sumOfSquares(a: FloatArray, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += a[i] * a[i];
  return s;
}

interface Coefficients {
  scale: number;
  l2: number;
  decay: number;
  beta1: number;
  beta2: number;
  stepSize: number;
  bias2Sqrt: number;
  eps: number;
}

function update(params: FloatArray, grads: FloatArray, m: FloatArray, v: FloatArray, n: number, c: Coefficients): void {
  const { scale, l2, decay, beta1, beta2, stepSize, bias2Sqrt, eps } = c;
  for (let i = 0; i < n; i++) {
    let g = grads[i] * scale;
    let p = params[i];
    if (l2 !== 0) g += l2 * p;
    p *= decay;
    const mi = beta1 * m[i] + (1 - beta1) * g;
    const vi = beta2 * v[i] + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] = p - (stepSize * mi) / (Math.sqrt(vi) / bias2Sqrt + eps);
  }
}

interface Span {
  array: FloatArray;
  written: boolean;
  name: string;
}

/**
 * Refuses any overlap involving a written buffer (two gradients may share
 * memory), reporting the first clash in address order as the cpu binding
 * does: within one ArrayBuffer, a view overlaps an earlier one exactly when
 * it starts before the furthest end seen so far.
 */
function checkNoWrittenOverlap(spans: Span[]): void {
  const byBuffer = new Map<ArrayBufferLike, Span[]>();
  for (const s of spans) {
    if (s.array.length === 0) continue;
    const list = byBuffer.get(s.array.buffer) ?? [];
    list.push(s);
    byBuffer.set(s.array.buffer, list);
  }
  const begin = (s: Span) => s.array.byteOffset;
  const end = (s: Span) => s.array.byteOffset + s.array.byteLength;
  for (const list of byBuffer.values()) {
    list.sort((a, b) => begin(a) - begin(b));
    let furthest: Span | null = null;
    let furthestWritten: Span | null = null;
    for (const s of list) {
      let clash: Span | null = null;
      if (furthestWritten && end(furthestWritten) > begin(s)) clash = furthestWritten;
      else if (s.written && furthest && end(furthest) > begin(s)) clash = furthest;
      if (clash) throw rangeError(expected(`array not overlapping "${clash.name}"`, s.name, s.array));
      if (!furthest || end(s) > end(furthest)) furthest = s;
      if (s.written && (!furthestWritten || end(s) > end(furthestWritten))) furthestWritten = s;
    }
  }
}

/** The option values, checked in the bindings' order, as the loop's coefficients; and the clipping bound. */
function coefficients(o: Record<string, unknown>): { c: Omit<Coefficients, 'scale'>; maxGradNorm: number } {
  const lr = checkAdamLearningRate(o.lr);
  const beta1 = checkInRange(o.beta1, 'beta1', 0, 1, { hi: true });
  const beta2 = checkInRange(o.beta2, 'beta2', 0, 1, { hi: true });
  const eps = checkPositiveNumber(o.eps, 'eps');
  const weightDecay = checkNonNegativeNumber(o.weightDecay, 'weightDecay');
  const decoupled = checkBoolean(o.decoupled, 'decoupled');
  const step = checkPositiveInt(o.step, 'step');
  const maxGradNorm = checkNonNegativeNumber(o.maxGradNorm, 'maxGradNorm');
  return {
    c: {
      l2: decoupled ? 0 : weightDecay,
      decay: decoupled ? 1 - lr * weightDecay : 1,
      beta1,
      beta2,
      stepSize: lr / (1 - beta1 ** step),
      bias2Sqrt: Math.sqrt(1 - beta2 ** step),
      eps,
    },
    maxGradNorm,
  };
}

/** torch.nn.utils.clip_grad_norm_'s factor; a NaN norm gives a NaN scale, as torch's clamp does. */
function clipScale(norm: number, maxGradNorm: number): number {
  return maxGradNorm > 0 ? Math.min(1, maxGradNorm / (norm + 1e-6)) : 1;
}

/**
 * The array checks of stepTensors, in the cpu binding's order (shared with
 * the cuda backend, which stages the tensors through one flat buffer):
 * tensor lists of equal length, each gradient as long as its tensor, m and
 * v as long as all tensors together, no overlap involving a written buffer.
 * Returns that total length.
 */
export function checkTensorStep(
  params: readonly FloatArray[],
  grads: readonly FloatArray[],
  m: FloatArray,
  v: FloatArray,
  dtype: 'float32' | 'float64',
): number {
  const kind = dtype === 'float32' ? 'Float32Array' : 'Float64Array';
  if (!Array.isArray(params)) throw typeError(expected(`array of ${kind}`, 'params', params));
  if (!Array.isArray(grads)) throw typeError(expected(`array of ${kind}`, 'grads', grads));
  if (grads.length !== params.length) {
    throw rangeError(expected(`array of ${params.length} ${kind} (one per params)`, 'grads', grads), 'ERR_SHAPE');
  }
  const spans: Span[] = [];
  let total = 0;
  for (let k = 0; k < params.length; k++) {
    const p = checkTyped(params[k], `params[${k}]`, dtype);
    const g = checkTyped(grads[k], `grads[${k}]`, dtype);
    checkArray(g, `grads[${k}]`, p.length, dtype);
    spans.push({ array: p, written: true, name: `params[${k}]` }, { array: g, written: false, name: `grads[${k}]` });
    total += p.length;
  }
  checkArray(m, 'm', total, dtype);
  checkArray(v, 'v', total, dtype);
  spans.push({ array: m, written: true, name: 'm' }, { array: v, written: true, name: 'v' });
  checkNoWrittenOverlap(spans);
  return total;
}

/** A typed array of the backend's dtype, of any length. */
function checkTyped(value: unknown, name: string, dtype: 'float32' | 'float64'): FloatArray {
  const ok = dtype === 'float32' ? value instanceof Float32Array : value instanceof Float64Array;
  if (!ok) throw typeError(expected(dtype === 'float32' ? 'Float32Array' : 'Float64Array', name, value));
  return value as FloatArray;
}

export const referenceAdam: AdamKernels = {
  stepTensors(params: readonly FloatArray[], grads: readonly FloatArray[], m: FloatArray, v: FloatArray, options: AdamStepOptions): number {
    const o = checkOptions(options, 'options', ADAM_STEP_OPTION_KEYS);
    checkAdamLearningRate(o.lr);
    checkTensorStep(params, grads, m, v, 'float64');
    const { c, maxGradNorm } = coefficients(o);
    let squares = 0;
    for (const g of grads) squares += sumOfSquares(g, g.length);
    const norm = Math.sqrt(squares);
    const scale = clipScale(norm, maxGradNorm);
    let offset = 0;
    for (let k = 0; k < params.length; k++) {
      const n = params[k].length;
      update(params[k], grads[k], m.subarray(offset, offset + n), v.subarray(offset, offset + n), n, { ...c, scale });
      offset += n;
    }
    return norm;
  },

  step(params: FloatArray, grads: FloatArray, m: FloatArray, v: FloatArray, n: number, options: AdamStepOptions): number {
    // Same order of checks as the cpu backend (options object, then the binding's order).
    const o = checkOptions(options, 'options', ADAM_STEP_OPTION_KEYS);
    checkAdamLearningRate(o.lr);
    checkSize(n, 'n');
    checkArray(params, 'params', n);
    checkArray(grads, 'grads', n);
    checkArray(m, 'm', n);
    checkArray(v, 'v', n);
    checkDisjoint(params, 'params', grads, 'grads');
    checkDisjoint(params, 'params', m, 'm');
    checkDisjoint(grads, 'grads', m, 'm');
    checkDisjoint(params, 'params', v, 'v');
    checkDisjoint(grads, 'grads', v, 'v');
    checkDisjoint(m, 'm', v, 'v');
    const { c, maxGradNorm } = coefficients(o);
    const norm = Math.sqrt(sumOfSquares(grads, n));
    update(params, grads, m, v, n, { ...c, scale: clipScale(norm, maxGradNorm) });
    return norm;
  },
};
