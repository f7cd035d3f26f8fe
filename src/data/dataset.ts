/**
 * The one in-memory dataset type every loader returns and the trainer reads:
 * `n` examples of `dim` float32 values, row-major, with an optional class
 * label per example. Images keep their shape (`[28, 28]`) beside the flat
 * rows so samples can be drawn back as pictures.
 */
import { FlowVaeError, expected, rangeError, typeError } from '../errors';
import { checkSeed, permutation } from './random';
import { findNonFinite, describeBadValue } from './validate';

export type { Dataset } from './types';
import type { Dataset } from './types';

export interface CreateDatasetOptions {
  /** Values per example; required when `x` is a flat array, inferred from rows otherwise. */
  dim?: number;
  /** Shape of one example (product must equal `dim`); defaults to `[dim]`. */
  shape?: readonly number[];
  /** One integer label in [0, 255] per example. */
  labels?: Uint8Array | ArrayLike<number>;
  /** Name used in error messages; defaults to `"data"`. */
  name?: string;
}

const CREATE_OPTIONS = ['dim', 'shape', 'labels', 'name'] as const;

function dataError(name: string, message: string): FlowVaeError {
  return new FlowVaeError('ERR_DATA', `${name}: ${message}`);
}

function checkShape(shape: unknown, dim: number): number[] {
  if (!Array.isArray(shape)) throw typeError(expected('array of positive integers', 'shape', shape));
  let product = 1;
  for (const s of shape) {
    if (typeof s !== 'number' || !Number.isInteger(s) || s < 1) {
      throw rangeError(expected('array of positive integers', 'shape', shape));
    }
    product *= s;
  }
  if (product !== dim) {
    throw rangeError(`Expected shape with product ${dim} (the row width) for "shape" but received [${shape.join(', ')}]`, 'ERR_SHAPE');
  }
  return [...shape];
}

function checkLabels(labels: unknown, n: number, name: string): Uint8Array {
  if (!(labels instanceof Uint8Array) && !Array.isArray(labels) && !ArrayBuffer.isView(labels)) {
    throw typeError(expected('Uint8Array or array of integers in [0, 255]', 'labels', labels));
  }
  const src = labels as ArrayLike<number>;
  if (src.length !== n) {
    throw rangeError(expected(`${n} labels (one per example)`, 'labels', labels), 'ERR_SHAPE');
  }
  if (labels instanceof Uint8Array) return labels;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const v = src[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) {
      throw dataError(name, `label ${i} is ${String(v)}; labels must be integers in [0, 255]`);
    }
    out[i] = v;
  }
  return out;
}

/**
 * Builds a Dataset from user values: a flat Float32Array/Float64Array/number
 * array with `dim` (row-major), or an array of equal-length rows. Checks the
 * structure and that every value is finite, naming the first bad row.
 * A Float32Array is used as is (not copied); other inputs are converted.
 */
export function createDataset(
  x: Float32Array | Float64Array | ArrayLike<number> | ArrayLike<ArrayLike<number>>,
  options: CreateDatasetOptions = {},
): Dataset {
  if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
  for (const key of Object.keys(options)) {
    if (!(CREATE_OPTIONS as readonly string[]).includes(key)) {
      throw rangeError(`Unknown option "${key}" in "options"; expected one of ${CREATE_OPTIONS.map((k) => `"${k}"`).join(', ')}`);
    }
  }
  const name = options.name ?? 'data';
  if (typeof name !== 'string') throw typeError(expected('string', 'name', name));

  let values: Float32Array;
  let n: number;
  let dim: number;
  const isRows = Array.isArray(x) && x.length > 0 && typeof x[0] === 'object' && x[0] !== null;
  if (isRows) {
    const rows = x as ArrayLike<ArrayLike<number>>;
    n = rows.length;
    const first = rows[0];
    dim = first.length;
    if (options.dim !== undefined && options.dim !== dim) {
      throw rangeError(expected(`rows of width ${options.dim}`, 'x', x), 'ERR_SHAPE');
    }
    values = new Float32Array(n * dim);
    for (let r = 0; r < n; r++) {
      const row = rows[r];
      if (row === null || typeof row !== 'object' || typeof row.length !== 'number') {
        throw dataError(name, `row ${r} is not an array of numbers`);
      }
      if (row.length !== dim) throw dataError(name, `row ${r} has ${row.length} values but row 0 has ${dim}`);
      for (let c = 0; c < dim; c++) {
        const v = row[c];
        if (typeof v !== 'number') throw dataError(name, `row ${r}, column ${c} is not a number (${typeof v})`);
        values[r * dim + c] = v;
      }
    }
  } else {
    if (!(x instanceof Float32Array) && !(x instanceof Float64Array) && !Array.isArray(x)) {
      throw typeError(expected('Float32Array, Float64Array, number[] or array of rows', 'x', x));
    }
    const flat = x as ArrayLike<number>;
    if (options.dim === undefined) {
      throw typeError(expected('positive integer (the row width of the flat array "x")', 'dim', undefined));
    }
    dim = options.dim;
    if (typeof dim !== 'number') throw typeError(expected('positive integer', 'dim', dim));
    if (!Number.isInteger(dim) || dim < 1) throw rangeError(expected('positive integer', 'dim', dim));
    if (flat.length % dim !== 0) {
      throw rangeError(expected(`array whose length is a multiple of dim = ${dim}`, 'x', x), 'ERR_SHAPE');
    }
    n = flat.length / dim;
    if (x instanceof Float32Array) {
      values = x;
    } else {
      values = new Float32Array(flat.length);
      for (let i = 0; i < flat.length; i++) {
        const v = flat[i];
        if (typeof v !== 'number') {
          throw dataError(name, `row ${Math.floor(i / dim)}, column ${i % dim} is not a number (${typeof v})`);
        }
        values[i] = v;
      }
    }
  }
  if (n === 0) throw dataError(name, 'the dataset is empty (no rows)');
  if (dim === 0) throw dataError(name, 'the rows are empty (no columns)');

  // Finite in the source precision and after rounding to float32 (1e39 overflows to Infinity).
  const bad = findNonFinite(values, dim);
  if (bad !== null) {
    const source = isRows ? (x as ArrayLike<ArrayLike<number>>)[bad.row][bad.column] : (x as ArrayLike<number>)[bad.row * dim + bad.column];
    throw dataError(name, describeBadValue(bad.row, bad.column, bad.value, source));
  }

  const shape = options.shape === undefined ? [dim] : checkShape(options.shape, dim);
  const labels = options.labels === undefined ? undefined : checkLabels(options.labels, n, name);
  return labels === undefined ? { x: values, n, dim, shape, name } : { x: values, n, dim, shape, labels, name };
}

