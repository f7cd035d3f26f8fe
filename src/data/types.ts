/**
 * The one in-memory dataset type every loader returns and the trainer reads
 * (declared apart from the functions of dataset.ts so that the checks in
 * validate.ts can name it without importing them).
 */
export interface Dataset {
  /** Examples, row-major `[n, dim]`. */
  readonly x: Float32Array;
  /** Number of examples (rows). */
  readonly n: number;
  /** Values per example (columns); the product of `shape`. */
  readonly dim: number;
  /** Shape of one example: `[28, 28]` for MNIST, `[dim]` for tabular data. */
  readonly shape: readonly number[];
  /** Integer class labels, one per example, when the source has them. */
  readonly labels?: Uint8Array;
  /** Where the data came from, used in error messages (`"mnist-subset/train"`, a file path). */
  readonly name: string;
}
