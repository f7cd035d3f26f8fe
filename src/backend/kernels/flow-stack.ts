/**
 * The calls shared by the flow-stack families (planar, radial): a stack of K
 * layers over a batch `[batch, dim]` run as one kernel call, shared
 * parameters `[K·P]` or amortized ones `[batch, K·P]`, `stash [batch, K]`
 * carrying one number per row and layer from forward to backward. Each family
 * supplies its name, its parameters per layer P(dim) and the array backward
 * rebuilds the layer inputs from (`saved`: the output y or the input x).
 *
 * The signatures here are the ones native/napi/flow_args.h reads: every
 * output is refused when it shares memory with any earlier argument.
 */
import { flag, input, kernel, optionalOutput, output, positive, size, sizeProduct, type KernelFunction, type Sizes } from './signature';

/** The sizes the binding derives, in its order (params, x, stash). */
function stackSizes(paramSize: (dim: number) => number): (s: Sizes) => Sizes {
  return (s) => {
    const rowParams = sizeProduct(s.layers, paramSize(s.dim), 'params');
    return {
      rowParams,
      params: s.amortized ? sizeProduct(s.batch, rowParams, 'params') : rowParams,
      values: sizeProduct(s.batch, s.dim, 'x'),
      perLayer: sizeProduct(s.batch, s.layers, 'stash'),
    };
  };
}

const values = (s: Sizes) => s.values;
const params = (s: Sizes) => s.params;
const perLayer = (s: Sizes) => s.perLayer;
const batch = (s: Sizes) => s.batch;
const stackScalars = [size('batch'), positive('dim'), positive('layers'), flag('amortized')] as const;

/** The three signatures of one flow-stack family. */
export function flowStackSignatures<const F extends string, const Saved extends 'x' | 'y'>(family: F, paramSize: (dim: number) => number, saved: Saved) {
  const derive = stackSizes(paramSize);
  return {
    forward: kernel(
      `${family}Forward`,
      [
        input('x', values),
        input('params', params),
        output('y', values),
        output('logDet', batch),
        optionalOutput('layerLogDet', perLayer),
        output('stash', perLayer),
        ...stackScalars,
      ],
      'count',
      derive,
    ),
    backward: kernel(
      `${family}Backward`,
      [
        input(saved, values),
        input('stash', perLayer),
        input('params', params),
        input('dy', values),
        input('dLogDet', batch),
        output('dx', values),
        output('dParams', params),
        ...stackScalars,
      ],
      'count',
      derive,
    ),
    inverse: kernel(
      `${family}Inverse`,
      [input('y', values), input('params', params), output('x', values), output('logDet', batch), ...stackScalars],
      'count',
      derive,
    ),
  };
}

export type FlowStackSignatures = ReturnType<typeof flowStackSignatures>;

/**
 * The kernels of a flow-stack family, typed from its signatures:
 *
 * - `forward(x, params, y, logDet, layerLogDet | null, stash, batch, dim, layers, amortized)`
 *   writes `y [batch, dim]`, `logDet [batch]` (summed over layers),
 *   `layerLogDet [batch, K]` when non-null, and `stash`; returns the number
 *   of rows whose y or log-det is not finite.
 * - `backward(saved, stash, params, dy, dLogDet, dx, dParams, batch, dim, layers, amortized)`
 *   backpropagates `dy = ∂L/∂y`, `dLogDet = ∂L/∂logDet`: writes `dx`; shared
 *   `dParams [K·P]` is accumulated into (+=, summed over the batch),
 *   amortized `dParams [batch, K·P]` overwritten. Returns the number of rows
 *   whose dx (or amortized dParams row) is not finite.
 * - `inverse(y, params, x, logDet, batch, dim, layers, amortized)` writes
 *   `x` and `logDet` = log|det ∂x/∂y|; rows that fail get a NaN log-det and
 *   are counted in the return value.
 */
export interface FlowStackKernels<S extends FlowStackSignatures = FlowStackSignatures> {
  forward: KernelFunction<S['forward']>;
  backward: KernelFunction<S['backward']>;
  inverse: KernelFunction<S['inverse']>;
}
