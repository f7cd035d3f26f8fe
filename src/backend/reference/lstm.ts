/**
 * Reference LSTM kernels: plain loops in float64, row by row and step by
 * step, the oracle of the native kernels. Arguments are checked in the
 * native binding's order (sizes, then arrays in argument order, each output
 * against everything before it), so both backends refuse a bad call alike.
 * The stash has the native layout (see kernels/lstm.ts).
 */
import type { LstmKernels } from '../kernels/lstm';
import { lstmStashSize, lstmWorkSize } from '../kernels/lstm';
import type { FloatArray } from '../types';
import { expected, rangeError, typeError } from '../../errors';
import { checkArray, checkBoolean, checkOptionalArray, checkPositiveInt, checkSize, sizeProduct } from '../../validate';
import { checkNoOverlap } from './dense';

interface Sizes {
  batch: number;
  steps: number;
  inDim: number;
  hidden: number;
}

function checkSizes(batch: number, steps: number, inDim: number, hidden: number): Sizes {
  checkSize(batch, 'batch');
  checkSize(steps, 'steps');
  checkSize(inDim, 'inDim');
  checkPositiveInt(hidden, 'hidden');
  sizeProduct(batch, steps, Math.max(inDim, 7 * hidden));
  return { batch, steps, inDim, hidden };
}

/** Optional per-row lengths: a Uint32Array `[batch]` of values at most `steps`. */
export function checkLengths(value: unknown, batch: number, steps: number): Uint32Array | null {
  if (value === null || value === undefined) return null;
  if (!(value instanceof Uint32Array)) throw typeError(expected('Uint32Array or null', 'lengths', value));
  if (value.length !== batch) throw rangeError(expected(`Uint32Array of length ${batch}`, 'lengths', value), 'ERR_SHAPE');
  for (let b = 0; b < batch; b++) {
    if (value[b] > steps) throw rangeError(expected(`Uint32Array of values at most ${steps}`, 'lengths', value));
  }
  return value;
}

type Arg = readonly [ArrayBufferView | null, string];

/** Refuses `output` sharing memory with any earlier argument (the binding's order). */
function checkAgainst(output: FloatArray | null, name: string, earlier: readonly Arg[]): void {
  for (const [other, otherName] of earlier) checkNoOverlap(output, name, other as FloatArray | null, otherName);
}

const sigmoid = (v: number): number => (v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v)));

