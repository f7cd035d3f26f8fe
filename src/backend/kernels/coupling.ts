import { expected, rangeError } from '../../errors';
import {
  input,
  kernel,
  lateSize,
  optionalInput,
  optionalOutput,
  output,
  perColumn,
  perRow,
  perValue,
  rowScalars,
  rowSizes,
  size,
  sizeProduct,
  type KernelFunction,
  type Sizes,
} from './signature';

/**
 * Coupling flows (NICE: Dinh et al. 2015; RealNVP: Dinh et al. 2017): the
 * elementwise parts, fused over the batch. The conditioner network itself
 * runs on the dense kernels.
 *
 * A coupling layer splits each row of x `[batch, dim]` into a conditioning
 * part x_a and a transformed part x_b = columns [offset, offset + width). The
 * kernels read and write those columns in place in the full rows (no copies
 * of halves): the transform kernels write only columns [offset, offset +
 * width) of their output and leave the other columns untouched (the caller
 * copies the pass-through columns).
 *
 *   additive (NICE):    y_b = x_b + m,                      log|det| = 0
 *   affine (RealNVP):   s = scale ⊙ tanh(ŝ),
 *                       y_b = x_b ⊙ exp(s) + t,             log|det| = Σ s
 *   scaling (NICE's diagonal layer, on whole rows, a shared parameter):
 *                       y = x ⊙ exp(logScale),              log|det| = Σ logScale
 *
 * Conditioner output `h` per row: m `[width]` (additive), or ŝ `[width]`
 * followed by t `[width]` (affine, row stride 2·width). `scale` `[width]` is
 * the learned per-dimension bound of s (|s| < |scale|).
 *
 * Outputs are overwritten unless the name says they accumulate (dScale,
 * dLogScale: parameter gradients; scatterAdd). Outputs may not share memory
 * with inputs.
 */
/** The column window (batch, dim, offset, width), read as the binding reads it: offset + width ≤ dim. */
const windowScalars = [size('batch'), size('dim'), size('offset'), size('width')] as const;

function windowSizes(s: Sizes): Sizes {
  if (s.width > s.dim) throw rangeError(expected(`integer in [0, ${s.dim}]`, 'width', s.width));
  if (s.offset > s.dim - s.width) throw rangeError(expected(`integer in [0, ${s.dim - s.width}]`, 'offset', s.offset));
  return { values: sizeProduct(s.batch, s.dim, 'batch * dim') };
}

/** The window, then contextDim (read after the window's checks) and the conditioner's row width·contextDim. */
function contextSizes(conditioner: string) {
  return (s: Sizes, readLate: (name: string) => number): Sizes => {
    const window = windowSizes(s);
    const contextDim = readLate('contextDim');
    return {
      ...window,
      contexts: sizeProduct(s.batch, contextDim, 'batch * contextDim'),
      conditioner: sizeProduct(s.batch, s.width + contextDim, conditioner),
    };
  };
}

/** The window, then the conditioner output h: `perRow`·width values per row. */
function hSizes(perRowWidths: number, name: string) {
  return (s: Sizes): Sizes => ({ ...windowSizes(s), h: sizeProduct(s.batch, perRowWidths * s.width, name) });
}

const values = (s: Sizes) => s.values;
const hLength = (s: Sizes) => s.h;
const widthLength = (s: Sizes) => s.width;
const contextLength = (s: Sizes) => s.contexts;
const conditionerLength = (s: Sizes) => s.conditioner;
const hasContext = (s: Sizes) => s.contextDim > 0;

/**
 * The coupling calls, declared once. A context array is required when
 * contextDim > 0 and otherwise null or empty; no output may overlap an
 * earlier argument.
 */
