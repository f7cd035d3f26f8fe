/**
 * The reference driver shared by the flow-stack families (planar, radial):
 * argument checks from the family's signatures, the loop over rows, shared
 * vs amortized parameters, gradient accumulation and the count of
 * non-finite rows. Each family supplies only its row math (StackRowMath).
 */
import type { FlowStackKernels, FlowStackSignatures } from '../kernels/flow-stack';
import { checkKernelArgs } from '../kernels/signature';
import type { FloatArray } from '../types';

/** One family's mathematics over one row of a stack of `layers` layers; `base` is the row's parameter offset. */
export interface StackRowMath {
  /**
   * Runs every layer on `z` in place, writes layer k's stashed value to
   * `stash[stashAt + k]` and its log-det to `layerLogDet[stashAt + k]` (when
   * non-null); returns the summed log-det.
   */
  forwardRow(
    z: Float64Array,
    params: FloatArray,
    base: number,
    dim: number,
    layers: number,
    stash: FloatArray,
    stashAt: number,
    layerLogDet: FloatArray | null,
  ): number;
  /**
   * Backpropagates one row: `z` holds the row of the saved array (y or x,
   * per the family's signature), `g` holds dy and becomes dx, `gl` is
   * ∂L/∂logDet; each parameter gradient v of index i (relative to the row's
   * parameters) goes through `put(i, v)`. `scratch` has room for
   * `layers · dim` values.
   */
  backwardRow(
    z: Float64Array,
    g: Float64Array,
    gl: number,
    params: FloatArray,
    base: number,
    dim: number,
    layers: number,
    stash: FloatArray,
    stashAt: number,
    put: (i: number, v: number) => void,
    scratch: Float64Array,
  ): void;
  /** Inverts every layer on `z` in place; returns log|det ∂x/∂y| (NaN when a layer fails). */
  inverseRow(z: Float64Array, params: FloatArray, base: number, dim: number, layers: number): number;
}

function rowFinite(a: FloatArray, start: number, n: number): boolean {
  for (let i = start; i < start + n; i++) if (!Number.isFinite(a[i])) return false;
  return true;
}

/** The reference kernels of one flow-stack family. */
export function referenceFlowStack<S extends FlowStackSignatures>(signatures: S, math: StackRowMath): FlowStackKernels<S> {
  const kernels: FlowStackKernels = {
    // Named parameters (so each kernel's length is its arity) and `arguments`
    // for the checks (so a short call is refused as the binding refuses it).
    forward(x, params, y, logDet, layerLogDet, stash, batch, dim, layers, amortized) {
      // eslint-disable-next-line prefer-rest-params
      const s = checkKernelArgs(signatures.forward, arguments);
      const z = new Float64Array(dim);
      let bad = 0;
      for (let r = 0; r < batch; r++) {
        for (let d = 0; d < dim; d++) z[d] = x[r * dim + d];
        const total = math.forwardRow(z, params, amortized ? r * s.rowParams : 0, dim, layers, stash, r * layers, layerLogDet);
        for (let d = 0; d < dim; d++) y[r * dim + d] = z[d];
        logDet[r] = total;
        if (!rowFinite(y, r * dim, dim) || !Number.isFinite(logDet[r])) bad++;
      }
      return bad;
    },

    backward(saved, stash, params, dy, dLogDet, dx, dParams, batch, dim, layers, amortized) {
      // eslint-disable-next-line prefer-rest-params
      const s = checkKernelArgs(signatures.backward, arguments);
      const z = new Float64Array(dim);
      const g = new Float64Array(dim);
      const scratch = new Float64Array(layers * dim);
      let out = 0;
      // Amortized rows overwrite their own gradients; shared ones accumulate over rows and calls.
      const put = amortized
        ? (i: number, v: number) => {
            dParams[out + i] = v;
          }
        : (i: number, v: number) => {
            dParams[i] += v;
          };
      let bad = 0;
      for (let r = 0; r < batch; r++) {
        for (let d = 0; d < dim; d++) {
          z[d] = saved[r * dim + d];
          g[d] = dy[r * dim + d];
        }
        out = amortized ? r * s.rowParams : 0;
        math.backwardRow(z, g, dLogDet[r], params, out, dim, layers, stash, r * layers, put, scratch);
        for (let d = 0; d < dim; d++) dx[r * dim + d] = g[d];
        if (!rowFinite(dx, r * dim, dim) || (amortized && !rowFinite(dParams, r * s.rowParams, s.rowParams))) bad++;
      }
      return bad;
    },

    inverse(y, params, x, logDet, batch, dim, layers, amortized) {
      // eslint-disable-next-line prefer-rest-params
      const s = checkKernelArgs(signatures.inverse, arguments);
      const z = new Float64Array(dim);
      let bad = 0;
      for (let r = 0; r < batch; r++) {
        for (let d = 0; d < dim; d++) z[d] = y[r * dim + d];
        const total = math.inverseRow(z, params, amortized ? r * s.rowParams : 0, dim, layers);
        for (let d = 0; d < dim; d++) x[r * dim + d] = z[d];
        const ok = Number.isFinite(total) && rowFinite(x, r * dim, dim);
        logDet[r] = ok ? total : NaN;
        if (!ok) bad++;
      }
      return bad;
    },
  };
  return kernels as FlowStackKernels<S>;
}
