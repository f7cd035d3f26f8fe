/**
 * The VAE's likelihood p(x | z): how the decoder's output row scores a data
 * row. Built-in kinds, each over a group of columns:
 *
 * - `bernoulli`: the decoder gives logits; log p = Σ x·l − softplus(l).
 * - `gaussian`: the decoder gives means; a fixed log-variance or a learned
 *   one per column.
 * - `categorical`: the decoder gives C logits; the data hold a one-hot row of
 *   C columns (`columns: C`) or one column with the class index 0…C−1
 *   (`classes: C`); log p = log softmax(l) at the true class.
 *
 * A mixed likelihood is a list of groups laid side by side over the columns
 * (e.g. a one-hot layer type and a value); its log p is the sum over groups.
 * The decoder's output width (`paramDim`) is the sum of the groups' parameter
 * widths, which differs from the data width for class-index groups.
 */
import type { Backend } from '../backend/backend';
import type { FloatArray } from '../backend/types';
import { FlowVaeError, expected, rangeError, typeError } from '../errors';
import { checkBernoulliRange } from '../data/validate';
import type { Parameter } from '../nn/parameter';
import { Workspace } from '../flows/flow';
import { checkKnownKeys, checkOneOf, checkPositiveInt } from '../validate';

export type LikelihoodKind = 'bernoulli' | 'gaussian' | 'categorical';
export const LIKELIHOOD_KINDS: readonly LikelihoodKind[] = ['bernoulli', 'gaussian', 'categorical'];

/** One group of columns of a mixed likelihood. */
export interface LikelihoodGroup {
  kind: LikelihoodKind;
  /** Data columns of the group (a categorical group: its one-hot width C). */
  columns?: number;
  /** Categorical with the class index in one column: the number of classes C. */
  classes?: number;
  /** Gaussian: fixed log-variance or 'learned' per column (default 'learned'). */
  logVar?: number | 'learned';
}

/** A group with every field resolved (as stored in checkpoints). */
export interface ResolvedGroup {
  kind: LikelihoodKind;
  /** Data columns. */
  columns: number;
  /** Decoder outputs (parameters) of the group. */
  params: number;
  /** Categorical: class index in one column (true) or one-hot columns (false). */
  index?: boolean;
  logVar?: number | 'learned';
}

/** What the VAE needs of a likelihood. */
export interface Likelihood {
  readonly kind: string;
  /** Width of a data row. */
  readonly dataDim: number;
  /** Width of the decoder's output row. */
  readonly paramDim: number;
  /** Trained tensors (full names, e.g. `decoder.logvar`). */
  parameters(): Parameter[];
  /** Throws ERR_DATA naming `name`, the row and column when `x` is not data of this likelihood. */
  checkData(x: FloatArray, name: string): void;
  /** logpx[r] = log p(x_r | out_r) for `batch` rows. */
  logProb(x: FloatArray, out: FloatArray, logpx: FloatArray, batch: number): void;
  /** dOut = dRow[r] · ∂ log p(x_r | out_r)/∂out_r (overwritten); parameter gradients accumulate. */
  backward(x: FloatArray, out: FloatArray, dRow: FloatArray, dOut: FloatArray, batch: number): void;
  /** The natural values of each output row, `[batch, dataDim]`: probabilities, means, or class indices. */
  decode(out: FloatArray, batch: number): FloatArray;
}

const GROUP_KEYS = ['kind', 'columns', 'classes', 'logVar'] as const;

function checkLogVar(value: unknown, name: string): number | 'learned' {
  if (value === 'learned') return value;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw (typeof value === 'number' ? rangeError : typeError)(expected('finite number or "learned"', name, value));
  }
  return value;
}

/**
 * The groups of a likelihood option: one kind over all `inputDim` columns, or
 * a list of groups whose data columns must add up to `inputDim`.
 */
