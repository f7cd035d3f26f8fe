/**
 * The safetensors format (https://github.com/huggingface/safetensors), which
 * flowvae uses for models so their weights load into PyTorch by name:
 *
 *   8 bytes   N, the header length, unsigned little-endian
 *   N bytes   UTF-8 JSON: {"__metadata__": {string: string},
 *             "<tensor>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...},
 *             padded with spaces so the data starts at a multiple of 8
 *   rest      the tensors' bytes, little-endian, C order; offsets are relative
 *             to the start of this section, which they cover exactly, without
 *             holes or overlaps
 *
 * Writing sorts tensors as the reference implementation does (larger dtypes
 * first, then by name), so every tensor is aligned to its element size and
 * the output does not depend on the input order. Reading validates
 * everything and refuses a truncated or tampered file with a FlowVaeError
 * (ERR_CHECKPOINT) that names the problem.
 */
import fs from 'node:fs';
import { FlowVaeError, expected, rangeError, typeError } from '../errors';
import { writeFileAtomic, writeFileAtomicSync } from './atomic';

export type SafetensorsDType = 'F32' | 'F64';

export interface SafetensorsTensor {
  name: string;
  dtype: SafetensorsDType;
  shape: readonly number[];
  /** Values in C order; F32 tensors given as Float64Array are rounded to float32 when written. */
  data: Float32Array | Float64Array;
}

export interface SafetensorsContents {
  /** The tensors in file order (by data offset). F32 data is a Float32Array, F64 a Float64Array. */
  tensors: { name: string; dtype: SafetensorsDType; shape: number[]; data: Float32Array | Float64Array }[];
  metadata: Record<string, string>;
}

/** Element sizes of every dtype the format defines; flowvae reads and writes F32 and F64. */
const DTYPE_SIZES: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

/** Headers above this are refused (the reference implementation's limit): a corrupt length, not a model. */
export const MAX_HEADER_BYTES = 100_000_000;

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function checkpointError(name: string, message: string, cause?: unknown): FlowVaeError {
  return new FlowVaeError('ERR_CHECKPOINT', `${name}: ${message}`, cause === undefined ? undefined : { cause });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function shapeCount(shape: readonly number[]): number {
  let count = 1;
  for (const s of shape) count *= s;
  return count;
}

// ---- writing ----

function checkTensors(tensors: unknown): SafetensorsTensor[] {
  if (!Array.isArray(tensors)) throw typeError(expected('array of tensors', 'tensors', tensors));
  const seen = new Set<string>();
  tensors.forEach((t: unknown, i) => {
    const label = `tensors[${i}]`;
    if (!isPlainObject(t)) throw typeError(expected('{ name, dtype, shape, data }', label, t));
    const { name, dtype, shape, data } = t;
    if (typeof name !== 'string') throw typeError(expected('string', `${label}.name`, name));
    if (name === '' || name === '__metadata__') throw rangeError(expected('non-empty name other than "__metadata__"', `${label}.name`, name));
    if (seen.has(name)) throw rangeError(`Expected unique tensor names but "${name}" appears twice`);
    seen.add(name);
    if (dtype !== 'F32' && dtype !== 'F64') {
      throw (typeof dtype === 'string' ? rangeError : typeError)(expected('one of "F32", "F64"', `${label}.dtype`, dtype));
    }
    if (!Array.isArray(shape) || shape.some((s) => typeof s !== 'number' || !Number.isSafeInteger(s) || s < 0)) {
      throw typeError(expected('array of non-negative integers', `${label}.shape`, shape));
    }
    if (!(data instanceof Float32Array) && !(data instanceof Float64Array)) {
      throw typeError(expected('Float32Array or Float64Array', `${label}.data`, data));
    }
    const count = shapeCount(shape);
    if (data.length !== count) {
      throw rangeError(expected(`array of length ${count} (shape [${shape.join(', ')}])`, `${label}.data`, data), 'ERR_SHAPE');
    }
  });
  return tensors as SafetensorsTensor[];
}

function checkMetadata(metadata: unknown): Record<string, string> {
  if (!isPlainObject(metadata)) throw typeError(expected('object of strings', 'metadata', metadata));
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string') throw typeError(expected('string', `metadata["${key}"]`, value));
  }
  return metadata as Record<string, string>;
}

