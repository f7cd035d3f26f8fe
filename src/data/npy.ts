/**
 * NumPy `.npy` files (format versions 1.0, 2.0 and 3.0): the magic string
 * `\x93NUMPY`, a version, a little-endian header length (uint16 in 1.0,
 * uint32 in 2.0/3.0), a Python dict literal `{'descr': '<f4',
 * 'fortran_order': False, 'shape': (n, d), }`, then the raw values in C
 * order. Numeric dtypes of either byte order are read; Fortran order,
 * object, string and structured dtypes are refused with a FlowVaeError
 * (ERR_DATA) saying what to do instead.
 */
import fs from 'node:fs';
import { FlowVaeError, expected, rangeError, typeError } from '../errors';
import { createDataset, type Dataset } from './dataset';

export type NpyData = Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array;

export interface NpyArray {
  /** The dtype string from the header, e.g. `<f4`. */
  descr: string;
  shape: number[];
  /**
   * The values, C order. float16 is widened to Float32Array; int64/uint64 to
   * Float64Array (exact up to 2^53); bool to Uint8Array.
   */
  data: NpyData;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

function npyError(name: string, message: string): FlowVaeError {
  return new FlowVaeError('ERR_DATA', `${name}: ${message}`);
}

// ---- A parser for the Python literal subset np.save writes in the header ----

type PyValue = string | number | boolean | null | PyValue[] | { [key: string]: PyValue };

class LiteralParser {
  private pos = 0;
  constructor(
    private readonly text: string,
    private readonly name: string,
  ) {}

  private fail(what: string): never {
    throw npyError(this.name, `malformed header (${what} at character ${this.pos}): ${JSON.stringify(this.text.slice(0, 200))}`);
  }

  private skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos])) this.pos++;
  }

  parseAll(): PyValue {
    const value = this.parseValue();
    this.skipSpace();
    if (this.pos !== this.text.length) this.fail('unexpected text after the dictionary');
    return value;
  }

  private parseValue(): PyValue {
    this.skipSpace();
    const c = this.text[this.pos];
    if (c === '{') return this.parseDict();
    if (c === '(' || c === '[') return this.parseSequence(c === '(' ? ')' : ']');
    if (c === "'" || c === '"') return this.parseString();
    const word = /^(True|False|None|-?\d+L?)/.exec(this.text.slice(this.pos));
    if (word === null) this.fail('unexpected token');
    this.pos += word[0].length;
    if (word[0] === 'True') return true;
    if (word[0] === 'False') return false;
    if (word[0] === 'None') return null;
    return Number(word[0].replace('L', '')); // Python 2 wrote longs as 3L
  }

  private parseString(): string {
    const quote = this.text[this.pos++];
    let out = '';
    while (this.pos < this.text.length && this.text[this.pos] !== quote) {
      if (this.text[this.pos] === '\\') this.pos++;
      out += this.text[this.pos++];
    }
    if (this.pos >= this.text.length) this.fail('unterminated string');
    this.pos++;
    return out;
  }

  private parseSequence(close: string): PyValue[] {
    this.pos++;
    const items: PyValue[] = [];
    for (;;) {
      this.skipSpace();
      if (this.text[this.pos] === close) {
        this.pos++;
        return items;
      }
      items.push(this.parseValue());
      this.skipSpace();
      if (this.text[this.pos] === ',') this.pos++;
      else if (this.text[this.pos] !== close) this.fail(`expected "," or "${close}"`);
    }
  }

  private parseDict(): { [key: string]: PyValue } {
    this.pos++;
    const out: { [key: string]: PyValue } = {};
    for (;;) {
      this.skipSpace();
      if (this.text[this.pos] === '}') {
        this.pos++;
        return out;
      }
      const c = this.text[this.pos];
      if (c !== "'" && c !== '"') this.fail('expected a string key');
      const key = this.parseString();
      this.skipSpace();
      if (this.text[this.pos] !== ':') this.fail('expected ":"');
      this.pos++;
      out[key] = this.parseValue();
      this.skipSpace();
      if (this.text[this.pos] === ',') this.pos++;
      else if (this.text[this.pos] !== '}') this.fail('expected "," or "}"');
    }
  }
}