export function resolveLikelihood(value: LikelihoodKind | readonly LikelihoodGroup[] | undefined, logVarOption: unknown, inputDim: number): ResolvedGroup[] {
  const spec = value ?? 'bernoulli';
  if (typeof spec === 'string') {
    const kind = checkOneOf(spec, 'likelihood', LIKELIHOOD_KINDS);
    if (kind === 'gaussian') return [{ kind, columns: inputDim, params: inputDim, logVar: checkLogVar(logVarOption ?? 'learned', 'likelihoodLogVar') }];
    // 'learned' is the option's default, which configs of every kind record.
    if (logVarOption !== undefined && checkLogVar(logVarOption, 'likelihoodLogVar') !== 'learned')
      throw rangeError(`"likelihoodLogVar" applies to a Gaussian likelihood, not ${kind}`);
    return [{ kind, columns: inputDim, params: inputDim, ...(kind === 'categorical' ? { index: false } : {}) }];
  }
  if (!Array.isArray(spec) || spec.length === 0) {
    throw typeError(expected('"bernoulli", "gaussian", "categorical" or a non-empty array of column groups', 'likelihood', spec));
  }
  if (logVarOption !== undefined && logVarOption !== 'learned')
    throw rangeError('"likelihoodLogVar" applies to a single Gaussian likelihood; give a mixed one "logVar" per group');
  const groups = spec.map((g: LikelihoodGroup, i): ResolvedGroup => {
    const name = `likelihood[${i}]`;
    if (typeof g !== 'object' || g === null) throw typeError(expected('object { kind, columns }', name, g));
    checkKnownKeys(g, name, GROUP_KEYS);
    const kind = checkOneOf(g.kind, `${name}.kind`, LIKELIHOOD_KINDS);
    if (kind === 'categorical') {
      if ((g.columns === undefined) === (g.classes === undefined)) {
        throw rangeError(`"${name}" needs exactly one of "columns" (one-hot columns) and "classes" (one class-index column)`);
      }
      if (g.logVar !== undefined) throw rangeError(`"${name}.logVar" applies to Gaussian groups only`);
      if (g.classes !== undefined) {
        const c = checkPositiveInt(g.classes, `${name}.classes`);
        if (c < 2) throw rangeError(expected('integer ≥ 2', `${name}.classes`, g.classes));
        return { kind, columns: 1, params: c, index: true };
      }
      const c = checkPositiveInt(g.columns, `${name}.columns`);
      if (c < 2) throw rangeError(expected('integer ≥ 2 (one-hot columns)', `${name}.columns`, g.columns));
      return { kind, columns: c, params: c, index: false };
    }
    if (g.classes !== undefined) throw rangeError(`"${name}.classes" applies to categorical groups only`);
    const columns = checkPositiveInt(g.columns, `${name}.columns`);
    if (kind === 'gaussian') return { kind, columns, params: columns, logVar: checkLogVar(g.logVar ?? 'learned', `${name}.logVar`) };
    if (g.logVar !== undefined) throw rangeError(`"${name}.logVar" applies to Gaussian groups only`);
    return { kind, columns, params: columns };
  });
  const total = groups.reduce((s, g) => s + g.columns, 0);
  if (total !== inputDim) {
    throw rangeError(`The likelihood's groups cover ${total} columns (${groups.map((g) => g.columns).join(' + ')}) but inputDim is ${inputDim}`, 'ERR_SHAPE');
  }
  return groups;
}

/** A resolved group in the option form a config stores (with another column count for one step of a sequence). */
export function groupOption(g: ResolvedGroup, columns = g.columns): LikelihoodGroup {
  if (g.kind === 'categorical') return g.index ? { kind: g.kind, classes: g.params } : { kind: g.kind, columns };
  if (g.kind === 'gaussian') return { kind: g.kind, columns, logVar: g.logVar };
  return { kind: g.kind, columns };
}

interface PlacedGroup extends ResolvedGroup {
  /** First data column. */
  dataStart: number;
  /** First decoder-output column. */
  paramStart: number;
  /** Learned log-variance (Gaussian groups with logVar 'learned'). */
  logVarParam: Parameter | null;
  /** The fixed log-variance repeated per column (Gaussian groups with a fixed one). */
  fixedLogVar: FloatArray | null;
}

/** The built-in likelihood: one or more column groups of the kinds above. */
export class GroupedLikelihood implements Likelihood {
  readonly kind: string;
  readonly dataDim: number;
  readonly paramDim: number;
  readonly groups: readonly PlacedGroup[];
  private readonly ws: Workspace;

  constructor(
    readonly backend: Backend,
    groups: readonly ResolvedGroup[],
  ) {
    this.ws = new Workspace(backend);
    let dataStart = 0;
    let paramStart = 0;
    const single = groups.length === 1;
    this.groups = groups.map((g, i) => {
      const learned = g.kind === 'gaussian' && g.logVar === 'learned';
      // A single Gaussian keeps the name it has always had in checkpoints.
      const name = single ? 'decoder.logvar' : `likelihood.${i}.logvar`;
      const placed: PlacedGroup = {
        ...g,
        dataStart,
        paramStart,
        logVarParam: learned ? { name, shape: [g.columns], value: backend.alloc(g.columns), grad: backend.alloc(g.columns) } : null,
        fixedLogVar: g.kind === 'gaussian' && !learned ? backend.alloc(g.columns).fill(g.logVar as number) : null,
      };
      dataStart += g.columns;
      paramStart += g.params;
      return placed;
    });
    this.dataDim = dataStart;
    this.paramDim = paramStart;
    this.kind = single ? groups[0].kind : 'mixed';
  }