/** Encodes tensors and string metadata as safetensors bytes. */
export function encodeSafetensors(tensors: readonly SafetensorsTensor[], metadata: Record<string, string> = {}): Buffer {
  const list = checkTensors(tensors);
  const meta = checkMetadata(metadata);
  // As the reference writer: larger dtypes first (keeps every tensor aligned), then by name.
  const ordered = [...list].sort((a, b) => {
    const bySize = DTYPE_SIZES[b.dtype] - DTYPE_SIZES[a.dtype];
    return bySize !== 0 ? bySize : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  });
  const header: Record<string, unknown> = {};
  if (Object.keys(meta).length > 0) header.__metadata__ = { ...meta };
  let offset = 0;
  for (const t of ordered) {
    const bytes = t.data.length * DTYPE_SIZES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  if (json.length > MAX_HEADER_BYTES) throw rangeError(`The safetensors header would be ${json.length} bytes, above the limit of ${MAX_HEADER_BYTES}`);

  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  const base = 8 + json.length;
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let p = base;
  for (const t of ordered) {
    const n = t.data.length;
    if (t.dtype === 'F32') {
      if (HOST_LITTLE_ENDIAN) {
        const f32 = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
        out.set(new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength), p);
      } else {
        for (let i = 0; i < n; i++) view.setFloat32(p + 4 * i, t.data[i], true);
      }
      p += 4 * n;
    } else {
      if (HOST_LITTLE_ENDIAN) {
        const f64 = t.data instanceof Float64Array ? t.data : Float64Array.from(t.data);
        out.set(new Uint8Array(f64.buffer, f64.byteOffset, f64.byteLength), p);
      } else {
        for (let i = 0; i < n; i++) view.setFloat64(p + 8 * i, t.data[i], true);
      }
      p += 8 * n;
    }
  }
  return out;
}

/**
 * Saves tensors and metadata to `file` atomically: a temporary file in the
 * same directory is written, fsynced and renamed over `file`, so a crash
 * mid-save leaves the previous file intact.
 */
export function saveSafetensors(file: string, tensors: readonly SafetensorsTensor[], metadata: Record<string, string> = {}): void {
  if (typeof file !== 'string' || file === '') throw typeError(expected('file path string', 'file', file));
  writeFileAtomicSync(file, encodeSafetensors(tensors, metadata));
}

/** Promise version of saveSafetensors. */
export async function saveSafetensorsAsync(file: string, tensors: readonly SafetensorsTensor[], metadata: Record<string, string> = {}): Promise<void> {
  if (typeof file !== 'string' || file === '') throw typeError(expected('file path string', 'file', file));
  await writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}

// ---- reading ----

interface Entry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

function describeJson(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}

