/** Reference fused Adam/AdamW (float64) with PyTorch's semantics, as defined in kernels/adam.ts. */
import { ADAM_STEP_OPTION_KEYS, type AdamKernels, type AdamStepOptions } from '../kernels/adam';
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
} from '../../validate';
import { expected, rangeError } from '../../errors';

/** The step updates its buffers in place while reading grads: views sharing memory would give wrong results. */
function checkDisjoint(a: FloatArray, aName: string, b: FloatArray, bName: string): void {
  const overlap =
    a.buffer === b.buffer &&
    a.length > 0 &&
    b.length > 0 &&
    a.byteOffset < b.byteOffset + b.byteLength &&
    b.byteOffset < a.byteOffset + a.byteLength;
  if (overlap) throw rangeError(expected(`array not overlapping "${aName}"`, bName, b));
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

export const referenceAdam: AdamKernels = {
  step(params: FloatArray, grads: FloatArray, m: FloatArray, v: FloatArray, n: number, options: AdamStepOptions): number {
    // Same order of checks as the cpu backend (options object, then the binding's order).
    const o = checkOptions(options, 'options', ADAM_STEP_OPTION_KEYS);
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
    const lr = checkPositiveNumber(o.lr, 'lr');
    const beta1 = checkInRange(o.beta1, 'beta1', 0, 1, { hi: true });
    const beta2 = checkInRange(o.beta2, 'beta2', 0, 1, { hi: true });
    const eps = checkPositiveNumber(o.eps, 'eps');
    const weightDecay = checkNonNegativeNumber(o.weightDecay, 'weightDecay');
    const decoupled = checkBoolean(o.decoupled, 'decoupled');
    const step = checkPositiveInt(o.step, 'step');
    const maxGradNorm = checkNonNegativeNumber(o.maxGradNorm, 'maxGradNorm');

    const norm = Math.sqrt(sumOfSquares(grads, n));
    // torch.nn.utils.clip_grad_norm_; a NaN norm gives a NaN scale, as torch's clamp does.
    const scale = maxGradNorm > 0 ? Math.min(1, maxGradNorm / (norm + 1e-6)) : 1;
    update(params, grads, m, v, n, {
      scale,
      l2: decoupled ? 0 : weightDecay,
      decay: decoupled ? 1 - lr * weightDecay : 1,
      beta1,
      beta2,
      stepSize: lr / (1 - beta1 ** step),
      bias2Sqrt: Math.sqrt(1 - beta2 ** step),
      eps,
    });
    return norm;
  },
};