export const COUPLING_SIGNATURES = {
  gather: kernel(
    'couplingGather',
    [input('x', values), optionalInput('context', contextLength, hasContext), output('out', conditionerLength), ...windowScalars, lateSize('contextDim')],
    'void',
    contextSizes('out'),
  ),
  scatterAdd: kernel(
    'couplingScatterAdd',
    [
      input('dIn', conditionerLength),
      output('dx', values),
      optionalOutput('dContext', contextLength, [], hasContext),
      ...windowScalars,
      lateSize('contextDim'),
    ],
    'void',
    contextSizes('dIn'),
  ),
  affineForward: kernel(
    'couplingAffineForward',
    [input('x', values), input('h', hLength), input('scale', widthLength), output('y', values), output('logDet', perRow), ...windowScalars],
    'void',
    hSizes(2, 'h'),
  ),
  affineInverse: kernel(
    'couplingAffineInverse',
    [input('y', values), input('h', hLength), input('scale', widthLength), output('x', values), output('logDet', perRow), ...windowScalars],
    'void',
    hSizes(2, 'h'),
  ),
  affineBackward: kernel(
    'couplingAffineBackward',
    [
      input('x', values),
      input('h', hLength),
      input('scale', widthLength),
      input('dy', values),
      input('dLogDet', perRow),
      output('dx', values),
      output('dh', hLength),
      output('dScale', widthLength),
      ...windowScalars,
    ],
    'void',
    hSizes(2, 'h'),
  ),
  additiveForward: kernel('couplingAdditiveForward', [input('x', values), input('h', hLength), output('y', values), ...windowScalars], 'void', hSizes(1, 'h')),
  additiveInverse: kernel('couplingAdditiveInverse', [input('y', values), input('h', hLength), output('x', values), ...windowScalars], 'void', hSizes(1, 'h')),
  additiveBackward: kernel(
    'couplingAdditiveBackward',
    [input('dy', values), output('dx', values), output('dh', hLength), ...windowScalars],
    'void',
    hSizes(1, 'dh'),
  ),
  scaleForward: kernel(
    'couplingScaleForward',
    [input('x', perValue), input('logScale', perColumn), output('y', perValue), output('logDet', perRow), ...rowScalars],
    'void',
    rowSizes,
  ),
  scaleInverse: kernel(
    'couplingScaleInverse',
    [input('y', perValue), input('logScale', perColumn), output('x', perValue), output('logDet', perRow), ...rowScalars],
    'void',
    rowSizes,
  ),
  scaleBackward: kernel(
    'couplingScaleBackward',
    [
      input('x', perValue),
      input('logScale', perColumn),
      input('dy', perValue),
      input('dLogDet', perRow),
      output('dx', perValue),
      output('dLogScale', perColumn),
      ...rowScalars,
    ],
    'void',
    rowSizes,
  ),
};

type S = typeof COUPLING_SIGNATURES;

export interface CouplingKernels {
  /**
   * `gather(x, context | null, out, batch, dim, offset, width, contextDim)`: the conditioner's input,
   * `out[r] = [x[r, offset : offset + width], context[r]]`, `out` `[batch, width + contextDim]`.
   * `context` `[batch, contextDim]` (null when contextDim is 0).
   */
  gather: KernelFunction<S['gather']>;
  /**
   * `scatterAdd(dIn, dx, dContext | null, batch, dim, offset, width, contextDim)`: the transpose of
   * gather, accumulating: `dx[r, offset + j] += dIn[r, j]` and `dContext[r, c] += dIn[r, width + c]`
   * (dContext null when contextDim is 0).
   */
  scatterAdd: KernelFunction<S['scatterAdd']>;
  /** `affineForward(x, h, scale, y, logDet, batch, dim, offset, width)`: columns [offset, offset + width) of y, and `logDet = Σ s` `[batch]`. */
  affineForward: KernelFunction<S['affineForward']>;
  /** `affineInverse(y, h, scale, x, logDet, …)`: `x_b = (y_b − t) ⊙ exp(−s)` in columns [offset, offset + width) of x; `logDet = −Σ s`. */
  affineInverse: KernelFunction<S['affineInverse']>;
  /**
   * `affineBackward(x, h, scale, dy, dLogDet, dx, dh, dScale, batch, dim, offset, width)` given
   * `dy = ∂L/∂y` `[batch, dim]` and `dLogDet` `[batch]`: columns [offset, offset + width) of dx,
   * all of `dh` `[batch, 2·width]` (overwritten), and `dScale` `[width]` (accumulated).
   */
  affineBackward: KernelFunction<S['affineBackward']>;
  /** `additiveForward(x, h, y, batch, dim, offset, width)`: `y_b = x_b + m` in columns [offset, offset + width) of y (log-det 0). */
  additiveForward: KernelFunction<S['additiveForward']>;
  /** `additiveInverse(y, h, x, …)`: `x_b = y_b − m` in columns [offset, offset + width) of x. */
  additiveInverse: KernelFunction<S['additiveInverse']>;
  /** `additiveBackward(dy, dx, dh, …)`: columns [offset, offset + width) of dx and all of `dh` `[batch, width]`, both = dy_b. */
  additiveBackward: KernelFunction<S['additiveBackward']>;
  /** `scaleForward(x, logScale, y, logDet, batch, dim)`: `y = x ⊙ exp(logScale)` `[batch, dim]`, `logDet = Σ logScale` `[batch]`. */
  scaleForward: KernelFunction<S['scaleForward']>;
  /** `scaleInverse(y, logScale, x, logDet, batch, dim)`: `x = y ⊙ exp(−logScale)`, `logDet = −Σ logScale`. */
  scaleInverse: KernelFunction<S['scaleInverse']>;
  /**
   * `scaleBackward(x, logScale, dy, dLogDet, dx, dLogScale, batch, dim)`: `dx = dy ⊙ exp(logScale)`
   * (overwritten) and `dLogScale += Σ_rows (dy ⊙ x ⊙ exp(logScale) + dLogDet)` (accumulated).
   */
  scaleBackward: KernelFunction<S['scaleBackward']>;
}
