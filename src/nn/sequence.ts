/**
 * Sequence networks for VAEs over sequences stored as flat rows of `steps`
 * steps × `features` values (see src/data/sequences.ts):
 *
 * - `LstmEncoder`: an LSTM over the steps; its last hidden state feeds the
 *   posterior heads.
 * - `LstmDecoder`: z → MLP → (x0, h0, c0); an LSTM run over
 *   [x0, x1 … x_{T−1}] with teacher forcing (the data rows arrive as
 *   `target`), a per-step linear map to the likelihood's parameters of one
 *   step. Without a target (sampling, `decode`) it generates step by step,
 *   feeding back for categorical groups the argmax one-hot (greedy) or a
 *   draw from softmax(logits / temperature) (sample), and the mean
 *   (Bernoulli probability, Gaussian mean) for the others; a sampled choice
 *   is written back into the step's logits (0 for it, −30 for the others) so
 *   the likelihood's `decode` reads the sequence that was generated. After a
 *   row emits `endClass` of its first categorical group, its later steps are
 *   the end step (value 0). Optional
 *   decoder-input dropout (Bowman et al. 2016) replaces teacher-forced steps
 *   by zeros with probability `inputDropout` in training, against posterior
 *   collapse.
 *
 * Both follow the Network contract (explicit forward/backward, named
 * parameters: `lstm.weight_ih_l0` … as PyTorch's `nn.LSTM`).
 */
import type { Backend } from '../backend/backend';
import type { Activation } from '../backend/kernels/elementwise';
import type { FloatArray } from '../backend/types';
import { rangeError } from '../errors';
import { checkIntegerBetween, checkInRange, checkPositiveInt } from '../validate';
import type { LikelihoodGroup } from '../vae/likelihood';
import { Workspace } from '../flows/flow';
import { Linear } from './linear';
import { Lstm } from './lstm';
import { MLP } from './mlp';
import type { GenerationOptions, Network, NetworkCallOptions } from './network';
import { prefixParameters, type NamedBuffer, type Parameter } from './parameter';

export interface LstmEncoderOptions {
  steps: number;
  features: number;
  hidden: number;
  seed?: number;
}

/** x `[batch, steps · features]` → the LSTM's last hidden state `[batch, hidden]`. */
export class LstmEncoder implements Network {
  readonly inDim: number;
  readonly outDim: number;
  readonly steps: number;
  readonly features: number;
  readonly lstm: Lstm;

  constructor(
    readonly backend: Backend,
    options: LstmEncoderOptions,
  ) {
    this.steps = checkPositiveInt(options.steps, 'steps');
    this.features = checkPositiveInt(options.features, 'features');
    this.lstm = new Lstm(backend, { inDim: this.features, hidden: checkPositiveInt(options.hidden, 'hidden'), seed: options.seed ?? 11 });
    this.inDim = this.steps * this.features;
    this.outDim = this.lstm.hidden;
  }

  parameters(): Parameter[] {
    return prefixParameters('lstm', this.lstm.parameters());
  }

  buffers(): NamedBuffer[] {
    return [];
  }

  forward(x: FloatArray, batch: number): FloatArray {
    return this.lstm.forward(x, batch, this.steps).hn;
  }

  backward(gradOut: FloatArray, needInputGrad: boolean): FloatArray | null {
    return this.lstm.backward({ dhn: gradOut }, needInputGrad).dx;
  }
}

export interface LstmDecoderOptions {
  latentDim: number;
  steps: number;
  /** Values per step (the LSTM's input width). */
  features: number;
  /** The likelihood's groups of one step (their parameters per step, in order). */
  stepGroups: readonly LikelihoodGroup[];
  hidden: number;
  /** Hidden widths of the MLP from z to (x0, h0, c0) (default [hidden]). */
  mlpHidden?: number[];
  activation?: Activation;
  /** Probability of zeroing a teacher-forced input step in training (default 0). */
  inputDropout?: number;
  /** Class of the first categorical group that ends a sequence (generation stops there). */
  endClass?: number;
  seed?: number;
}

/** A logit far enough below 0 that its softmax share is negligible (e^−30 ≈ 1e−13). */
const OFF = -30;

/** Parameters per step of a group (a class-index categorical group reads 1 column but emits C logits). */
function groupParams(g: LikelihoodGroup): number {
  return g.kind === 'categorical' && g.classes !== undefined ? g.classes : g.columns!;
}

export class LstmDecoder implements Network {
  readonly inDim: number;
  readonly outDim: number;
  readonly steps: number;
  readonly features: number;
  /** Likelihood parameters per step. */
  readonly paramsPerStep: number;
  readonly start: MLP;
  readonly lstm: Lstm;
  readonly output: Linear;
  readonly inputDropout: number;
  readonly endClass: number | null;
  private readonly stepGroups: readonly LikelihoodGroup[];
  private readonly seed: number;
  private dropoutDraws = 0;
  private batch = 0;
  private readonly ws: Workspace;

