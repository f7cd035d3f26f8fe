import type { FloatArray } from '../types';

/**
 * LSTM layer over whole sequences with PyTorch `nn.LSTM`'s weights and
 * mathematics: `weightIh [4H, inDim]`, `weightHh [4H, H]`, `biasIh`, `biasHh
 * [4H]`, gate order i, f, g, o;
 * `[i f g o] = W_ih x_t + b_ih + W_hh h_{t−1} + b_hh`, i, f, o through
 * sigmoid, g through tanh, `c_t = f ⊙ c_{t−1} + i ⊙ g`, `h_t = o ⊙ tanh(c_t)`.
 *
 * Sequences are batch-first and row-major (PyTorch's `batch_first=True`):
 * `x [batch, steps, inDim]`, `y [batch, steps, hidden]`; states are
 * `[batch, hidden]`. Row b runs `lengths[b] ≤ steps` steps: later steps
 * leave its state unchanged and output zeros, and `(hn, cn)` is its state
 * after its last step (`h0, c0` for length 0). Inputs at padded steps do not
 * change any output; backward multiplies them by zero, so they must be finite.
 *
 * Forward keeps what backward needs in `stash`
 * ({@link lstmStashSize}); backward uses `work` ({@link lstmWorkSize}) as
 * scratch. Both are the caller's, so calls allocate nothing.
 */
export interface LstmKernels {
  /**
   * Runs `steps` steps. `lengths` (a Uint32Array `[batch]`) null means every
   * row is full length; `h0`/`c0` null mean zeros; `biasIh`/`biasHh` null mean
   * no bias. Writes `y`, `hn`, `cn` and `stash`.
   */
  forward(
    x: FloatArray,
    lengths: Uint32Array | null,
    h0: FloatArray | null,
    c0: FloatArray | null,
    weightIh: FloatArray,
    weightHh: FloatArray,
    biasIh: FloatArray | null,
    biasHh: FloatArray | null,
    y: FloatArray,
    hn: FloatArray,
    cn: FloatArray,
    stash: FloatArray,
    batch: number,
    steps: number,
    inDim: number,
    hidden: number,
  ): void;

  /**
   * Backward through time from the `stash` of the forward with the same `x`,
   * `lengths` and weights, given `dy = ∂L/∂y` (entries at padded steps are
   * ignored), `dhn = ∂L/∂hn`, `dcn = ∂L/∂cn`, each null for zeros. Writes
   * `dx` (skipped when null), `dh0`, `dc0`; the weight and bias gradients
   * (each skipped when null) are added to what they hold with `accumulate`,
   * otherwise overwritten.
   */
  backward(
    x: FloatArray,
    lengths: Uint32Array | null,
    weightIh: FloatArray,
    weightHh: FloatArray,
    stash: FloatArray,
    dy: FloatArray | null,
    dhn: FloatArray | null,
    dcn: FloatArray | null,
    dx: FloatArray | null,
    dh0: FloatArray,
    dc0: FloatArray,
    dWeightIh: FloatArray | null,
    dWeightHh: FloatArray | null,
    dBiasIh: FloatArray | null,
    dBiasHh: FloatArray | null,
    work: FloatArray,
    batch: number,
    steps: number,
    inDim: number,
    hidden: number,
    accumulate: boolean,
  ): void;
}

/**
 * Elements of the stash of one forward: per (row, step) the activated gates
 * (4H), h_{t−1}, c_{t−1} and tanh(c_t) (H each), in four blocks over all
 * `batch · steps` pairs (zeros at padded steps).
 */
export function lstmStashSize(batch: number, steps: number, hidden: number): number {
  return batch * steps * 7 * hidden;
}

/** Elements of backward's scratch: the gate gradients of every (row, step). */
export function lstmWorkSize(batch: number, steps: number, hidden: number): number {
  return batch * steps * 4 * hidden;
}
