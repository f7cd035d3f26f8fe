/**
 * Dataset checks with one clear error naming the first offending row and
 * column (both counted from 0, as array indices): non-finite values, wrong
 * width, empty data, class labels passed where examples are expected, and
 * values outside [0, 1] where a Bernoulli likelihood needs probabilities.
 * Content problems are a FlowVaeError with code ERR_DATA.
 */
import { FlowVaeError, expected, rangeError, typeError } from '../errors';
import type { Dataset } from './types';

export interface BadValue {
  row: number;
  column: number;
  value: number;
}

/** First non-finite value of a row-major `[*, dim]` array, or null. */
export function findNonFinite(x: ArrayLike<number>, dim: number): BadValue | null {
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    // v - v is 0 for finite v and NaN for NaN/±Infinity.
    if (!(v - v === 0)) return { row: Math.floor(i / dim), column: i % dim, value: v };
  }
  return null;
}

/** First value outside [lo, hi], or null (NaN counts as outside). */
export function findOutOfRange(x: ArrayLike<number>, dim: number, lo: number, hi: number): BadValue | null {
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (!(v >= lo && v <= hi)) return { row: Math.floor(i / dim), column: i % dim, value: v };
  }
  return null;
}

/**
 * `row 17, column 3 is NaN`; when the source value was finite but overflowed
 * float32, says so.
 */
/** Largest finite float32. */
const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * Refuses rows the caller passed that hold NaN or ±Infinity, or values a
 * float32 backend would turn into ±Infinity, with ERR_DATA naming the
 * argument, row and column (rather than an internal stage failing later).
 */
export function checkFiniteInput(x: ArrayLike<number>, dim: number, name: string, dtype: 'float32' | 'float64'): void {
  const bad = findNonFinite(x, dim);
  if (bad) throw new FlowVaeError('ERR_DATA', `"${name}" ${describeBadValue(bad.row, bad.column, bad.value)}`);
  if (dtype === 'float32' && !(x instanceof Float32Array)) {
    for (let i = 0; i < x.length; i++) {
      if (Math.abs(x[i]) > FLOAT32_MAX) {
        const row = Math.floor(i / dim);
        throw new FlowVaeError('ERR_DATA', `"${name}" ${describeBadValue(row, i % dim, Infinity, x[i])}`);
      }
    }
  }
}

export function describeBadValue(row: number, column: number, value: number, source?: unknown): string {
  const where = `row ${row}, column ${column}`;
  if (typeof source === 'number' && Number.isFinite(source)) {
    return `${where} is ${source}, which overflows float32 (largest magnitude 3.4e38)`;
  }
  const shown = Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity';
  return `${where} is ${shown}`;
}

export interface ValidateOptions {
  /** Required row width (e.g. the model's input size). */
  expectedDim?: number;
  /** The values must lie in [0, 1] (Bernoulli likelihood). */
  bernoulli?: boolean;
  /**
   * The rows are examples with several features (images, vectors); a single
   * column of integers is refused as looking like class labels. Default true.
   */
  features?: boolean;
}

const VALIDATE_OPTIONS = ['expectedDim', 'bernoulli', 'features'];

function fail(name: string, message: string): never {
  throw new FlowVaeError('ERR_DATA', `${name}: ${message}`);
}

/**
 * Checks that the values are probabilities in [0, 1], as a Bernoulli
 * likelihood needs, naming the first offending value; bytes (0..255) get a
 * hint to divide by 255.
 */
export function checkBernoulliRange(x: ArrayLike<number>, dim: number, name = 'data'): void {
  const bad = findOutOfRange(x, dim, 0, 1);
  if (bad === null) return;
  const where = `row ${bad.row}, column ${bad.column}`;
  if (!(bad.value - bad.value === 0)) fail(name, describeBadValue(bad.row, bad.column, bad.value));
  let max = 0;
  let integral = true;
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (v > max) max = v;
    if (integral && v !== Math.floor(v)) integral = false;
  }
  const hint = integral && max <= 255 && max > 1 ? '; the data look like bytes 0..255: divide them by 255' : '';
  fail(name, `${where} is ${bad.value}, outside [0, 1] as the Bernoulli likelihood requires${hint}`);
}

/**
 * Validates a dataset for a model: non-empty, consistent sizes, finite
 * values, the expected width, not a column of class labels, and values in
 * [0, 1] when `bernoulli` is set. Throws one FlowVaeError (ERR_DATA) for the
 * first problem found.
 */
export function validateDataset(dataset: Dataset, options: ValidateOptions = {}): void {
  if (typeof dataset !== 'object' || dataset === null) throw typeError(expected('Dataset', 'dataset', dataset));
  for (const key of Object.keys(options)) {
    if (!VALIDATE_OPTIONS.includes(key)) {
      throw rangeError(`Unknown option "${key}" in "options"; expected one of ${VALIDATE_OPTIONS.map((k) => `"${k}"`).join(', ')}`);
    }
  }
  const name = typeof dataset.name === 'string' ? dataset.name : 'data';
  const { x, n, dim } = dataset;
  if (!(x instanceof Float32Array)) throw typeError(expected('Float32Array', 'dataset.x', x));
  if (!Number.isInteger(n) || !Number.isInteger(dim) || n < 0 || dim < 0) {
    fail(name, `n = ${String(n)} and dim = ${String(dim)} must be non-negative integers`);
  }
  if (n === 0 || x.length === 0) fail(name, 'the dataset is empty (no rows)');
  if (dim === 0) fail(name, 'the rows are empty (no columns)');
  if (x.length !== n * dim) fail(name, `x has ${x.length} values but n * dim = ${n} * ${dim} = ${n * dim}`);
  if (dataset.labels !== undefined && dataset.labels.length !== n) {
    fail(name, `there are ${dataset.labels.length} labels for ${n} examples`);
  }

  const bad = findNonFinite(x, dim);
  if (bad !== null) fail(name, describeBadValue(bad.row, bad.column, bad.value));

  const features = options.features ?? true;
  if (features && dim === 1 && (options.expectedDim === undefined || options.expectedDim > 1)) {
    let integral = true;
    for (let i = 0; i < n && integral; i++) integral = x[i] === Math.floor(x[i]);
    if (integral) {
      fail(
        name,
        `each row is a single integer (row 0 is ${x[0]}): this looks like class labels, not examples; ` +
          'pass the images or feature vectors as the data (labels go in the "labels" field)',
      );
    }
  }
  if (options.expectedDim !== undefined && dim !== options.expectedDim) {
    fail(name, `rows have ${dim} values but ${options.expectedDim} are expected`);
  }
  if (options.bernoulli) checkBernoulliRange(x, dim, name);
}