  constructor(
    readonly backend: Backend,
    options: LstmDecoderOptions,
  ) {
    const latent = checkPositiveInt(options.latentDim, 'latentDim');
    this.steps = checkPositiveInt(options.steps, 'steps');
    this.features = checkPositiveInt(options.features, 'features');
    const H = checkPositiveInt(options.hidden, 'hidden');
    this.stepGroups = options.stepGroups.map((g) => ({ ...g }));
    const dataPerStep = this.stepGroups.reduce((s, g) => s + (g.kind === 'categorical' && g.classes !== undefined ? 1 : g.columns!), 0);
    if (dataPerStep !== this.features) {
      throw rangeError(`The step groups cover ${dataPerStep} values but "features" is ${this.features}`, 'ERR_SHAPE');
    }
    this.paramsPerStep = this.stepGroups.reduce((s, g) => s + groupParams(g), 0);
    this.inputDropout = checkInRange(options.inputDropout ?? 0, 'inputDropout', 0, 1, { hi: true });
    const firstCategorical = this.stepGroups.find((g) => g.kind === 'categorical');
    if (options.endClass !== undefined && !firstCategorical) throw rangeError('"endClass" needs a categorical group in "stepGroups"');
    this.endClass = options.endClass === undefined ? null : checkIntegerBelow(options.endClass, 'endClass', groupParams(firstCategorical!));
    this.seed = options.seed ?? 21;
    const seed = this.seed;
    this.start = new MLP(backend, {
      sizes: [latent, ...(options.mlpHidden ?? [H]), this.features + 2 * H],
      activation: options.activation ?? 'relu',
      seed: seed * 1000 + 1,
    });
    this.lstm = new Lstm(backend, { inDim: this.features, hidden: H, seed: seed * 1000 + 2 });
    this.output = new Linear(backend, { inDim: H, outDim: this.paramsPerStep, seed: seed * 1000 + 3 });
    this.inDim = latent;
    this.outDim = this.steps * this.paramsPerStep;
    this.ws = new Workspace(backend);
  }

  parameters(): Parameter[] {
    return [
      ...prefixParameters('start', this.start.parameters()),
      ...prefixParameters('lstm', this.lstm.parameters()),
      ...prefixParameters('output', this.output.parameters()),
    ];
  }

  buffers(): NamedBuffer[] {
    return [];
  }

  private buf(name: string, length: number): FloatArray {
    return this.ws.get(name, length);
  }

  forward(z: FloatArray, batch: number, options: NetworkCallOptions = {}): FloatArray {
    const { steps: T, features: F } = this;
    const H = this.lstm.hidden;
    this.batch = batch;
    const s = this.start.forward(z, batch);
    const h0 = this.buf('h0', batch * H);
    const c0 = this.buf('c0', batch * H);
    const inputs = this.buf('inputs', batch * T * F);
    for (let r = 0; r < batch; r++) {
      const row = s.subarray(r * (F + 2 * H), (r + 1) * (F + 2 * H));
      inputs.set(row.subarray(0, F), r * T * F);
      h0.set(row.subarray(F, F + H), r * H);
      c0.set(row.subarray(F + H), r * H);
    }
    if (!options.target) return this.generate(inputs, h0, c0, batch, options.generation ?? { mode: 'greedy' });
    // Teacher forcing: step t reads the data's step t − 1.
    const x = options.target;
    const drop = options.training && this.inputDropout > 0 ? this.dropoutMask(batch) : null;
    for (let r = 0; r < batch; r++) {
      for (let t = 1; t < T; t++) {
        const to = (r * T + t) * F;
        if (drop && drop[r * T + t] < this.inputDropout) inputs.fill(0, to, to + F);
        else inputs.set(x.subarray((r * T + t - 1) * F, (r * T + t) * F), to);
      }
    }
    const { y } = this.lstm.forward(inputs, batch, T, { h0, c0 });
    return this.output.forward(y, batch * T);
  }

  /** Uniforms deciding which input steps are dropped (fresh on every training call). */
  private dropoutMask(batch: number): FloatArray {
    const u = this.buf('dropout', batch * this.steps);
    this.backend.rng.uniform(this.seed * 1000 + 9, this.dropoutDraws, u);
    this.dropoutDraws += u.length;
    return u;
  }

