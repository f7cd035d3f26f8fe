/**
 * IDX files, the format of MNIST and Fashion-MNIST (LeCun et al.): a 4-byte
 * magic number (two zero bytes, a type code, the number of dimensions), the
 * dimensions as big-endian uint32, then the values, big-endian, row-major.
 * Files may be gzipped (recognized by the gzip magic bytes, whatever the
 * name). Corrupt or truncated files are refused with a FlowVaeError
 * (ERR_DATA) that names the file and what is wrong.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { FlowVaeError, expected, rangeError, typeError } from '../errors';
import { createDataset, type Dataset } from './dataset';

export type IdxDType = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';
export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxArray {
  dtype: IdxDType;
  shape: number[];
  data: IdxData;
}

const TYPE_CODES: Record<number, { dtype: IdxDType; size: number }> = {
  0x08: { dtype: 'uint8', size: 1 },
  0x09: { dtype: 'int8', size: 1 },
  0x0b: { dtype: 'int16', size: 2 },
  0x0c: { dtype: 'int32', size: 4 },
  0x0d: { dtype: 'float32', size: 4 },
  0x0e: { dtype: 'float64', size: 8 },
};

/** Decompressed size refused beyond this (a corrupt header or a gzip bomb, not a dataset). */
const MAX_IDX_BYTES = 2 ** 31 - 1;

function dataError(name: string, message: string, cause?: unknown): FlowVaeError {
  return new FlowVaeError('ERR_DATA', `${name}: ${message}`, cause === undefined ? undefined : { cause });
}

/** A shape for a message: in full up to 6 dimensions, else its start and its rank (a corrupt header can declare 255). */
function describeShape(shape: readonly number[]): string {
  return shape.length <= 6 ? `[${shape.join(', ')}]` : `[${shape.slice(0, 4).join(', ')}, …] (${shape.length} dimensions)`;
}

function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Gunzips when the bytes start with the gzip magic number; corrupt or truncated streams are ERR_DATA. */
export function maybeGunzip(bytes: Uint8Array, name: string): Uint8Array {
  if (!isGzip(bytes)) return bytes;
  try {
    return zlib.gunzipSync(bytes, { maxOutputLength: MAX_IDX_BYTES });
  } catch (err) {
    const reason = (err as Error).message;
    throw dataError(name, `corrupt or truncated gzip data (${reason})`, err);
  }
}

