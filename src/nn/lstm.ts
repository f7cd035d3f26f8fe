/**
 * Single-layer LSTM over batch-first sequences `[batch, steps, inDim]`, the
 * mathematics and parameters of PyTorch `nn.LSTM(inDim, hidden,
 * batch_first=True)`: `weight_ih_l0 [4H, inDim]`, `weight_hh_l0 [4H, H]`,
 * `bias_ih_l0`, `bias_hh_l0 [4H]`, gate order i, f, g, o, so a state dict
 * loads into PyTorch by name. Initialised as PyTorch does (every parameter
 * uniform on ±1/√H), drawn from the backend-independent stream so every
 * backend starts from the same weights.
 *
 * Rows may be shorter than `steps` (per-row `lengths`): later steps keep the
 * row's state and output zeros, as PyTorch's packed sequences. Forward keeps
 * its stash for backward; buffers are owned by the layer and reused while the
 * sizes stay the same, so a training loop allocates nothing after its first
 * step.
 */
import type { Backend } from '../backend/backend';
import { lstmStashSize, lstmWorkSize } from '../backend/kernels/lstm';
import type { FloatArray } from '../backend/types';
import { rangeError } from '../errors';
import { checkArray, checkOptionalArray, checkPositiveInt, checkSize } from '../validate';
import { createParameter, initUniform, type Parameter } from './parameter';

export interface LstmOptions {
  inDim: number;
  hidden: number;
  /** With `b_ih` and `b_hh` (PyTorch's default). */
  bias?: boolean;
  seed: number;
}

export interface LstmForwardOptions {
  /** Per-row lengths, each at most `steps` (default: every row full length). */
  lengths?: Uint32Array | null;
  /** Initial hidden and cell states `[batch, hidden]` (default zeros). */
  h0?: FloatArray | null;
  c0?: FloatArray | null;
}

export interface LstmOutput {
  /** `[batch, steps, hidden]`, zeros past each row's length. */
  y: FloatArray;
  /** State after each row's last step, `[batch, hidden]`. */
  hn: FloatArray;
  cn: FloatArray;
}

export interface LstmGradients {
  /** ∂L/∂x `[batch, steps, inDim]` (null when not asked for). */
  dx: FloatArray | null;
  dh0: FloatArray;
  dc0: FloatArray;
}

export class Lstm {
  readonly inDim: number;
  readonly hidden: number;
  readonly weightIh: Parameter;
  readonly weightHh: Parameter;
  readonly biasIh: Parameter | null;
  readonly biasHh: Parameter | null;

  private input: FloatArray | null = null;
  private lengths: Uint32Array | null = null;
  private batch = 0;
  private steps = 0;
  private y: FloatArray | null = null;
  private hn: FloatArray | null = null;
  private cn: FloatArray | null = null;
  private stash: FloatArray | null = null;
  private work: FloatArray | null = null;
  private dx: FloatArray | null = null;
  private dh0: FloatArray | null = null;
  private dc0: FloatArray | null = null;

  constructor(
    readonly backend: Backend,
    options: LstmOptions,
  ) {
    this.inDim = checkSize(options.inDim, 'inDim');
    this.hidden = checkPositiveInt(options.hidden, 'hidden');
    const G = 4 * this.hidden;
    this.weightIh = createParameter(backend, 'weight_ih_l0', [G, this.inDim]);
    this.weightHh = createParameter(backend, 'weight_hh_l0', [G, this.hidden]);
    this.biasIh = options.bias === false ? null : createParameter(backend, 'bias_ih_l0', [G]);
    this.biasHh = options.bias === false ? null : createParameter(backend, 'bias_hh_l0', [G]);
    const k = 1 / Math.sqrt(this.hidden);
    let offset = 0;
    for (const p of this.parameters()) {
      initUniform(backend, p.value, options.seed, offset, -k, k);
      offset += p.value.length;
    }
  }

  /** In PyTorch's state-dict order. */
  parameters(): Parameter[] {
    const ps = [this.weightIh, this.weightHh];
    if (this.biasIh && this.biasHh) ps.push(this.biasIh, this.biasHh);
    return ps;
  }

  /**
   * Runs the sequences `x [batch, steps, inDim]`. Keeps references to x and
   * lengths for backward (do not modify them before backward). The returned
   * arrays are owned by the layer and overwritten by the next forward.
   */
  forward(x: FloatArray, batch: number, steps: number, options: LstmForwardOptions = {}): LstmOutput {
    checkSize(batch, 'batch');
    checkSize(steps, 'steps');
    const H = this.hidden;
    checkArray(x, 'x', batch * steps * this.inDim);
    const h0 = checkOptionalArray(options.h0, 'h0', batch * H);
    const c0 = checkOptionalArray(options.c0, 'c0', batch * H);
    const lengths = options.lengths ?? null;
    const b = this.backend;
    const sized = (a: FloatArray | null, n: number) => (a && a.length === n ? a : b.alloc(n));
    this.y = sized(this.y, batch * steps * H);
    this.hn = sized(this.hn, batch * H);
    this.cn = sized(this.cn, batch * H);
    this.stash = sized(this.stash, lstmStashSize(batch, steps, H));
    b.lstm.forward(
      x,
      lengths,
      h0,
      c0,
      this.weightIh.value,
      this.weightHh.value,
      this.biasIh?.value ?? null,
      this.biasHh?.value ?? null,
      this.y,
      this.hn,
      this.cn,
      this.stash,
      batch,
      steps,
      this.inDim,
      H,
    );
    this.input = x;
    this.lengths = lengths;
    this.batch = batch;
    this.steps = steps;
    return { y: this.y, hn: this.hn, cn: this.cn };
  }

  /**
   * Backward of the last forward given ∂L/∂y, ∂L/∂hn, ∂L/∂cn (each omitted
   * for zeros). Accumulates the parameter gradients; returns ∂L/∂x (null when
   * `needInputGrad` is false), ∂L/∂h0 and ∂L/∂c0, owned by the layer.
   */
  backward(grads: { dy?: FloatArray | null; dhn?: FloatArray | null; dcn?: FloatArray | null }, needInputGrad = true): LstmGradients {
    if (!this.input || !this.stash) throw rangeError('Lstm.backward called before forward');
    const { batch, steps } = this;
    const H = this.hidden;
    const b = this.backend;
    const sized = (a: FloatArray | null, n: number) => (a && a.length === n ? a : b.alloc(n));
    this.work = sized(this.work, lstmWorkSize(batch, steps, H));
    this.dh0 = sized(this.dh0, batch * H);
    this.dc0 = sized(this.dc0, batch * H);
    let dx: FloatArray | null = null;
    if (needInputGrad) dx = this.dx = sized(this.dx, batch * steps * this.inDim);
    b.lstm.backward(
      this.input,
      this.lengths,
      this.weightIh.value,
      this.weightHh.value,
      this.stash,
      grads.dy ?? null,
      grads.dhn ?? null,
      grads.dcn ?? null,
      dx,
      this.dh0,
      this.dc0,
      this.weightIh.grad,
      this.weightHh.grad,
      this.biasIh?.grad ?? null,
      this.biasHh?.grad ?? null,
      this.work,
      batch,
      steps,
      this.inDim,
      H,
      true,
    );
    return { dx, dh0: this.dh0, dc0: this.dc0 };
  }
}
