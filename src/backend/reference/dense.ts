/**
 * Reference dense kernels: plain loops in float64, the oracle the native
 * kernels are tested against. Arguments are validated exactly as the native
 * binding does (sizes and flags first, then arrays in argument order), so
 * both backends throw the same error for the same bad call.
 */
import type { DenseKernels } from '../kernels/dense';
import type { FloatArray } from '../types';
import { describe, rangeError } from '../../errors';
import { checkArray, checkBoolean, checkFinite, checkOptionalArray, checkSize, sizeProduct, sharesMemory } from '../../validate';

/** Refuses an output that shares memory with another argument (the loops would read what they overwrite). */
export function checkNoOverlap(output: FloatArray | null, outputName: string, other: FloatArray | null, otherName: string): void {
  if (output && other && sharesMemory(output, other)) {
    const kind = output instanceof Float32Array ? 'Float32Array' : 'Float64Array';
    throw rangeError(`Expected ${kind} not overlapping "${otherName}" for "${outputName}" but received ${describe(output)}`);
  }
}

type Named = readonly [FloatArray | null, string];

/**
 * Refuses outputs sharing memory with the inputs (input by input) or with each
 * other, in the order the native bindings check, so both name the same pair.
 */
export function checkOutputsDisjoint(outputs: readonly Named[], inputs: readonly Named[]): void {
  for (const [input, inputName] of inputs) for (const [output, outputName] of outputs) checkNoOverlap(output, outputName, input, inputName);
  for (let j = 1; j < outputs.length; j++) for (let i = 0; i < j; i++) checkNoOverlap(outputs[j][0], outputs[j][1], outputs[i][0], outputs[i][1]);
}

export const referenceDense: DenseKernels = {
  gemm(transA, transB, m, n, k, alpha, a, b, beta, c) {
    checkBoolean(transA, 'transA');
    checkBoolean(transB, 'transB');
    checkSize(m, 'm');
    checkSize(n, 'n');
    checkSize(k, 'k');
    checkFinite(alpha, 'alpha');
    checkFinite(beta, 'beta');
    checkArray(a, 'a', sizeProduct(m, k));
    checkArray(b, 'b', sizeProduct(k, n));
    checkArray(c, 'c', sizeProduct(m, n));
    checkNoOverlap(c, 'c', a, 'a');
    checkNoOverlap(c, 'c', b, 'b');

    // Strides of op(A)(i, p) and op(B)(p, j) in the stored arrays.
    const aRow = transA ? 1 : k;
    const aCol = transA ? m : 1;
    const bRow = transB ? 1 : n;
    const bCol = transB ? k : 1;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        // As in BLAS: alpha == 0 (or k == 0) reads neither A nor B, and
        // beta == 0 overwrites C, so NaN already in C does not propagate.
        let sum = 0;
        if (alpha !== 0) {
          for (let p = 0; p < k; p++) sum += a[i * aRow + p * aCol] * b[p * bRow + j * bCol];
        }
        const old = beta === 0 ? 0 : beta * c[i * n + j];
        c[i * n + j] = alpha * sum + old;
      }
    }
  },

  forward(x, weight, bias, y, batch, inDim, outDim) {
    checkSize(batch, 'batch');
    checkSize(inDim, 'inDim');
    checkSize(outDim, 'outDim');
    checkArray(x, 'x', sizeProduct(batch, inDim));
    checkArray(weight, 'weight', sizeProduct(outDim, inDim));
    const b = checkOptionalArray(bias, 'bias', outDim);
    checkArray(y, 'y', sizeProduct(batch, outDim));
    checkNoOverlap(y, 'y', x, 'x');
    checkNoOverlap(y, 'y', weight, 'weight');
    checkNoOverlap(y, 'y', b, 'bias');

    for (let r = 0; r < batch; r++) {
      for (let o = 0; o < outDim; o++) {
        let sum = b ? b[o] : 0;
        for (let i = 0; i < inDim; i++) sum += x[r * inDim + i] * weight[o * inDim + i];
        y[r * outDim + o] = sum;
      }
    }
  },

  backward(x, weight, dy, dx, dWeight, dBias, batch, inDim, outDim, accumulate) {
    checkSize(batch, 'batch');
    checkSize(inDim, 'inDim');
    checkSize(outDim, 'outDim');
    checkBoolean(accumulate, 'accumulate');
    checkArray(x, 'x', sizeProduct(batch, inDim));
    checkArray(weight, 'weight', sizeProduct(outDim, inDim));
    checkArray(dy, 'dy', sizeProduct(batch, outDim));
    const gx = checkOptionalArray(dx, 'dx', sizeProduct(batch, inDim));
    const gw = checkOptionalArray(dWeight, 'dWeight', sizeProduct(outDim, inDim));
    const gb = checkOptionalArray(dBias, 'dBias', outDim);
    checkOutputsDisjoint(
      [
        [gx, 'dx'],
        [gw, 'dWeight'],
        [gb, 'dBias'],
      ],
      [
        [x, 'x'],
        [weight, 'weight'],
        [dy, 'dy'],
      ],
    );

    if (gx) {
      // dx = dy · W
      for (let r = 0; r < batch; r++) {
        for (let i = 0; i < inDim; i++) {
          let sum = 0;
          for (let o = 0; o < outDim; o++) sum += dy[r * outDim + o] * weight[o * inDim + i];
          gx[r * inDim + i] = sum;
        }
      }
    }
    if (gw) {
      // dW = dyᵀ · x
      for (let o = 0; o < outDim; o++) {
        for (let i = 0; i < inDim; i++) {
          let sum = 0;
          for (let r = 0; r < batch; r++) sum += dy[r * outDim + o] * x[r * inDim + i];
          gw[o * inDim + i] = accumulate ? gw[o * inDim + i] + sum : sum;
        }
      }
    }
    if (gb) {
      // db = Σ_rows dy
      for (let o = 0; o < outDim; o++) {
        let sum = 0;
        for (let r = 0; r < batch; r++) sum += dy[r * outDim + o];
        gb[o] = accumulate ? gb[o] + sum : sum;
      }
    }
  },
};