  /** Generation: one LSTM step at a time, each step's choices fed back (see the file comment). */
  private generate(inputs: FloatArray, h0: FloatArray, c0: FloatArray, batch: number, generation: GenerationOptions): FloatArray {
    const { steps: T, features: F, paramsPerStep: P } = this;
    const H = this.lstm.hidden;
    const out = this.buf('generated', batch * T * P);
    const groups = this.stepGroups.length;
    // One uniform per (row, step, group) for sampled choices.
    const u = generation.mode === 'sample' ? this.buf('choices', batch * T * groups) : null;
    if (u) this.backend.rng.uniform(generation.seed ?? 0, 0, u);
    const ended = new Uint8Array(batch);
    const step = this.buf('step', batch * F);
    const h = this.buf('genH', batch * H);
    const c = this.buf('genC', batch * H);
    h.set(h0);
    c.set(c0);
    for (let r = 0; r < batch; r++) step.set(inputs.subarray(r * T * F, r * T * F + F), r * F);
    for (let t = 0; t < T; t++) {
      const { y, hn, cn } = this.lstm.forward(step, batch, 1, { h0: h, c0: c });
      h.set(hn);
      c.set(cn);
      const params = this.output.forward(y, batch);
      for (let r = 0; r < batch; r++) {
        const at = (r * T + t) * P;
        out.set(params.subarray(r * P, (r + 1) * P), at);
        const choice = u ? { u, at: (r * T + t) * groups, temperature: generation.temperature ?? 1 } : null;
        ended[r] = this.feedBack(out, at, step, r * F, choice, ended[r] === 1) ? 1 : 0;
      }
    }
    return out;
  }

  /**
   * The next input of a row from its step parameters (argmax or sampled
   * one-hot / class index, probability, mean); a sampled or forced choice is
   * written back into `params`. Returns whether the row has ended.
   */
  private feedBack(
    params: FloatArray,
    at: number,
    next: FloatArray,
    to: number,
    choice: { u: FloatArray; at: number; temperature: number } | null,
    ended: boolean,
  ): boolean {
    let p = at;
    let x = to;
    let first = true;
    let endsHere = ended;
    for (const [gi, g] of this.stepGroups.entries()) {
      const width = groupParams(g);
      if (g.kind === 'categorical') {
        let pick: number;
        if (ended && first && this.endClass !== null) pick = this.endClass;
        else if (choice) pick = sampleSoftmax(params, p, width, choice.temperature, choice.u[choice.at + gi]);
        else {
          pick = 0;
          for (let c = 1; c < width; c++) if (params[p + c] > params[p + pick]) pick = c;
        }
        if (choice || ended) for (let c = 0; c < width; c++) params[p + c] = c === pick ? 0 : OFF;
        if (first && pick === this.endClass) endsHere = true;
        if (g.classes !== undefined) next[x++] = pick;
        else for (let c = 0; c < width; c++) next[x++] = c === pick ? 1 : 0;
        first = false;
      } else if (g.kind === 'bernoulli') {
        for (let c = 0; c < width; c++) {
          if (ended) params[p + c] = OFF;
          next[x++] = 1 / (1 + Math.exp(-params[p + c]));
        }
      } else {
        for (let c = 0; c < width; c++) {
          if (ended) params[p + c] = 0;
          next[x++] = params[p + c];
        }
      }
      p += width;
    }
    return endsHere;
  }

  backward(gradOut: FloatArray, needInputGrad: boolean): FloatArray | null {
    const { steps: T, features: F } = this;
    const H = this.lstm.hidden;
    const batch = this.batch;
    const dy = this.output.backward(gradOut, true)!;
    const { dx, dh0, dc0 } = this.lstm.backward({ dy }, true);
    // Only step 0's input (x0) comes from z; the later steps are data.
    const ds = this.buf('dStart', batch * (F + 2 * H));
    for (let r = 0; r < batch; r++) {
      const at = r * (F + 2 * H);
      ds.set(dx!.subarray(r * T * F, r * T * F + F), at);
      ds.set(dh0.subarray(r * H, (r + 1) * H), at + F);
      ds.set(dc0.subarray(r * H, (r + 1) * H), at + F + H);
    }
    return this.start.backward(ds, needInputGrad);
  }
}

function checkIntegerBelow(value: unknown, name: string, bound: number): number {
  return checkIntegerBetween(value, name, 0, bound - 1);
}

/** The category whose cumulative softmax(logits / temperature) share first exceeds `u`. */
function sampleSoftmax(logits: FloatArray, at: number, width: number, temperature: number, u: number): number {
  let max = -Infinity;
  for (let c = 0; c < width; c++) if (logits[at + c] > max) max = logits[at + c];
  let total = 0;
  for (let c = 0; c < width; c++) total += Math.exp((logits[at + c] - max) / temperature);
  let acc = 0;
  for (let c = 0; c < width; c++) {
    acc += Math.exp((logits[at + c] - max) / temperature) / total;
    if (u < acc) return c;
  }
  return width - 1;
}