/** Parses IDX bytes (plain or gzipped). `name` appears in error messages. */
export function parseIdx(input: Uint8Array, name = 'IDX data'): IdxArray {
  if (!(input instanceof Uint8Array)) throw typeError(expected('Uint8Array or Buffer', 'input', input));
  const bytes = maybeGunzip(input, name);
  if (bytes.length < 4) throw dataError(name, `truncated: ${bytes.length} bytes, but the IDX header alone needs 4`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    const magic = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join('');
    throw dataError(name, `bad magic number 0x${magic}: an IDX file starts with two zero bytes (not an IDX file?)`);
  }
  const type = TYPE_CODES[bytes[2]];
  if (type === undefined) {
    throw dataError(name, `unknown IDX type code 0x${bytes[2].toString(16).padStart(2, '0')} (expected 08, 09, 0b, 0c, 0d or 0e)`);
  }
  const ndim = bytes[3];
  if (ndim === 0) throw dataError(name, 'the header declares 0 dimensions');
  const headerLength = 4 + 4 * ndim;
  if (bytes.length < headerLength) {
    throw dataError(name, `truncated: ${bytes.length} bytes, but the header of a ${ndim}-dimensional IDX file needs ${headerLength}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape: number[] = [];
  let count = 1;
  for (let d = 0; d < ndim; d++) {
    const size = view.getUint32(4 + 4 * d, false);
    shape.push(size);
    count *= size;
  }
  const dataBytes = bytes.length - headerLength;
  const needed = count * type.size;
  if (needed > dataBytes) {
    throw dataError(
      name,
      `truncated: the header declares shape ${describeShape(shape)} of ${type.dtype} (${needed} data bytes) but only ${dataBytes} follow`,
    );
  }
  if (needed < dataBytes) {
    throw dataError(name, `${dataBytes - needed} unexpected bytes after the data of shape ${describeShape(shape)} (corrupt header?)`);
  }

  const body = bytes.subarray(headerLength);
  let data: IdxData;
  if (type.dtype === 'uint8') {
    data = new Uint8Array(body); // a copy, not a view of the (possibly pooled) input
  } else if (type.dtype === 'int8') {
    data = new Int8Array(new Uint8Array(body).buffer);
  } else {
    // Multi-byte values are big-endian: read through a DataView.
    const bodyView = new DataView(body.buffer, body.byteOffset, body.byteLength);
    switch (type.dtype) {
      case 'int16': {
        const out = new Int16Array(count);
        for (let i = 0; i < count; i++) out[i] = bodyView.getInt16(2 * i, false);
        data = out;
        break;
      }
      case 'int32': {
        const out = new Int32Array(count);
        for (let i = 0; i < count; i++) out[i] = bodyView.getInt32(4 * i, false);
        data = out;
        break;
      }
      case 'float32': {
        const out = new Float32Array(count);
        for (let i = 0; i < count; i++) out[i] = bodyView.getFloat32(4 * i, false);
        data = out;
        break;
      }
      default: {
        const out = new Float64Array(count);
        for (let i = 0; i < count; i++) out[i] = bodyView.getFloat64(8 * i, false);
        data = out;
      }
    }
  }
  return { dtype: type.dtype, shape, data };
}

function readFileForData(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw dataError(file, code === 'ENOENT' ? 'no such file' : `cannot be read (${(err as Error).message})`, err);
  }
}

/** Reads an IDX file (plain or gzipped). */
export function readIdx(file: string): IdxArray {
  if (typeof file !== 'string') throw typeError(expected('file path string', 'file', file));
  return parseIdx(readFileForData(file), file);
}

/** Encodes an array as (uncompressed) IDX bytes; gzip them with `zlib.gzipSync` for `.gz` files. */
export function encodeIdx(array: IdxArray): Buffer {
  const codeEntry = Object.entries(TYPE_CODES).find(([, t]) => t.dtype === array.dtype);
  if (codeEntry === undefined) throw rangeError(expected('IDX dtype', 'array.dtype', array.dtype));
  const code = Number(codeEntry[0]);
  const size = codeEntry[1].size;
  const { shape, data } = array;
  if (shape.length < 1 || shape.length > 255) throw rangeError(expected('1 to 255 dimensions', 'array.shape', shape));
  let count = 1;
  for (const s of shape) {
    if (!Number.isInteger(s) || s < 0 || s > 0xffffffff) throw rangeError(expected('array of uint32 sizes', 'array.shape', shape));
    count *= s;
  }
  if (data.length !== count) throw rangeError(expected(`data of length ${count}`, 'array.data', data), 'ERR_SHAPE');
  const header = 4 + 4 * shape.length;
  const out = Buffer.alloc(header + count * size);
  out[2] = code;
  out[3] = shape.length;
  shape.forEach((s, d) => out.writeUInt32BE(s, 4 + 4 * d));
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let i = 0, p = header; i < count; i++, p += size) {
    const v = data[i];
    switch (array.dtype) {
      case 'uint8':
        view.setUint8(p, v);
        break;
      case 'int8':
        view.setInt8(p, v);
        break;
      case 'int16':
        view.setInt16(p, v, false);
        break;
      case 'int32':
        view.setInt32(p, v, false);
        break;
      case 'float32':
        view.setFloat32(p, v, false);
        break;
      case 'float64':
        view.setFloat64(p, v, false);
        break;
    }
  }
  return out;
}

export type Split = 'train' | 'test';

export interface IdxDatasetOptions {
  split: Split;
  /** Load only the first `limit` examples. */
  limit?: number;
  /** Name used in error messages and as the dataset's name; defaults to the directory and split. */
  name?: string;
}

/** File names tried for one split, in order: the names on LeCun's site, then the dotted variant some mirrors use. */
export function idxFileCandidates(split: Split, kind: 'images' | 'labels'): string[] {
  const prefix = split === 'train' ? 'train' : 't10k';
  const rank = kind === 'images' ? 3 : 1;
  const bases = [`${prefix}-${kind}-idx${rank}-ubyte`, `${prefix}-${kind}.idx${rank}-ubyte`];
  return bases.flatMap((b) => [b, `${b}.gz`]);
}

function findIdxFile(dir: string, split: Split, kind: 'images' | 'labels', name: string): string {
  const candidates = idxFileCandidates(split, kind);
  for (const c of candidates) {
    const file = path.join(dir, c);
    if (fs.existsSync(file)) return file;
  }
  throw dataError(name, `no ${split} ${kind} file in ${dir} (looked for ${candidates.join(', ')})`);
}

const IDX_DATASET_OPTIONS = ['split', 'limit', 'name'];

/**
 * Loads an MNIST-style directory: `train-images-idx3-ubyte[.gz]` with
 * `train-labels-idx1-ubyte[.gz]`, or the `t10k-` pair for the test split.
 * Pixels (bytes) are scaled to [0, 1]; labels are kept as bytes.
 */
export function loadIdxDataset(dir: string, options: IdxDatasetOptions): Dataset {
  if (typeof dir !== 'string') throw pathTypeError('dir', dir);
  if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
  for (const key of Object.keys(options)) {
    if (!IDX_DATASET_OPTIONS.includes(key)) {
      throw rangeError(`Unknown option "${key}" in "options"; expected one of ${IDX_DATASET_OPTIONS.map((k) => `"${k}"`).join(', ')}`);
    }
  }
  const split = checkSplit(options.split);
  const limit = options.limit;
  if (limit !== undefined) {
    if (typeof limit !== 'number') throw typeError(expected('positive integer', 'limit', limit));
    if (!Number.isInteger(limit) || limit < 1) throw rangeError(expected('positive integer', 'limit', limit));
  }
  const name = options.name ?? `${dir} (${split})`;
  if (!fs.existsSync(dir)) throw dataError(name, `directory ${dir} does not exist`);

  const imagesFile = findIdxFile(dir, split, 'images', name);
  const labelsFile = findIdxFile(dir, split, 'labels', name);
  const images = readIdx(imagesFile);
  const labels = readIdx(labelsFile);
  if (images.dtype !== 'uint8' || images.shape.length !== 3) {
    throw dataError(imagesFile, `expected unsigned bytes of shape [n, rows, columns] but found ${images.dtype} of shape [${images.shape.join(', ')}]`);
  }
  if (labels.dtype !== 'uint8' || labels.shape.length !== 1) {
    throw dataError(labelsFile, `expected unsigned bytes of shape [n] but found ${labels.dtype} of shape [${labels.shape.join(', ')}]`);
  }
  const [count, rows, cols] = images.shape;
  if (labels.shape[0] !== count) {
    throw dataError(name, `${count} images in ${imagesFile} but ${labels.shape[0]} labels in ${labelsFile}`);
  }
  const n = limit === undefined ? count : Math.min(limit, count);
  const dim = rows * cols;
  const x = new Float32Array(n * dim);
  const pixels = images.data as Uint8Array;
  for (let i = 0; i < n * dim; i++) x[i] = pixels[i] / 255;
  return createDataset(x, { dim, shape: [rows, cols], labels: (labels.data as Uint8Array).slice(0, n), name });
}

function pathTypeError(name: string, value: unknown): TypeError {
  return typeError(expected('directory path string', name, value));
}

export function checkSplit(split: unknown): Split {
  if (split === 'train' || split === 'test') return split;
  const what = 'one of "train", "test"';
  throw (typeof split === 'string' ? rangeError : typeError)(expected(what, 'split', split));
}

/** Where Debian's `dataset-fashion-mnist` package installs Fashion-MNIST. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** Fashion-MNIST class names by label. */
export const FASHION_MNIST_CLASSES: readonly string[] = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

export interface FashionMnistOptions {
  split: Split;
  /** Directory with the four IDX files; defaults to Debian's location. */
  dir?: string;
  limit?: number;
}

/**
 * Fashion-MNIST (Xiao et al. 2017; 60,000 train and 10,000 test 28×28 images)
 * from Debian's `dataset-fashion-mnist` package or a directory with the same
 * four files.
 */
export function loadFashionMnist(options: FashionMnistOptions): Dataset {
  if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
  for (const key of Object.keys(options)) {
    if (key !== 'split' && key !== 'dir' && key !== 'limit') {
      throw rangeError(`Unknown option "${key}" in "options"; expected one of "split", "dir", "limit"`);
    }
  }
  const split = checkSplit(options.split);
  const dir = options.dir ?? FASHION_MNIST_DIR;
  if (typeof dir !== 'string') throw pathTypeError('dir', dir);
  const name = `fashion-mnist/${split}`;
  if (!fs.existsSync(dir)) {
    throw dataError(
      name,
      `Fashion-MNIST not found: ${dir} does not exist; install Debian's dataset-fashion-mnist package ` +
        `("apt-get install dataset-fashion-mnist", which puts the files in ${FASHION_MNIST_DIR}) ` +
        'or pass { dir } naming a directory with the four IDX files',
    );
  }
  return loadIdxDataset(dir, options.limit === undefined ? { split, name } : { split, name, limit: options.limit });
}