// ---- dtypes ----

interface DTypeInfo {
  kind: 'f' | 'i' | 'u' | 'b';
  size: number;
  littleEndian: boolean;
}

function parseDescr(descr: PyValue, name: string): DTypeInfo {
  if (typeof descr !== 'string') {
    throw npyError(name, 'structured dtypes (records with named fields) are not supported; save a plain numeric array');
  }
  const m = /^([<>|=]?)([a-zA-Z])(\d*)$/.exec(descr);
  const kind = m?.[2];
  if (m === null || kind === undefined) throw npyError(name, `unsupported dtype '${descr}'`);
  if (kind === 'O') {
    throw npyError(name, `dtype '${descr}' holds Python objects, not numbers (object arrays cannot be read); save a numeric array, e.g. a.astype(np.float32)`);
  }
  const size = Number(m[3]);
  const order = m[1];
  const supported =
    (kind === 'f' && (size === 2 || size === 4 || size === 8)) ||
    ((kind === 'i' || kind === 'u') && (size === 1 || size === 2 || size === 4 || size === 8)) ||
    (kind === 'b' && size === 1);
  if (!supported) {
    throw npyError(name, `unsupported dtype '${descr}' (readable: float16/32/64, int8..int64, uint8..uint64, bool)`);
  }
  if (order === '=' && size > 1) {
    throw npyError(name, `dtype '${descr}' has native byte order ('='), which a file cannot state; save with an explicit '<' or '>' order`);
  }
  return { kind: kind as DTypeInfo['kind'], size, littleEndian: order !== '>' };
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 31) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function decodeValues(body: Uint8Array, count: number, t: DTypeInfo): NpyData {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const le = t.littleEndian;
  if (t.kind === 'b' || (t.kind === 'u' && t.size === 1)) return new Uint8Array(body);
  if (t.kind === 'i' && t.size === 1) return new Int8Array(new Uint8Array(body).buffer);
  const direct = t.kind === 'f' ? t.size === 4 || t.size === 8 : t.size === 2 || t.size === 4;
  if (direct && le === HOST_LITTLE_ENDIAN) {
    // Same byte order as the host: one aligned copy instead of element-wise reads.
    const copy = new Uint8Array(body).buffer;
    if (t.kind === 'f') return t.size === 4 ? new Float32Array(copy) : new Float64Array(copy);
    if (t.size === 2) return t.kind === 'i' ? new Int16Array(copy) : new Uint16Array(copy);
    return t.kind === 'i' ? new Int32Array(copy) : new Uint32Array(copy);
  }
  if (t.kind === 'f') {
    if (t.size === 2) {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(2 * i, le));
      return out;
    }
    if (t.size === 4) {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, le);
      return out;
    }
    const out = new Float64Array(count);
    for (let i = 0; i < count; i++) out[i] = view.getFloat64(8 * i, le);
    return out;
  }
  if (t.size === 8) {
    const out = new Float64Array(count);
    for (let i = 0; i < count; i++) out[i] = Number(t.kind === 'i' ? view.getBigInt64(8 * i, le) : view.getBigUint64(8 * i, le));
    return out;
  }
  if (t.size === 2) {
    const out = t.kind === 'i' ? new Int16Array(count) : new Uint16Array(count);
    for (let i = 0; i < count; i++) out[i] = t.kind === 'i' ? view.getInt16(2 * i, le) : view.getUint16(2 * i, le);
    return out;
  }
  const out = t.kind === 'i' ? new Int32Array(count) : new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = t.kind === 'i' ? view.getInt32(4 * i, le) : view.getUint32(4 * i, le);
  return out;
}