  parameters(): Parameter[] {
    return this.groups.flatMap((g) => (g.logVarParam ? [g.logVarParam] : []));
  }

  checkData(x: FloatArray, name: string): void {
    const D = this.dataDim;
    const rows = x.length / D;
    for (const [gi, g] of this.groups.entries()) {
      const where = this.groups.length > 1 ? ` (likelihood group ${gi}, ${g.kind}, columns ${g.dataStart}…${g.dataStart + g.columns - 1})` : '';
      if (g.kind === 'bernoulli') {
        checkBernoulliRange(this.single ? x : this.gatherData(x, g, rows, 'check'), g.columns, `"${name}"${where}`);
      } else if (g.kind === 'categorical') {
        for (let r = 0; r < rows; r++) {
          const at = r * D + g.dataStart;
          if (g.index) {
            const v = x[at];
            if (!(Number.isInteger(v) && v >= 0 && v < g.params)) {
              throw new FlowVaeError('ERR_DATA', `"${name}"${where}: row ${r}, column ${g.dataStart} is ${v}, not a class index in 0…${g.params - 1}`);
            }
            continue;
          }
          let ones = 0;
          for (let c = 0; c < g.columns; c++) {
            const v = x[at + c];
            if (v !== 0 && v !== 1) {
              throw new FlowVaeError('ERR_DATA', `"${name}"${where}: row ${r}, column ${g.dataStart + c} is ${v}; a one-hot group holds only 0 and 1`);
            }
            ones += v;
          }
          if (ones !== 1) throw new FlowVaeError('ERR_DATA', `"${name}"${where}: row ${r} has ${ones} ones; a one-hot group has exactly one`);
        }
      }
    }
  }

  private get single(): boolean {
    return this.groups.length === 1;
  }

  /** The group's data columns as a contiguous `[rows, columns]` array (a workspace buffer). */
  private gatherData(x: FloatArray, g: PlacedGroup, rows: number, tag: string): FloatArray {
    return gatherColumns(x, this.dataDim, g.dataStart, g.columns, rows, this.ws.get(`${tag}.x.${g.dataStart}`, rows * g.columns));
  }

  private gatherParams(out: FloatArray, g: PlacedGroup, rows: number, tag: string): FloatArray {
    return gatherColumns(out, this.paramDim, g.paramStart, g.params, rows, this.ws.get(`${tag}.p.${g.paramStart}`, rows * g.params));
  }

  logProb(x: FloatArray, out: FloatArray, logpx: FloatArray, batch: number): void {
    const b = this.backend;
    if (this.single) {
      const g = this.groups[0];
      if (g.kind === 'bernoulli') b.likelihood.bernoulli(x, out, logpx, batch, g.columns);
      else if (g.kind === 'gaussian') b.likelihood.gaussian(x, out, this.logVar(g), logpx, batch, g.columns);
      else categoricalLogProb(x, this.dataDim, out, this.paramDim, g, logpx, batch, false);
      return;
    }
    logpx.fill(0, 0, batch);
    const part = this.ws.get('groupLogp', batch);
    for (const g of this.groups) {
      if (g.kind === 'categorical') {
        categoricalLogProb(x, this.dataDim, out, this.paramDim, g, logpx, batch, true);
        continue;
      }
      const xg = this.gatherData(x, g, batch, 'f');
      const og = this.gatherParams(out, g, batch, 'f');
      if (g.kind === 'bernoulli') b.likelihood.bernoulli(xg, og, part, batch, g.columns);
      else b.likelihood.gaussian(xg, og, this.logVar(g), part, batch, g.columns);
      for (let r = 0; r < batch; r++) logpx[r] += part[r];
    }
  }

  backward(x: FloatArray, out: FloatArray, dRow: FloatArray, dOut: FloatArray, batch: number): void {
    const b = this.backend;
    if (this.single) {
      const g = this.groups[0];
      if (g.kind === 'bernoulli') b.likelihood.bernoulliBackward(x, out, dRow, dOut, batch, g.columns);
      else if (g.kind === 'gaussian') b.likelihood.gaussianBackward(x, out, this.logVar(g), dRow, dOut, g.logVarParam?.grad ?? null, batch, g.columns);
      else categoricalBackward(x, this.dataDim, out, this.paramDim, g, dRow, dOut, batch);
      return;
    }
    for (const g of this.groups) {
      if (g.kind === 'categorical') {
        categoricalBackward(x, this.dataDim, out, this.paramDim, g, dRow, dOut, batch);
        continue;
      }
      const xg = this.gatherData(x, g, batch, 'b');
      const og = this.gatherParams(out, g, batch, 'b');
      const dg = this.ws.get(`b.d.${g.paramStart}`, batch * g.params);
      if (g.kind === 'bernoulli') b.likelihood.bernoulliBackward(xg, og, dRow, dg, batch, g.columns);
      else b.likelihood.gaussianBackward(xg, og, this.logVar(g), dRow, dg, g.logVarParam?.grad ?? null, batch, g.columns);
      scatterColumns(dg, dOut, this.paramDim, g.paramStart, g.params, batch);
    }
  }