/** The examples at `indices` (in that order), copied into a new Dataset. */
export function subsetRows(dataset: Dataset, indices: ArrayLike<number>, name = dataset.name): Dataset {
  const { dim, n } = dataset;
  const m = indices.length;
  if (m === 0) throw new FlowVaeError('ERR_DATA', `${name}: the subset is empty (no rows)`);
  const x = new Float32Array(m * dim);
  const labels = dataset.labels ? new Uint8Array(m) : undefined;
  for (let i = 0; i < m; i++) {
    const r = indices[i];
    if (!Number.isInteger(r) || r < 0 || r >= n) {
      throw rangeError(expected(`row index in [0, ${n})`, `indices[${i}]`, r));
    }
    x.set(dataset.x.subarray(r * dim, (r + 1) * dim), i * dim);
    if (labels) labels[i] = dataset.labels![r];
  }
  const base = { x, n: m, dim, shape: [...dataset.shape], name };
  return labels ? { ...base, labels } : base;
}

export interface SplitOptions {
  /** Validation size: a fraction in (0, 1) of the examples, or a count >= 1. */
  validation: number;
  /** Seed of the random assignment of examples to the two parts. */
  seed: number;
}

/**
 * Splits a dataset into train and validation parts at random (determined by
 * `seed`); each part keeps the original order of its examples. Both parts
 * must be non-empty.
 */
export function trainValidationSplit(dataset: Dataset, options: SplitOptions): { train: Dataset; validation: Dataset } {
  if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
  for (const key of Object.keys(options)) {
    if (key !== 'validation' && key !== 'seed') {
      throw rangeError(`Unknown option "${key}" in "options"; expected one of "validation", "seed"`);
    }
  }
  const seed = checkSeed(options.seed, 'seed');
  const v = options.validation;
  const n = dataset.n;
  if (typeof v !== 'number') throw typeError(expected('fraction in (0, 1) or count >= 1', 'validation', v));
  let count: number;
  if (v > 0 && v < 1) count = Math.round(v * n);
  else if (Number.isInteger(v) && v >= 1) count = v;
  else throw rangeError(expected('fraction in (0, 1) or count >= 1', 'validation', v));
  if (count < 1 || count >= n) {
    throw rangeError(
      `Expected a validation size leaving both parts non-empty (1 to ${n - 1} of ${n} examples) for "validation" but received ${v} (number)`,
    );
  }
  // A stream far from the small numbers epoch shuffles use (stream = epoch) keeps the split independent of them.
  const perm = permutation(n, seed, 2 ** 52);
  const validationRows = Uint32Array.from(perm.subarray(0, count)).sort();
  const trainRows = Uint32Array.from(perm.subarray(count)).sort();
  return {
    train: subsetRows(dataset, trainRows, `${dataset.name} (train part)`),
    validation: subsetRows(dataset, validationRows, `${dataset.name} (validation part)`),
  };
}
