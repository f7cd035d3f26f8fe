/**
 * Binarization of grey-level images for Bernoulli likelihoods. Dynamic
 * binarization (a fresh sample per use, as in Salakhutdinov & Murray 2008
 * and the flow-VAE papers) takes uniforms the caller draws from the seeded
 * stream, e.g. `backend.rng.uniform(seed, offset, u)`.
 */
import { expected, rangeError, typeError } from '../errors';
import type { FloatArray } from '../backend/types';

function checkFloatArray(value: unknown, name: string): FloatArray {
  if (!(value instanceof Float32Array) && !(value instanceof Float64Array)) {
    throw typeError(expected('Float32Array or Float64Array', name, value));
  }
  return value;
}

/**
 * `out[i] = x[i] > u[i] ? 1 : 0`: with u uniform on (0, 1) this samples
 * Bernoulli(x[i]). `out` may be `x` itself.
 */
export function binarize(x: FloatArray, u: FloatArray, out: FloatArray): FloatArray {
  checkFloatArray(x, 'x');
  checkFloatArray(u, 'u');
  checkFloatArray(out, 'out');
  if (u.length !== x.length) throw rangeError(expected(`array of length ${x.length}`, 'u', u), 'ERR_SHAPE');
  if (out.length !== x.length) throw rangeError(expected(`array of length ${x.length}`, 'out', out), 'ERR_SHAPE');
  for (let i = 0; i < x.length; i++) out[i] = x[i] > u[i] ? 1 : 0;
  return out;
}

/** `out[i] = x[i] > threshold ? 1 : 0` (fixed binarization). `out` may be `x`. */
export function binarizeThreshold(x: FloatArray, out: FloatArray, threshold = 0.5): FloatArray {
  checkFloatArray(x, 'x');
  checkFloatArray(out, 'out');
  if (out.length !== x.length) throw rangeError(expected(`array of length ${x.length}`, 'out', out), 'ERR_SHAPE');
  if (typeof threshold !== 'number') throw typeError(expected('finite number', 'threshold', threshold));
  if (!Number.isFinite(threshold)) throw rangeError(expected('finite number', 'threshold', threshold));
  for (let i = 0; i < x.length; i++) out[i] = x[i] > threshold ? 1 : 0;
  return out;
}