  decode(out: FloatArray, batch: number): FloatArray {
    if (this.single && this.groups[0].kind === 'bernoulli') {
      const p = this.backend.from(out.subarray(0, batch * this.paramDim));
      this.backend.elementwise.forward('sigmoid', p, p, p.length, 0);
      return p;
    }
    const values = this.backend.alloc(batch * this.dataDim);
    for (const g of this.groups) {
      for (let r = 0; r < batch; r++) {
        const o = r * this.paramDim + g.paramStart;
        const v = r * this.dataDim + g.dataStart;
        if (g.kind === 'bernoulli') {
          for (let c = 0; c < g.columns; c++) values[v + c] = 1 / (1 + Math.exp(-out[o + c]));
        } else if (g.kind === 'gaussian') {
          for (let c = 0; c < g.columns; c++) values[v + c] = out[o + c];
        } else if (g.index) {
          let best = 0;
          for (let c = 1; c < g.params; c++) if (out[o + c] > out[o + best]) best = c;
          values[v] = best;
        } else {
          const lse = logSumExp(out, o, g.params);
          for (let c = 0; c < g.params; c++) values[v + c] = Math.exp(out[o + c] - lse);
        }
      }
    }
    return values;
  }

  private logVar(g: PlacedGroup): FloatArray {
    return g.logVarParam ? g.logVarParam.value : g.fixedLogVar!;
  }
}

/** log Σ_c exp(a[at + c]) over `n` entries, stably. */
export function logSumExp(a: ArrayLike<number>, at: number, n: number): number {
  let max = -Infinity;
  for (let c = 0; c < n; c++) if (a[at + c] > max) max = a[at + c];
  if (max === -Infinity) return -Infinity;
  let s = 0;
  for (let c = 0; c < n; c++) s += Math.exp(a[at + c] - max);
  return max + Math.log(s);
}

/** The true class of row r of a categorical group. */
function trueClass(x: FloatArray, dataDim: number, g: PlacedGroup, r: number): number {
  const at = r * dataDim + g.dataStart;
  if (g.index) return x[at];
  for (let c = 0; c < g.columns; c++) if (x[at + c] === 1) return c;
  return -1; // not one-hot: refused by checkData before training
}

function categoricalLogProb(
  x: FloatArray,
  dataDim: number,
  out: FloatArray,
  paramDim: number,
  g: PlacedGroup,
  logpx: FloatArray,
  batch: number,
  add: boolean,
): void {
  for (let r = 0; r < batch; r++) {
    const o = r * paramDim + g.paramStart;
    const y = trueClass(x, dataDim, g, r);
    const lp = y < 0 ? NaN : out[o + y] - logSumExp(out, o, g.params);
    logpx[r] = add ? logpx[r] + lp : lp;
  }
}

/** dOut over the group's columns = dRow · (onehot(y) − softmax(l)). */
function categoricalBackward(
  x: FloatArray,
  dataDim: number,
  out: FloatArray,
  paramDim: number,
  g: PlacedGroup,
  dRow: FloatArray,
  dOut: FloatArray,
  batch: number,
): void {
  for (let r = 0; r < batch; r++) {
    const o = r * paramDim + g.paramStart;
    const y = trueClass(x, dataDim, g, r);
    const lse = logSumExp(out, o, g.params);
    for (let c = 0; c < g.params; c++) dOut[o + c] = dRow[r] * ((c === y ? 1 : 0) - Math.exp(out[o + c] - lse));
  }
}

function gatherColumns(src: FloatArray, width: number, start: number, count: number, rows: number, dst: FloatArray): FloatArray {
  for (let r = 0; r < rows; r++) dst.set(src.subarray(r * width + start, r * width + start + count), r * count);
  return dst;
}

function scatterColumns(src: FloatArray, dst: FloatArray, width: number, start: number, count: number, rows: number): void {
  for (let r = 0; r < rows; r++) dst.set(src.subarray(r * count, (r + 1) * count), r * width + start);
}
