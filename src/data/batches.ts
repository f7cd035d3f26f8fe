/**
 * Mini-batches for training: each epoch visits every example once in an
 * order fixed by (seed, epoch), copying rows into one reusable buffer of the
 * backend's float type, so the training loop allocates nothing per batch.
 */
import { expected, rangeError, typeError } from '../errors';
import type { FloatArray } from '../backend/types';
import type { Dataset } from './dataset';
import { checkSeed, permutationInto } from './random';

export interface BatchOptions {
  /** Examples per batch (the last batch of an epoch may be smaller unless `dropLast`). */
  batchSize: number;
  /** Shuffle each epoch (default true); the order of epoch e is permutation(n, seed, stream = e). */
  shuffle?: boolean;
  /** Seed of the shuffles (default 0). */
  seed?: number;
  /** Skip the final partial batch of each epoch (default false). */
  dropLast?: boolean;
  /** Element type of the batch buffer: `float32` for cpu/cuda, `float64` for reference (default float32). */
  dtype?: 'float32' | 'float64';
}

const BATCH_OPTIONS = ['batchSize', 'shuffle', 'seed', 'dropLast', 'dtype'];

/**
 * One batch. The arrays are views of buffers the iterator reuses: they are
 * valid until the next batch is produced (copy them to keep them).
 */
export interface Batch {
  /** Rows of this batch, `[size, dim]`. */
  x: FloatArray;
  /** Labels of these rows, when the dataset has labels. */
  labels: Uint8Array | undefined;
  /** Dataset row of each batch row. */
  indices: Uint32Array;
  /** Rows in this batch. */
  size: number;
  /** Position of this batch within its epoch (from 0). */
  index: number;
  epoch: number;
}

interface BatchViews {
  x: FloatArray;
  labels: Uint8Array | undefined;
  indices: Uint32Array;
}

export class BatchIterator {
  readonly dataset: Dataset;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  readonly dtype: 'float32' | 'float64';
  /** Batches per epoch. */
  readonly batchesPerEpoch: number;

  private readonly order: Uint32Array;
  private readonly buffer: FloatArray;
  private readonly labelBuffer: Uint8Array | undefined;
  // Views for a full batch and for the final partial one, made once.
  private readonly fullViews: BatchViews;
  private readonly tailViews: BatchViews;
  private readonly tailSize: number;

  constructor(dataset: Dataset, options: BatchOptions) {
    if (typeof dataset !== 'object' || dataset === null || !(dataset.x instanceof Float32Array)) {
      throw typeError(expected('Dataset', 'dataset', dataset));
    }
    if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
    for (const key of Object.keys(options)) {
      if (!BATCH_OPTIONS.includes(key)) {
        throw rangeError(`Unknown option "${key}" in "options"; expected one of ${BATCH_OPTIONS.map((k) => `"${k}"`).join(', ')}`);
      }
    }
    const { batchSize } = options;
    if (typeof batchSize !== 'number') throw typeError(expected('positive integer', 'batchSize', batchSize));
    if (!Number.isInteger(batchSize) || batchSize < 1) throw rangeError(expected('positive integer', 'batchSize', batchSize));
    const shuffle = options.shuffle ?? true;
    if (typeof shuffle !== 'boolean') throw typeError(expected('boolean', 'shuffle', shuffle));
    const dropLast = options.dropLast ?? false;
    if (typeof dropLast !== 'boolean') throw typeError(expected('boolean', 'dropLast', dropLast));
    const seed = checkSeed(options.seed ?? 0, 'seed');
    const dtype = options.dtype ?? 'float32';
    if (dtype !== 'float32' && dtype !== 'float64') {
      throw (typeof dtype === 'string' ? rangeError : typeError)(expected('one of "float32", "float64"', 'dtype', dtype));
    }

    const { n, dim } = dataset;
    const size = Math.min(batchSize, n);
    if (dropLast && n < batchSize) {
      throw rangeError(
        `Expected batchSize at most the number of examples (${n}) when "dropLast" is set for "batchSize" but received ${batchSize} (number)`,
      );
    }
    this.dataset = dataset;
    this.batchSize = batchSize;
    this.shuffle = shuffle;
    this.seed = seed;
    this.dropLast = dropLast;
    this.dtype = dtype;
    const remainder = n % batchSize;
    this.batchesPerEpoch = dropLast || remainder === 0 ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
    this.tailSize = dropLast ? 0 : remainder;

    this.order = new Uint32Array(n);
    this.buffer = dtype === 'float64' ? new Float64Array(size * dim) : new Float32Array(size * dim);
    this.labelBuffer = dataset.labels ? new Uint8Array(size) : undefined;
    const indexBuffer = new Uint32Array(size);
    this.fullViews = { x: this.buffer, labels: this.labelBuffer, indices: indexBuffer };
    this.tailViews = {
      x: this.buffer.subarray(0, this.tailSize * dim),
      labels: this.labelBuffer?.subarray(0, this.tailSize),
      indices: indexBuffer.subarray(0, this.tailSize),
    };
  }

  /** Row order of epoch `epoch` (a fresh array). */
  epochOrder(epoch: number): Uint32Array {
    return this.fillOrder(new Uint32Array(this.dataset.n), epoch);
  }

  private fillOrder(out: Uint32Array, epoch: number): Uint32Array {
    if (this.shuffle) return permutationInto(out, this.seed, epoch);
    for (let i = 0; i < out.length; i++) out[i] = i;
    return out;
  }

  /** The batches of epoch `epoch` (epochs count from 0). */
  *epoch(epoch: number): Generator<Batch, void, undefined> {
    if (typeof epoch !== 'number') throw typeError(expected('non-negative integer', 'epoch', epoch));
    if (!Number.isInteger(epoch) || epoch < 0 || epoch >= 2 ** 52) throw rangeError(expected('non-negative integer', 'epoch', epoch));
    const { dataset, batchSize } = this;
    const { x: source, dim } = dataset;
    const order = this.fillOrder(this.order, epoch);
    const full = this.fullViews;
    const batch: Batch = { x: full.x, labels: full.labels, indices: full.indices, size: 0, index: 0, epoch };
    for (let b = 0; b < this.batchesPerEpoch; b++) {
      const start = b * batchSize;
      const size = Math.min(batchSize, dataset.n - start);
      const views = size === batchSize ? this.fullViews : this.tailViews;
      const out = views.x;
      for (let i = 0; i < size; i++) {
        const r = order[start + i];
        views.indices[i] = r;
        const from = r * dim;
        const to = i * dim;
        // set() converts float32 to float64 when the buffer is Float64Array.
        out.set(source.subarray(from, from + dim), to);
        if (views.labels) views.labels[i] = dataset.labels![r];
      }
      batch.x = out;
      batch.labels = views.labels;
      batch.indices = views.indices;
      batch.size = size;
      batch.index = b;
      yield batch;
    }
  }
}