/** Parses the bytes of a `.npy` file. `name` appears in error messages. */
export function parseNpy(bytes: Uint8Array, name = 'NPY data'): NpyArray {
  if (!(bytes instanceof Uint8Array)) throw typeError(expected('Uint8Array or Buffer', 'bytes', bytes));
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw npyError(name, bytes.length < 10 && MAGIC.every((b, i) => i >= bytes.length || bytes[i] === b)
      ? `truncated: ${bytes.length} bytes, shorter than the .npy preamble`
      : 'not a .npy file (missing the \\x93NUMPY magic string)');
  }
  const major = bytes[6];
  const minor = bytes[7];
  if ((major !== 1 && major !== 2 && major !== 3) || minor !== 0) {
    throw npyError(name, `unsupported .npy format version ${major}.${minor} (readable: 1.0, 2.0, 3.0)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const preamble = major === 1 ? 10 : 12;
  if (bytes.length < preamble) throw npyError(name, `truncated: ${bytes.length} bytes, shorter than the .npy preamble`);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataStart = preamble + headerLength;
  if (dataStart > bytes.length) {
    throw npyError(name, `truncated: the header needs ${headerLength} bytes but only ${bytes.length - preamble} follow the preamble`);
  }
  let headerText: string;
  try {
    headerText = new TextDecoder(major === 3 ? 'utf-8' : 'latin1', { fatal: true }).decode(bytes.subarray(preamble, dataStart));
  } catch {
    throw npyError(name, 'the header is not valid text');
  }
  const header = new LiteralParser(headerText, name).parseAll();
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw npyError(name, 'the header is not a dictionary');
  }
  for (const key of ['descr', 'fortran_order', 'shape']) {
    if (!(key in header)) throw npyError(name, `the header lacks "${key}"`);
  }
  const extra = Object.keys(header).filter((k) => k !== 'descr' && k !== 'fortran_order' && k !== 'shape');
  if (extra.length > 0) throw npyError(name, `unexpected header key "${extra[0]}"`);
  const dtype = parseDescr(header.descr, name);
  if (typeof header.fortran_order !== 'boolean') throw npyError(name, '"fortran_order" is not True or False');
  const shapeValue = header.shape;
  if (!Array.isArray(shapeValue) || shapeValue.some((s) => typeof s !== 'number' || !Number.isInteger(s) || s < 0)) {
    throw npyError(name, `"shape" is not a tuple of non-negative integers`);
  }
  const shape = shapeValue as number[];
  let count = 1;
  for (const s of shape) count *= s;
  if (header.fortran_order && shape.filter((s) => s > 1).length > 1) {
    throw npyError(
      name,
      'the array is stored in Fortran (column-major) order, which is not supported; save it with np.save(path, np.ascontiguousarray(a))',
    );
  }
  const available = bytes.length - dataStart;
  const needed = count * dtype.size;
  if (needed > available) {
    throw npyError(name, `truncated: shape (${shape.join(', ')}) of '${header.descr as string}' needs ${needed} data bytes but only ${available} follow the header`);
  }
  if (needed < available) throw npyError(name, `${available - needed} unexpected bytes after the data (corrupt header?)`);
  return { descr: header.descr as string, shape, data: decodeValues(bytes.subarray(dataStart), count, dtype) };
}

function readFileBytes(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new FlowVaeError('ERR_DATA', `${file}: ${code === 'ENOENT' ? 'no such file' : `cannot be read (${(err as Error).message})`}`, {
      cause: err,
    });
  }
}

/** Reads a `.npy` file. */
export function readNpy(file: string): NpyArray {
  if (typeof file !== 'string') throw typeError(expected('file path string', 'file', file));
  return parseNpy(readFileBytes(file), file);
}

/** Encodes a Float32Array (`<f4`), Float64Array (`<f8`) or Uint8Array (`|u1`) as `.npy` version 1.0 bytes. */
export function encodeNpy(data: Float32Array | Float64Array | Uint8Array, shape: readonly number[]): Buffer {
  const descr = data instanceof Float32Array ? '<f4' : data instanceof Float64Array ? '<f8' : data instanceof Uint8Array ? '|u1' : null;
  if (descr === null) throw typeError(expected('Float32Array, Float64Array or Uint8Array', 'data', data));
  if (!Array.isArray(shape) || shape.some((s) => !Number.isInteger(s) || s < 0)) {
    throw typeError(expected('array of non-negative integers', 'shape', shape));
  }
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw rangeError(expected(`array of length ${count}`, 'data', data), 'ERR_SHAPE');
  const tuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let text = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${tuple}, }`;
  // As np.save does: pad with spaces and end with a newline so the data starts at a multiple of 64.
  const total = Math.ceil((10 + text.length + 1) / 64) * 64;
  text = text.padEnd(total - 10 - 1, ' ') + '\n';
  const out = Buffer.alloc(total + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(text.length, 8);
  out.write(text, 10, 'latin1');
  const body = new DataView(out.buffer, out.byteOffset + total, data.byteLength);
  const size = data.BYTES_PER_ELEMENT;
  for (let i = 0; i < data.length; i++) {
    if (size === 1) body.setUint8(i, data[i]);
    else if (size === 4) body.setFloat32(4 * i, data[i], true);
    else body.setFloat64(8 * i, data[i], true);
  }
  return out;
}

/** Writes a `.npy` file (see encodeNpy). */
export function saveNpy(file: string, data: Float32Array | Float64Array | Uint8Array, shape: readonly number[]): void {
  fs.writeFileSync(file, encodeNpy(data, shape));
}

export interface NpyDatasetOptions {
  /** A `.npy` file of integer labels in [0, 255], one per example. */
  labels?: string;
  /** Name used in error messages; defaults to the file path. */
  name?: string;
}

/**
 * Loads a `.npy` array as a Dataset: shape (n, d) gives n rows of d values;
 * (n, h, w, ...) gives rows of h·w·... values with that example shape;
 * (n,) gives n rows of one value.
 */
export function loadNpyDataset(file: string, options: NpyDatasetOptions = {}): Dataset {
  if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
  for (const key of Object.keys(options)) {
    if (key !== 'labels' && key !== 'name') throw rangeError(`Unknown option "${key}" in "options"; expected one of "labels", "name"`);
  }
  const name = options.name ?? file;
  const array = readNpy(file);
  if (array.shape.length === 0) throw npyError(name, 'the array is a scalar (shape ()); expected one example per row');
  const n = array.shape[0];
  const exampleShape = array.shape.length === 1 ? [1] : array.shape.slice(1);
  const dim = exampleShape.reduce((a, b) => a * b, 1);
  if (n === 0) throw npyError(name, `the dataset is empty (shape (${array.shape.join(', ')}))`);
  if (dim === 0) throw npyError(name, `the rows are empty (shape (${array.shape.join(', ')}))`);
  let labels: Uint8Array | undefined;
  if (options.labels !== undefined) {
    const l = readNpy(options.labels);
    if (l.shape.length !== 1 || l.shape[0] !== n) {
      throw npyError(options.labels, `expected ${n} labels of shape (${n},) but found shape (${l.shape.join(', ')})`);
    }
    labels = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const v = l.data[i];
      if (!(Number.isInteger(v) && v >= 0 && v <= 255)) throw npyError(options.labels, `label ${i} is ${v}; labels must be integers in [0, 255]`);
      labels[i] = v;
    }
  }
  const x = array.data instanceof Float32Array ? array.data : Float32Array.from(array.data);
  // createDataset names the first non-finite value (including float64 values that overflow float32).
  if (!(array.data instanceof Float32Array)) {
    for (let i = 0; i < x.length; i++) {
      if (!(x[i] - x[i] === 0) && Number.isFinite(array.data[i])) {
        throw npyError(name, `row ${Math.floor(i / dim)}, column ${i % dim} is ${array.data[i]}, which overflows float32 (largest magnitude 3.4e38)`);
      }
    }
  }
  return createDataset(x, { dim, shape: exampleShape, name, ...(labels ? { labels } : {}) });
}
