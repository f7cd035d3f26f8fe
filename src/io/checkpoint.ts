/**
 * What every flowvae checkpoint shares: named tensors (parameters and
 * buffers) in one safetensors file with string metadata, written atomically
 * and read back with every tensor checked against the model it is loaded
 * into. VAE and FlowDistribution checkpoints differ only in their metadata.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FloatArray } from '../backend/types';
import { FlowVaeError, expected, typeError } from '../errors';
import { decodeSafetensors, encodeSafetensors, loadSafetensors, saveSafetensors, type SafetensorsContents, type SafetensorsTensor } from './safetensors';

/** A tensor to save or to restore into: parameters and buffers both fit. */
export interface NamedTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly value: FloatArray;
}

/** The checkpoint file a `save(dir)` wrote: `<dir>/model.safetensors` (creating dir). */
export function checkpointFileForSave(dir: unknown): string {
  if (typeof dir !== 'string' || dir.length === 0) throw typeError(expected('directory path', 'dir', dir));
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'EEXIST' || code === 'ENOTDIR'
        ? 'a file is in the way (save takes a directory and writes model.safetensors in it)'
        : code === 'EACCES' || code === 'EPERM'
          ? 'permission denied'
          : code === 'EROFS'
            ? 'the file system is read-only'
            : (err as Error).message;
    throw new FlowVaeError('ERR_CHECKPOINT', `Cannot save to "${dir}": ${why}`, { cause: err });
  }
  return path.join(dir, 'model.safetensors');
}

/** The file `load(dir)` reads: `<dir>/model.safetensors`, or `dir` itself when it names a file. */
export function checkpointFileForLoad(dir: unknown): string {
  if (typeof dir !== 'string' || dir.length === 0) throw typeError(expected('directory path', 'dir', dir));
  return fs.existsSync(dir) && fs.statSync(dir).isDirectory() ? path.join(dir, 'model.safetensors') : dir;
}

/**
 * Metadata key of the per-tensor checksums: a JSON object mapping each
 * tensor's name to the first 16 hex digits of the SHA-256 of its bytes as
 * stored. Plain metadata, so the file still loads anywhere safetensors does.
 */
export const CHECKSUMS_KEY = 'flowvae.sha256';

/** SHA-256 (16 hex digits) of a tensor's little-endian bytes in `dtype`. */
function tensorChecksum(data: Float32Array | Float64Array, dtype: SafetensorsTensor['dtype']): string {
  const stored =
    dtype === 'F32' ? (data instanceof Float32Array ? data : Float32Array.from(data)) : data instanceof Float64Array ? data : Float64Array.from(data);
  return crypto
    .createHash('sha256')
    .update(new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength))
    .digest('hex')
    .slice(0, 16);
}

/** What a checkpoint holds: named tensors (in `dtype`), extra tensors and string metadata. */
export interface CheckpointParts {
  tensors: readonly NamedTensor[];
  dtype: 'float32' | 'float64';
  metadata: Record<string, string>;
  extra?: readonly SafetensorsTensor[];
}

/** The safetensors tensors and metadata of a checkpoint, with a checksum per tensor. */
function checkpointTensors(parts: CheckpointParts): { tensors: SafetensorsTensor[]; metadata: Record<string, string> } {
  const st = parts.dtype === 'float64' ? 'F64' : 'F32';
  const all = [...parts.tensors.map((t) => ({ name: t.name, dtype: st, shape: t.shape, data: t.value }) as SafetensorsTensor), ...(parts.extra ?? [])];
  const checksums = Object.fromEntries(all.map((t) => [t.name, tensorChecksum(t.data, t.dtype)]));
  return { tensors: all, metadata: { ...parts.metadata, [CHECKSUMS_KEY]: JSON.stringify(checksums) } };
}

/** Writes a checkpoint to `file`, atomically (temporary file + rename). */
export function writeCheckpoint(file: string, parts: CheckpointParts): void {
  const { tensors, metadata } = checkpointTensors(parts);
  saveSafetensors(file, tensors, metadata);
}

