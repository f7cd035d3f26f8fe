/**
 * `--data` sources: the bundled MNIST subset, Fashion-MNIST, a directory of
 * IDX files, a CSV file or a NPY file, turned into the train and test sets a
 * run uses. Sources with a train/test split of their own (MNIST-style IDX
 * directories) use it; a single CSV/NPY file has a seeded 20 % held out as
 * its test set unless `--test-data` names one.
 */
import path from 'node:path';
import type { Dataset } from '../data/dataset';
import { subsetRows, trainValidationSplit } from '../data/dataset';
import { loadCsvDataset } from '../data/csv';
import { loadFashionMnist, loadIdxDataset } from '../data/idx';
import { loadMnistSubset } from '../data/mnist';
import { loadNpyDataset } from '../data/npy';
import { InvalidArgumentError } from 'commander';
import { CliError } from './args';

export type DataSpec =
  { kind: 'mnist-subset' } | { kind: 'fashion-mnist' } | { kind: 'idx'; path: string } | { kind: 'csv'; path: string } | { kind: 'npy'; path: string };

export const DATA_HELP = 'mnist-subset | fashion-mnist | idx:<dir> | csv:<file> | npy:<file>';

/** Fraction of a single-file source held out as its test set. */
export const HELD_OUT_TEST_FRACTION = 0.2;

/** Parses a `--data` value; throws commander's InvalidArgumentError on a bad one. */
export function parseDataSpec(value: string): DataSpec {
  if (value === 'mnist-subset' || value === 'fashion-mnist') return { kind: value };
  const m = /^(idx|csv|npy):(.+)$/.exec(value);
  if (m) return { kind: m[1] as 'idx' | 'csv' | 'npy', path: m[2] };
  throw new InvalidArgumentError(`Expected ${DATA_HELP}.`);
}

/**
 * Option parser for `--data`/`--test-data`: checks the value and makes a file
 * path absolute, so the run's settings still find the data from another
 * directory (`eval`, `--resume`).
 */
export function dataSourceOption(value: string): string {
  const spec = parseDataSpec(value);
  return 'path' in spec ? `${spec.kind}:${path.resolve(spec.path)}` : value;
}

export function formatDataSpec(spec: DataSpec): string {
  return 'path' in spec ? `${spec.kind}:${spec.path}` : spec.kind;
}

/** Whether the source has its own test split. */
function hasSplits(spec: DataSpec): boolean {
  return spec.kind === 'mnist-subset' || spec.kind === 'fashion-mnist' || spec.kind === 'idx';
}

function load(spec: DataSpec, split: 'train' | 'test'): Dataset {
  switch (spec.kind) {
    case 'mnist-subset':
      return loadMnistSubset({ split });
    case 'fashion-mnist':
      return loadFashionMnist({ split });
    case 'idx':
      return loadIdxDataset(spec.path, { split });
    case 'csv':
      return loadCsvDataset(spec.path);
    case 'npy':
      return loadNpyDataset(spec.path);
  }
}

function firstRows(data: Dataset, count: number | undefined): Dataset {
  if (count === undefined || count >= data.n) return data;
  return subsetRows(
    data,
    Uint32Array.from({ length: count }, (_, i) => i),
    data.name,
  );
}

export interface LoadedData {
  train: Dataset;
  test: Dataset;
  /** Shape used to draw one example as a picture: [rows, columns]. */
  imageShape: [number, number];
}

export interface LoadDataOptions {
  data: DataSpec;
  testData?: DataSpec;
  /** Seed of the held-out test split of a single-file source. */
  seed: number;
  trainSize?: number;
  testSize?: number;
}

/**
 * The train and test sets of a run. `trainSize`/`testSize` keep the first
 * rows (the bundled files are shuffled already), for quick runs.
 */
export function loadData(options: LoadDataOptions): LoadedData {
  const { data, testData } = options;
  let train: Dataset;
  let test: Dataset;
  if (testData) {
    train = load(data, 'train');
    test = load(testData, 'test');
  } else if (hasSplits(data)) {
    train = load(data, 'train');
    test = load(data, 'test');
  } else {
    const all = load(data, 'train');
    if (all.n < 2) throw new CliError(`error: ${all.name} has ${all.n} example; at least 2 are needed to hold out a test set`, 1);
    const parts = trainValidationSplit(all, { validation: Math.max(1, Math.round(all.n * HELD_OUT_TEST_FRACTION)), seed: options.seed });
    train = parts.train;
    test = parts.validation;
  }
  if (train.dim !== test.dim) {
    throw new CliError(`error: the test set has ${test.dim} values per example but the training set has ${train.dim}`, 1);
  }
  train = firstRows(train, options.trainSize);
  test = firstRows(test, options.testSize);
  return { train, test, imageShape: imageShape(train) };
}

/** How to draw an example: its own 2-D shape, a square when the width is a square number, else one row. */
export function imageShape(data: { dim: number; shape: readonly number[] }): [number, number] {
  if (data.shape.length === 2) return [data.shape[0], data.shape[1]];
  if (data.shape.length === 3 && data.shape[2] === 1) return [data.shape[0], data.shape[1]];
  const side = Math.round(Math.sqrt(data.dim));
  if (side * side === data.dim) return [side, side];
  return [1, data.dim];
}

/** Images (IDX files, MNIST): examples with a 2-D shape. CSV and NPY rows are tabular. */
export function isImageData(data: { shape: readonly number[] }): boolean {
  return data.shape.length >= 2;
}

/** True when every value is exactly 0 or 1. */
export function allBinary(x: Float32Array): boolean {
  for (let i = 0; i < x.length; i++) if (x[i] !== 0 && x[i] !== 1) return false;
  return true;
}

/** True when every value lies in [0, 1] (a Bernoulli likelihood can model the data). */
export function inUnitInterval(x: Float32Array): boolean {
  for (let i = 0; i < x.length; i++) if (!(x[i] >= 0 && x[i] <= 1)) return false;
  return true;
}