function parseEntry(name: string, info: unknown, file: string): Entry {
  const what = `tensor "${name}"`;
  if (!isPlainObject(info)) throw checkpointError(file, `${what} is ${describeJson(info)}, not an object`);
  for (const key of Object.keys(info)) {
    if (key !== 'dtype' && key !== 'shape' && key !== 'data_offsets') throw checkpointError(file, `${what} has an unknown field "${key}"`);
  }
  const { dtype, shape, data_offsets: offsets } = info;
  if (typeof dtype !== 'string') throw checkpointError(file, `${what} has no string "dtype"`);
  if (!(dtype in DTYPE_SIZES)) throw checkpointError(file, `${what} has unknown dtype "${dtype.slice(0, 40)}"`);
  if (!Array.isArray(shape) || shape.some((s) => typeof s !== 'number' || !Number.isSafeInteger(s) || s < 0)) {
    throw checkpointError(file, `${what} has an invalid "shape" (expected an array of non-negative integers)`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || offsets.some((o) => typeof o !== 'number' || !Number.isSafeInteger(o) || o < 0)) {
    throw checkpointError(file, `${what} has invalid "data_offsets" (expected [begin, end] with non-negative integers)`);
  }
  const [begin, end] = offsets as number[];
  if (end < begin) throw checkpointError(file, `${what} has data_offsets [${begin}, ${end}] with end before begin`);
  return { name, dtype, shape: shape as number[], begin, end };
}

/** Decodes safetensors bytes, validating the whole file. `name` appears in error messages. */
export function decodeSafetensors(bytes: Uint8Array, name = 'safetensors data'): SafetensorsContents {
  if (!(bytes instanceof Uint8Array)) throw typeError(expected('Uint8Array or Buffer', 'bytes', bytes));
  if (bytes.length < 8) throw checkpointError(name, `truncated: ${bytes.length} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength64 = view.getBigUint64(0, true);
  if (headerLength64 > BigInt(MAX_HEADER_BYTES)) {
    throw checkpointError(name, `header length ${headerLength64} is above the limit of ${MAX_HEADER_BYTES} bytes (corrupt or not a safetensors file)`);
  }
  const headerLength = Number(headerLength64);
  if (8 + headerLength > bytes.length) {
    throw checkpointError(name, `truncated: the header length is ${headerLength} bytes but only ${bytes.length - 8} follow it`);
  }
  if (headerLength < 2 || bytes[8] !== 0x7b) throw checkpointError(name, 'the header does not start with "{" (not a safetensors file?)');
  let header: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength));
    header = JSON.parse(text);
  } catch (err) {
    throw checkpointError(name, `the header is not valid UTF-8 JSON (${(err as Error).message})`, err);
  }
  if (!isPlainObject(header)) throw checkpointError(name, 'the header is not a JSON object');

  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [key, value] of Object.entries(header)) {
    if (key === '__metadata__') {
      if (!isPlainObject(value)) throw checkpointError(name, `"__metadata__" is ${describeJson(value)}, not an object of strings`);
      for (const [mk, mv] of Object.entries(value)) {
        if (typeof mv !== 'string') throw checkpointError(name, `metadata "${mk}" is ${describeJson(mv)}, not a string`);
        // defineProperty, so a key such as "__proto__" is stored as data rather than changing the prototype.
        Object.defineProperty(metadata, mk, { value: mv, enumerable: true, writable: true, configurable: true });
      }
      continue;
    }
    entries.push(parseEntry(key, value, name));
  }

  const dataStart = 8 + headerLength;
  const dataLength = bytes.length - dataStart;
  for (const e of entries) {
    if (e.end > dataLength) {
      throw checkpointError(name, `tensor "${e.name}" has data_offsets [${e.begin}, ${e.end}] beyond the ${dataLength}-byte data section (truncated file?)`);
    }
    const expectedBytes = shapeCount(e.shape) * DTYPE_SIZES[e.dtype];
    if (expectedBytes !== e.end - e.begin) {
      throw checkpointError(
        name,
        `tensor "${e.name}" of shape [${e.shape.join(', ')}] and dtype ${e.dtype} needs ${expectedBytes} bytes but its data_offsets [${e.begin}, ${e.end}] span ${e.end - e.begin}`,
      );
    }
  }
  // The offsets must tile the data section: sorted, each starting where the previous ended.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous: Entry | undefined;
  for (const e of entries) {
    if (e.begin < covered) {
      throw checkpointError(name, `tensors "${previous!.name}" [${previous!.begin}, ${previous!.end}] and "${e.name}" [${e.begin}, ${e.end}] overlap`);
    }
    if (e.begin > covered) {
      throw checkpointError(name, `bytes ${covered} to ${e.begin} of the data section belong to no tensor (holes are not allowed)`);
    }
    covered = e.end;
    previous = e;
  }
  if (covered !== dataLength) {
    throw checkpointError(name, `the data section has ${dataLength} bytes but the tensors cover ${covered} (trailing bytes are not allowed)`);
  }

  const tensors: SafetensorsContents['tensors'] = [];
  for (const e of entries) {
    if (e.dtype !== 'F32' && e.dtype !== 'F64') {
      throw checkpointError(name, `tensor "${e.name}" has dtype ${e.dtype}; flowvae reads F32 and F64 tensors only`);
    }
    const count = shapeCount(e.shape);
    const src = bytes.subarray(dataStart + e.begin, dataStart + e.end);
    let data: Float32Array | Float64Array;
    if (HOST_LITTLE_ENDIAN) {
      // Copy into a fresh, aligned buffer (the file offsets need not be aligned).
      const copy = new Uint8Array(src).buffer;
      data = e.dtype === 'F32' ? new Float32Array(copy) : new Float64Array(copy);
    } else {
      const v = new DataView(src.buffer, src.byteOffset, src.byteLength);
      data = e.dtype === 'F32' ? new Float32Array(count) : new Float64Array(count);
      for (let i = 0; i < count; i++) data[i] = e.dtype === 'F32' ? v.getFloat32(4 * i, true) : v.getFloat64(8 * i, true);
    }
    tensors.push({ name: e.name, dtype: e.dtype, shape: e.shape, data });
  }
  return { tensors, metadata };
}

/** Loads and validates a safetensors file. */
export function loadSafetensors(file: string): SafetensorsContents {
  if (typeof file !== 'string' || file === '') throw typeError(expected('file path string', 'file', file));
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw checkpointError(file, code === 'ENOENT' ? 'no such file' : `cannot be read (${(err as Error).message})`, err);
  }
  return decodeSafetensors(bytes, file);
}