/** A checkpoint as bytes (the file `writeCheckpoint` would write): to send to a worker or store elsewhere. */
export function checkpointBytes(parts: CheckpointParts): Uint8Array {
  const { tensors, metadata } = checkpointTensors(parts);
  return encodeSafetensors(tensors, metadata);
}

/**
 * Refuses a file whose tensors do not match the checksums written with them
 * (a flipped bit, a partly overwritten file), naming the first such tensor.
 * Files written before checksums existed have none and are not checked.
 */
function verifyChecksums(file: string, contents: SafetensorsContents): void {
  const text = contents.metadata[CHECKSUMS_KEY];
  if (text === undefined) return;
  let sums: Record<string, unknown>;
  try {
    sums = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new FlowVaeError('ERR_CHECKPOINT', `${file} is corrupt: its metadata "${CHECKSUMS_KEY}" is not valid JSON`);
  }
  for (const t of contents.tensors) {
    if (sums[t.name] === undefined) throw new FlowVaeError('ERR_CHECKPOINT', `${file} is corrupt: tensor "${t.name}" has no checksum`);
    if (tensorChecksum(t.data, t.dtype) !== sums[t.name]) {
      throw new FlowVaeError('ERR_CHECKPOINT', `${file} is corrupt: tensor "${t.name}" does not match its checksum (the file changed after it was written)`);
    }
  }
}

/** A checkpoint's contents with a `fail(what)` that throws ERR_CHECKPOINT naming the file and what it is not. */
export function readCheckpoint(file: string, kind: string, format: string): { contents: SafetensorsContents; fail: (what: string) => never } {
  return checkCheckpoint(loadSafetensors(file), file, kind, format);
}

/** `readCheckpoint` for bytes from `checkpointBytes` (named `name` in messages). */
export function decodeCheckpoint(
  bytes: Uint8Array,
  name: string,
  kind: string,
  format: string,
): { contents: SafetensorsContents; fail: (what: string) => never } {
  if (!(bytes instanceof Uint8Array)) throw typeError(expected('Uint8Array (from toBytes)', 'bytes', bytes));
  return checkCheckpoint(decodeSafetensors(bytes, name), name, kind, format);
}

function checkCheckpoint(
  contents: SafetensorsContents,
  file: string,
  kind: string,
  format: string,
): { contents: SafetensorsContents; fail: (what: string) => never } {
  verifyChecksums(file, contents);
  const fail = (what: string): never => {
    throw new FlowVaeError('ERR_CHECKPOINT', `${file} is not a flowvae ${kind} checkpoint: ${what}`);
  };
  if (contents.metadata.format !== format) fail(`metadata "format" is ${JSON.stringify(contents.metadata.format)}`);
  return { contents, fail };
}

/** Parses a JSON metadata entry, failing with its name when it is missing or malformed. */
export function metadataJson<T>(contents: SafetensorsContents, key: string, fail: (what: string) => never): T {
  const text = contents.metadata[key];
  if (text === undefined) return fail(`metadata "${key}" is missing`);
  try {
    return JSON.parse(text) as T;
  } catch {
    return fail(`metadata "${key}" is not valid JSON`);
  }
}

/**
 * Copies the checkpoint's tensor of each name into `into` (same shape,
 * finite values) and returns the tensors left over, by name. Nothing is
 * written before every tensor has been checked, so a bad file leaves the
 * model as it was.
 */
export function restoreTensors(contents: SafetensorsContents, into: readonly NamedTensor[], fail: (what: string) => never): Map<string, SafetensorsTensor> {
  const byName = new Map(contents.tensors.map((t) => [t.name, t]));
  const pairs = into.map((p) => {
    const t = byName.get(p.name) ?? fail(`tensor "${p.name}" is missing`);
    if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
      fail(`tensor "${p.name}" has shape [${t.shape.join(', ')}] but the model needs [${p.shape.join(', ')}]`);
    }
    const bad = t.data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) fail(`tensor "${p.name}" element ${bad} is ${t.data[bad]}`);
    byName.delete(p.name);
    return [p, t] as const;
  });
  for (const [p, t] of pairs) p.value.set(t.data);
  return byName;
}