export const referenceLstm: LstmKernels = {
  forward(x, lengths, h0, c0, weightIh, weightHh, biasIh, biasHh, y, hn, cn, stash, batch, steps, inDim, hidden) {
    const s = checkSizes(batch, steps, inDim, hidden);
    const H = s.hidden;
    const G = 4 * H;
    const rows = batch * steps;
    checkArray(x, 'x', rows * inDim);
    const len = checkLengths(lengths, batch, steps);
    checkOptionalArray(h0, 'h0', batch * H);
    checkOptionalArray(c0, 'c0', batch * H);
    checkArray(weightIh, 'weightIh', G * inDim);
    checkArray(weightHh, 'weightHh', G * H);
    checkOptionalArray(biasIh, 'biasIh', G);
    checkOptionalArray(biasHh, 'biasHh', G);
    const inputs: Arg[] = [
      [x, 'x'],
      [len, 'lengths'],
      [h0, 'h0'],
      [c0, 'c0'],
      [weightIh, 'weightIh'],
      [weightHh, 'weightHh'],
      [biasIh, 'biasIh'],
      [biasHh, 'biasHh'],
    ];
    const outputs: [FloatArray, string, number][] = [
      [y, 'y', rows * H],
      [hn, 'hn', batch * H],
      [cn, 'cn', batch * H],
      [stash, 'stash', lstmStashSize(batch, steps, H)],
    ];
    for (const [out, name, n] of outputs) {
      checkArray(out, name, n);
      checkAgainst(out, name, inputs);
      inputs.push([out, name]);
    }

    const gOff = 0;
    const hOff = rows * G;
    const cOff = hOff + rows * H;
    const tOff = cOff + rows * H;
    const h = new Float64Array(H);
    const c = new Float64Array(H);
    const pre = new Float64Array(G);
    for (let b = 0; b < batch; b++) {
      const n = len ? len[b] : steps;
      for (let j = 0; j < H; j++) {
        h[j] = h0 ? h0[b * H + j] : 0;
        c[j] = c0 ? c0[b * H + j] : 0;
      }
      for (let t = 0; t < steps; t++) {
        const r = b * steps + t;
        if (t >= n) {
          for (let j = 0; j < H; j++) {
            y[r * H + j] = 0;
            stash[hOff + r * H + j] = 0;
            stash[cOff + r * H + j] = 0;
            stash[tOff + r * H + j] = 0;
          }
          for (let k = 0; k < G; k++) stash[gOff + r * G + k] = 0;
          continue;
        }
        for (let k = 0; k < G; k++) {
          let v = (biasIh ? biasIh[k] : 0) + (biasHh ? biasHh[k] : 0);
          for (let p = 0; p < inDim; p++) v += weightIh[k * inDim + p] * x[r * inDim + p];
          for (let p = 0; p < H; p++) v += weightHh[k * H + p] * h[p];
          pre[k] = v;
        }
        for (let j = 0; j < H; j++) {
          stash[hOff + r * H + j] = h[j];
          stash[cOff + r * H + j] = c[j];
          const i = sigmoid(pre[j]);
          const f = sigmoid(pre[H + j]);
          const g = Math.tanh(pre[2 * H + j]);
          const o = sigmoid(pre[3 * H + j]);
          c[j] = f * c[j] + i * g;
          const tc = Math.tanh(c[j]);
          h[j] = o * tc;
          y[r * H + j] = h[j];
          stash[tOff + r * H + j] = tc;
          stash[gOff + r * G + j] = i;
          stash[gOff + r * G + H + j] = f;
          stash[gOff + r * G + 2 * H + j] = g;
          stash[gOff + r * G + 3 * H + j] = o;
        }
      }
      for (let j = 0; j < H; j++) {
        hn[b * H + j] = h[j];
        cn[b * H + j] = c[j];
      }
    }
  },

  backward(
    x,
    lengths,
    weightIh,
    weightHh,
    stash,
    dy,
    dhn,
    dcn,
    dx,
    dh0,
    dc0,
    dWeightIh,
    dWeightHh,
    dBiasIh,
    dBiasHh,
    work,
    batch,
    steps,
    inDim,
    hidden,
    accumulate,
  ) {
    const s = checkSizes(batch, steps, inDim, hidden);
    checkBoolean(accumulate, 'accumulate');
    const H = s.hidden;
    const G = 4 * H;
    const rows = batch * steps;
    checkArray(x, 'x', rows * inDim);
    const len = checkLengths(lengths, batch, steps);
    checkArray(weightIh, 'weightIh', G * inDim);
    checkArray(weightHh, 'weightHh', G * H);
    checkArray(stash, 'stash', lstmStashSize(batch, steps, H));
    checkOptionalArray(dy, 'dy', rows * H);
    checkOptionalArray(dhn, 'dhn', batch * H);
    checkOptionalArray(dcn, 'dcn', batch * H);
    const args: Arg[] = [
      [x, 'x'],
      [len, 'lengths'],
      [weightIh, 'weightIh'],
      [weightHh, 'weightHh'],
      [stash, 'stash'],
      [dy, 'dy'],
      [dhn, 'dhn'],
      [dcn, 'dcn'],
    ];
    const outputs: [FloatArray | null, string, number, boolean][] = [
      [dx, 'dx', rows * inDim, true],
      [dh0, 'dh0', batch * H, false],
      [dc0, 'dc0', batch * H, false],
      [dWeightIh, 'dWeightIh', G * inDim, true],
      [dWeightHh, 'dWeightHh', G * H, true],
      [dBiasIh, 'dBiasIh', G, true],
      [dBiasHh, 'dBiasHh', G, true],
      [work, 'work', lstmWorkSize(batch, steps, H), false],
    ];
    for (const [out, name, n, optional] of outputs) {
      if (optional) checkOptionalArray(out, name, n);
      else checkArray(out, name, n);
      checkAgainst(out, name, args);
      args.push([out, name]);
    }

    if (!accumulate) {
      dWeightIh?.fill(0);
      dWeightHh?.fill(0);
      dBiasIh?.fill(0);
      dBiasHh?.fill(0);
    }
    dx?.fill(0);
    const gOff = 0;
    const hOff = rows * G;
    const cOff = hOff + rows * H;
    const tOff = cOff + rows * H;
    const dh = new Float64Array(H);
    const dc = new Float64Array(H);
    const dg = new Float64Array(G);
    for (let b = 0; b < batch; b++) {
      const n = len ? len[b] : steps;
      for (let j = 0; j < H; j++) {
        dh[j] = dhn ? dhn[b * H + j] : 0;
        dc[j] = dcn ? dcn[b * H + j] : 0;
      }
      for (let t = n - 1; t >= 0; t--) {
        const r = b * steps + t;
        for (let j = 0; j < H; j++) {
          const i = stash[gOff + r * G + j];
          const f = stash[gOff + r * G + H + j];
          const g = stash[gOff + r * G + 2 * H + j];
          const o = stash[gOff + r * G + 3 * H + j];
          const tc = stash[tOff + r * H + j];
          const dhv = dh[j] + (dy ? dy[r * H + j] : 0);
          const dct = dc[j] + dhv * o * (1 - tc * tc);
          dg[j] = dct * g * i * (1 - i);
          dg[H + j] = dct * stash[cOff + r * H + j] * f * (1 - f);
          dg[2 * H + j] = dct * i * (1 - g * g);
          dg[3 * H + j] = dhv * tc * o * (1 - o);
          dc[j] = dct * f;
        }
        for (let p = 0; p < H; p++) {
          let v = 0;
          for (let k = 0; k < G; k++) v += dg[k] * weightHh[k * H + p];
          dh[p] = v;
        }
        if (dx) {
          for (let p = 0; p < inDim; p++) {
            let v = 0;
            for (let k = 0; k < G; k++) v += dg[k] * weightIh[k * inDim + p];
            dx[r * inDim + p] = v;
          }
        }
        for (let k = 0; k < G; k++) {
          if (dWeightIh) for (let p = 0; p < inDim; p++) dWeightIh[k * inDim + p] += dg[k] * x[r * inDim + p];
          if (dWeightHh) for (let p = 0; p < H; p++) dWeightHh[k * H + p] += dg[k] * stash[hOff + r * H + p];
          if (dBiasIh) dBiasIh[k] += dg[k];
          if (dBiasHh) dBiasHh[k] += dg[k];
        }
      }
      for (let j = 0; j < H; j++) {
        dh0[b * H + j] = dh[j];
        dc0[b * H + j] = dc[j];
      }
    }
  },
};
