import type { FloatArray } from '../types';

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
export interface CouplingKernels {
  /**
   * The conditioner's input: `out[r] = [x[r, offset : offset + width], context[r]]`,
   * `out` `[batch, width + contextDim]`. `context` `[batch, contextDim]` (null when contextDim is 0).
   */
  gather(
    x: FloatArray,
    context: FloatArray | null,
    out: FloatArray,
    batch: number,
    dim: number,
    offset: number,
    width: number,
    contextDim: number,
  ): void;
  /**
   * The transpose of gather, accumulating: `dx[r, offset + j] += dIn[r, j]` and
   * `dContext[r, c] += dIn[r, width + c]` (dContext null when contextDim is 0).
   */
  scatterAdd(
    dIn: FloatArray,
    dx: FloatArray,
    dContext: FloatArray | null,
    batch: number,
    dim: number,
    offset: number,
    width: number,
    contextDim: number,
  ): void;

  /** Affine forward: columns [offset, offset + width) of y, and `logDet = Σ s` `[batch]`. */
  affineForward(
    x: FloatArray,
    h: FloatArray,
    scale: FloatArray,
    y: FloatArray,
    logDet: FloatArray,
    batch: number,
    dim: number,
    offset: number,
    width: number,
  ): void;
  /** Affine inverse: `x_b = (y_b − t) ⊙ exp(−s)` in columns [offset, offset + width) of x; `logDet = −Σ s`. */
  affineInverse(
    y: FloatArray,
    h: FloatArray,
    scale: FloatArray,
    x: FloatArray,
    logDet: FloatArray,
    batch: number,
    dim: number,
    offset: number,
    width: number,
  ): void;
  /**
   * Affine backward given `dy = ∂L/∂y` `[batch, dim]` and `dLogDet` `[batch]`:
   * columns [offset, offset + width) of dx, all of `dh` `[batch, 2·width]`
   * (overwritten), and `dScale` `[width]` (accumulated).
   */
  affineBackward(
    x: FloatArray,
    h: FloatArray,
    scale: FloatArray,
    dy: FloatArray,
    dLogDet: FloatArray,
    dx: FloatArray,
    dh: FloatArray,
    dScale: FloatArray,
    batch: number,
    dim: number,
    offset: number,
    width: number,
  ): void;

  /** Additive forward: `y_b = x_b + m` in columns [offset, offset + width) of y (log-det 0). */
  additiveForward(x: FloatArray, h: FloatArray, y: FloatArray, batch: number, dim: number, offset: number, width: number): void;
  /** Additive inverse: `x_b = y_b − m` in columns [offset, offset + width) of x. */
  additiveInverse(y: FloatArray, h: FloatArray, x: FloatArray, batch: number, dim: number, offset: number, width: number): void;
  /** Additive backward: columns [offset, offset + width) of dx and all of `dh` `[batch, width]`, both = dy_b. */
  additiveBackward(dy: FloatArray, dx: FloatArray, dh: FloatArray, batch: number, dim: number, offset: number, width: number): void;

  /** Scaling layer forward: `y = x ⊙ exp(logScale)` `[batch, dim]`, `logDet = Σ logScale` `[batch]`. */
  scaleForward(x: FloatArray, logScale: FloatArray, y: FloatArray, logDet: FloatArray, batch: number, dim: number): void;
  /** Scaling layer inverse: `x = y ⊙ exp(−logScale)`, `logDet = −Σ logScale`. */
  scaleInverse(y: FloatArray, logScale: FloatArray, x: FloatArray, logDet: FloatArray, batch: number, dim: number): void;
  /**
   * Scaling layer backward: `dx = dy ⊙ exp(logScale)` (overwritten) and
   * `dLogScale += Σ_rows (dy ⊙ x ⊙ exp(logScale) + dLogDet)` (accumulated).
   */
  scaleBackward(
    x: FloatArray,
    logScale: FloatArray,
    dy: FloatArray,
    dLogDet: FloatArray,
    dx: FloatArray,
    dLogScale: FloatArray,
    batch: number,
    dim: number,
  ): void;
}
