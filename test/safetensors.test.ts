/**
 * safetensors: exact layout, round trips, refusal of truncated and tampered
 * files (ERR_CHECKPOINT), atomic saves under injected write failures, and
 * interoperability with PyTorch through a hand-written Python parser/writer.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { decodeSafetensors, encodeSafetensors, loadSafetensors, saveSafetensors, saveSafetensorsAsync } from '../src';
import type { SafetensorsTensor } from '../src';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'flowvae-st-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());
let tmpCount = 0;
function tmpDir(): string {
  const dir = path.join(tmpRoot, `d${tmpCount++}`);
  fs.mkdirSync(dir);
  return dir;
}

function thrown(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a throw');
}

function expectCheckpointError(fn: () => unknown, message: string | RegExp): void {
  const err = thrown(fn);
  expect(err.name).toBe('FlowVaeError');
  expect(err.code).toBe('ERR_CHECKPOINT');
  if (typeof message === 'string') expect(err.message).toBe(message);
  else expect(err.message).toMatch(message);
}

/** A safetensors file built by hand: 8-byte LE length, header text padded with spaces to 8 bytes, data. */
function craft(header: unknown, data: Uint8Array = new Uint8Array(0), declaredLength?: bigint): Buffer {
  let text = typeof header === 'string' ? header : JSON.stringify(header);
  while (Buffer.byteLength(text) % 8 !== 0) text += ' ';
  const head = Buffer.from(text, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(declaredLength ?? BigInt(head.length));
  return Buffer.concat([len, head, data]);
}

const f32bytes = (values: number[]): Uint8Array => new Uint8Array(Float32Array.from(values).buffer);

const sample: SafetensorsTensor[] = [
  { name: 'encoder.0.weight', dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 0.1, 1e-30, -0]) },
  { name: 'encoder.0.bias', dtype: 'F32', shape: [2], data: Float32Array.from([0.25, -0.75]) },
  { name: 'flow.0.u', dtype: 'F64', shape: [3], data: Float64Array.from([Math.PI, -1e300, 5e-324]) },
  { name: 'scale', dtype: 'F32', shape: [], data: Float32Array.from([7]) },
  { name: 'empty', dtype: 'F64', shape: [0, 4], data: new Float64Array(0) },
];
const sampleMeta = { architecture: '{"type":"vae","latent":2}', format: 'pt', ünïcode: 'välue ✓' };

describe('safetensors layout', () => {
  const bytes = encodeSafetensors(sample, sampleMeta);

  it('has a little-endian length, a space-padded JSON header and contiguous data in sorted order', () => {
    const n = Number(bytes.readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
    const text = bytes.subarray(8, 8 + n).toString('utf8');
    expect(text[0]).toBe('{');
    expect(text).toMatch(/^\{.*\} *$/);
    const header = JSON.parse(text) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    expect(header.__metadata__).toEqual(sampleMeta);
    // As the reference writer: F64 tensors first, then F32, each group by name.
    const names = Object.keys(header).filter((k) => k !== '__metadata__');
    const byOffset = [...names].sort((a, b) => header[a].data_offsets[0] - header[b].data_offsets[0]);
    expect(byOffset).toEqual(['empty', 'flow.0.u', 'encoder.0.bias', 'encoder.0.weight', 'scale']);
    expect(header['flow.0.u']).toEqual({ dtype: 'F64', shape: [3], data_offsets: [0, 24] });
    expect(header.empty).toEqual({ dtype: 'F64', shape: [0, 4], data_offsets: [0, 0] });
    expect(header['encoder.0.bias']).toEqual({ dtype: 'F32', shape: [2], data_offsets: [24, 32] });
    expect(header['encoder.0.weight']).toEqual({ dtype: 'F32', shape: [2, 3], data_offsets: [32, 56] });
    expect(header.scale).toEqual({ dtype: 'F32', shape: [], data_offsets: [56, 60] });
    expect(bytes.length).toBe(8 + n + 60);
    // The data bytes are the little-endian values.
    const data = bytes.subarray(8 + n);
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    expect(dv.getFloat64(0, true)).toBe(Math.PI);
    expect(dv.getFloat64(16, true)).toBe(5e-324);
    expect(dv.getFloat32(24, true)).toBe(0.25);
    expect(dv.getFloat32(36, true)).toBe(-2);
    expect(dv.getFloat32(40, true)).toBe(3.5);
    expect(dv.getFloat32(56, true)).toBe(7);
  });

  it('does not depend on the order tensors are given in', () => {
    expect(Buffer.compare(encodeSafetensors([...sample].reverse(), sampleMeta), bytes)).toBe(0);
  });

  it('round-trips values, shapes, dtypes and metadata exactly', () => {
    const back = decodeSafetensors(bytes);
    expect(back.metadata).toEqual(sampleMeta);
    for (const t of sample) {
      const got = back.tensors.find((b) => b.name === t.name)!;
      expect(got.dtype).toBe(t.dtype);
      expect(got.shape).toEqual(t.shape);
      expect(got.data).toBeInstanceOf(t.dtype === 'F32' ? Float32Array : Float64Array);
      expect(Array.from(got.data)).toEqual(Array.from(t.data));
    }
    expect(back.tensors.map((t) => t.name)).toEqual(['empty', 'flow.0.u', 'encoder.0.bias', 'encoder.0.weight', 'scale']);
    // Negative zero survives.
    expect(Object.is(back.tensors[3].data[5], -0)).toBe(true);
  });

  it('rounds Float64Array data saved as F32, and writes an empty file validly', () => {
    const back = decodeSafetensors(encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [2], data: Float64Array.from([0.1, 1 / 3]) }]));
    expect(Array.from(back.tensors[0].data)).toEqual([Math.fround(0.1), Math.fround(1 / 3)]);
    const empty = encodeSafetensors([]);
    expect(empty.subarray(8).toString()).toBe('{}      ');
    expect(decodeSafetensors(empty)).toEqual({ tensors: [], metadata: {} });
  });

  it('accepts files whose JSON lists tensors out of offset order, as the reference reader does', () => {
    const file = craft({ b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] }, a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32bytes([1, 2]));
    const back = decodeSafetensors(file);
    expect(back.tensors.map((t) => [t.name, t.data[0]])).toEqual([
      ['a', 1],
      ['b', 2],
    ]);
  });

  it('refuses bad arguments when encoding', () => {
    const w = (over: Partial<SafetensorsTensor>): SafetensorsTensor[] => [{ name: 'w', dtype: 'F32', shape: [2], data: new Float32Array(2), ...over }];
    expect(() => encodeSafetensors([...w({}), ...w({})])).toThrow('Expected unique tensor names but "w" appears twice');
    expect(() => encodeSafetensors(w({ dtype: 'F16' as never }))).toThrow('Expected one of "F32", "F64" for "tensors[0].dtype" but received "F16" (string)');
    expect(() => encodeSafetensors(w({ shape: [3] }))).toThrow('Expected array of length 3 (shape [3]) for "tensors[0].data" but received Float32Array(2)');
    expect(() => encodeSafetensors(w({ shape: [-2] }))).toThrow(TypeError);
    expect(() => encodeSafetensors(w({ name: '__metadata__' }))).toThrow(RangeError);
    expect(() => encodeSafetensors(w({ data: [1, 2] as never }))).toThrow('Expected Float32Array or Float64Array for "tensors[0].data" but received Array(2)');
    expect(() => encodeSafetensors(w({}), { epoch: 3 as never })).toThrow('Expected string for "metadata["epoch"]" but received 3 (number)');
  });
});

describe('safetensors: truncated and tampered files', () => {
  const bytes = encodeSafetensors(sample, sampleMeta);
  const headerLength = Number(bytes.readBigUInt64LE(0));

  it('refuses every truncation', () => {
    for (let len = 0; len < bytes.length; len++) {
      const err = thrown(() => decodeSafetensors(bytes.subarray(0, len), 'm.safetensors'));
      expect(err.code).toBe('ERR_CHECKPOINT');
      expect(err.message.startsWith('m.safetensors: ')).toBe(true);
    }
    expectCheckpointError(() => decodeSafetensors(bytes.subarray(0, 5), 'm'), 'm: truncated: 5 bytes, shorter than the 8-byte header length');
    expectCheckpointError(
      () => decodeSafetensors(bytes.subarray(0, 100), 'm'),
      `m: truncated: the header length is ${headerLength} bytes but only 92 follow it`,
    );
    expectCheckpointError(
      () => decodeSafetensors(bytes.subarray(0, bytes.length - 1), 'm'),
      'm: tensor "scale" has data_offsets [56, 60] beyond the 59-byte data section (truncated file?)',
    );
  });

  it('refuses or safely reads every single-bit flip in the header', () => {
    // A flip either makes the file invalid (ERR_CHECKPOINT) or leaves a valid file (e.g. a renamed
    // tensor, a changed metadata string); then the data section must still be read exactly.
    const original = decodeSafetensors(bytes);
    const concat = (c: ReturnType<typeof decodeSafetensors>): number[] => c.tensors.flatMap((t) => Array.from(t.data));
    let refused = 0;
    for (let i = 0; i < 8 + headerLength; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const copy = Buffer.from(bytes);
        copy[i] ^= 1 << bit;
        try {
          const c = decodeSafetensors(copy);
          expect(concat(c)).toEqual(concat(original));
        } catch (err) {
          expect((err as { code?: string }).code).toBe('ERR_CHECKPOINT');
          refused++;
        }
      }
    }
    expect(refused).toBeGreaterThan(8 * headerLength * 0.5);
  });

  it('refuses huge or impossible header lengths', () => {
    const small = craft({});
    expectCheckpointError(
      () => decodeSafetensors(craft({}, new Uint8Array(0), 2n ** 63n), 'm'),
      'm: header length 9223372036854775808 is above the limit of 100000000 bytes (corrupt or not a safetensors file)',
    );
    expectCheckpointError(() => decodeSafetensors(craft({}, new Uint8Array(0), 100_000_001n), 'm'), /above the limit/);
    expectCheckpointError(() => decodeSafetensors(craft({}, new Uint8Array(0), 9n), 'm'), 'm: truncated: the header length is 9 bytes but only 8 follow it');
    expect(small.length).toBe(16);
    expectCheckpointError(() => decodeSafetensors(craft({}, new Uint8Array(0), 0n), 'm'), 'm: the header does not start with "{" (not a safetensors file?)');
  });

  it('refuses headers that are not JSON objects', () => {
    expectCheckpointError(() => decodeSafetensors(craft('{"a": '), 'm'), /^m: the header is not valid UTF-8 JSON \(/);
    expectCheckpointError(() => decodeSafetensors(craft(' {}'), 'm'), 'm: the header does not start with "{" (not a safetensors file?)');
    expectCheckpointError(() => decodeSafetensors(craft('[1, 2]'), 'm'), 'm: the header does not start with "{" (not a safetensors file?)');
    const badUtf8 = craft('{"\u00e9": 1}');
    badUtf8[10] = 0xff; // breaks the two-byte sequence of é
    expectCheckpointError(() => decodeSafetensors(badUtf8, 'm'), /^m: the header is not valid UTF-8 JSON/);
  });

  it('refuses unknown and unsupported dtypes, bad shapes and size mismatches', () => {
    const one = (info: unknown, data = f32bytes([1])): Buffer => craft({ w: info }, data);
    expectCheckpointError(() => decodeSafetensors(one({ dtype: 'F31', shape: [1], data_offsets: [0, 4] }), 'm'), 'm: tensor "w" has unknown dtype "F31"');
    expectCheckpointError(
      () => decodeSafetensors(one({ dtype: 'F16', shape: [2], data_offsets: [0, 4] }), 'm'),
      'm: tensor "w" has dtype F16; flowvae reads F32 and F64 tensors only',
    );
    expectCheckpointError(
      () => decodeSafetensors(one({ dtype: 'F32', shape: [2], data_offsets: [0, 4] }), 'm'),
      'm: tensor "w" of shape [2] and dtype F32 needs 8 bytes but its data_offsets [0, 4] span 4',
    );
    expectCheckpointError(
      () => decodeSafetensors(one({ dtype: 'F64', shape: [1], data_offsets: [0, 4] }), 'm'),
      'm: tensor "w" of shape [1] and dtype F64 needs 8 bytes but its data_offsets [0, 4] span 4',
    );
    expectCheckpointError(
      () => decodeSafetensors(one({ dtype: 'F32', shape: [-1], data_offsets: [0, 4] }), 'm'),
      'm: tensor "w" has an invalid "shape" (expected an array of non-negative integers)',
    );
    expectCheckpointError(() => decodeSafetensors(one({ dtype: 'F32', shape: '1', data_offsets: [0, 4] }), 'm'), /invalid "shape"/);
    expectCheckpointError(() => decodeSafetensors(one({ dtype: 'F32', shape: [1.5], data_offsets: [0, 4] }), 'm'), /invalid "shape"/);
    // A shape whose product overflows cannot match any span.
    expectCheckpointError(
      () => decodeSafetensors(one({ dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 4] }), 'm'),
      /needs .* bytes but its data_offsets \[0, 4\] span 4$/,
    );
    expectCheckpointError(() => decodeSafetensors(one({ shape: [1], data_offsets: [0, 4] }), 'm'), 'm: tensor "w" has no string "dtype"');
    expectCheckpointError(
      () => decodeSafetensors(one({ dtype: 'F32', shape: [1], data_offsets: [0, 4], extra: 1 }), 'm'),
      'm: tensor "w" has an unknown field "extra"',
    );
    expectCheckpointError(() => decodeSafetensors(one([1, 2]), 'm'), 'm: tensor "w" is an array, not an object');
  });

  it('refuses negative, reversed, overlapping, out-of-bounds and non-covering offsets', () => {
    const two = (a: unknown, b: unknown, data = f32bytes([1, 2])): Buffer =>
      craft({ a: { dtype: 'F32', shape: [1], data_offsets: a }, b: { dtype: 'F32', shape: [1], data_offsets: b } }, data);
    const invalid = 'm: tensor "a" has invalid "data_offsets" (expected [begin, end] with non-negative integers)';
    expectCheckpointError(() => decodeSafetensors(two([-4, 0], [4, 8]), 'm'), invalid);
    expectCheckpointError(() => decodeSafetensors(two([0.5, 4.5], [4, 8]), 'm'), invalid);
    expectCheckpointError(() => decodeSafetensors(two([0, 4, 8], [4, 8]), 'm'), invalid);
    expectCheckpointError(() => decodeSafetensors(two('0,4', [4, 8]), 'm'), invalid);
    expectCheckpointError(() => decodeSafetensors(two([2 ** 60, 2 ** 60 + 4], [4, 8]), 'm'), invalid);
    expectCheckpointError(() => decodeSafetensors(two([4, 0], [4, 8]), 'm'), 'm: tensor "a" has data_offsets [4, 0] with end before begin');
    expectCheckpointError(() => decodeSafetensors(two([0, 4], [2, 6]), 'm'), 'm: tensors "a" [0, 4] and "b" [2, 6] overlap');
    expectCheckpointError(() => decodeSafetensors(two([0, 4], [0, 4]), 'm'), 'm: tensors "a" [0, 4] and "b" [0, 4] overlap');
    expectCheckpointError(
      () => decodeSafetensors(two([0, 4], [8, 12], f32bytes([1, 2, 3])), 'm'),
      'm: bytes 4 to 8 of the data section belong to no tensor (holes are not allowed)',
    );
    expectCheckpointError(
      () => decodeSafetensors(two([4, 8], [8, 12], f32bytes([1, 2, 3])), 'm'),
      'm: bytes 0 to 4 of the data section belong to no tensor (holes are not allowed)',
    );
    expectCheckpointError(
      () => decodeSafetensors(two([0, 4], [4, 8], f32bytes([1, 2, 3])), 'm'),
      'm: the data section has 12 bytes but the tensors cover 8 (trailing bytes are not allowed)',
    );
    expectCheckpointError(
      () => decodeSafetensors(two([0, 4], [4, 8], f32bytes([1])), 'm'),
      'm: tensor "b" has data_offsets [4, 8] beyond the 4-byte data section (truncated file?)',
    );
    expectCheckpointError(
      () => decodeSafetensors(craft({}, f32bytes([1])), 'm'),
      'm: the data section has 4 bytes but the tensors cover 0 (trailing bytes are not allowed)',
    );
  });

  it('refuses non-string metadata', () => {
    expectCheckpointError(() => decodeSafetensors(craft({ __metadata__: { epoch: 3 } }), 'm'), 'm: metadata "epoch" is a number, not a string');
    expectCheckpointError(() => decodeSafetensors(craft({ __metadata__: { a: null } }), 'm'), 'm: metadata "a" is null, not a string');
    expectCheckpointError(() => decodeSafetensors(craft({ __metadata__: { a: { b: 'c' } } }), 'm'), 'm: metadata "a" is a object, not a string');
    expectCheckpointError(() => decodeSafetensors(craft({ __metadata__: ['a'] }), 'm'), 'm: "__metadata__" is an array, not an object of strings');
    // A "__proto__" key is plain data, not a prototype change.
    const meta = decodeSafetensors(craft('{"__metadata__": {"__proto__": "x"}}')).metadata;
    expect(Object.getPrototypeOf(meta)).toBe(Object.prototype);
    expect(Object.keys(meta)).toEqual(['__proto__']);
  });
});

describe('safetensors files: atomic saves', () => {
  const v1: SafetensorsTensor[] = [{ name: 'w', dtype: 'F32', shape: [3], data: Float32Array.from([1, 2, 3]) }];
  const v2: SafetensorsTensor[] = [{ name: 'w', dtype: 'F32', shape: [3], data: Float32Array.from([4, 5, 6]) }];
  const values = (file: string): number[] => Array.from(loadSafetensors(file).tensors[0].data);

  it('saves, loads and replaces a file, leaving no temporary files', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'model.safetensors');
    saveSafetensors(file, v1, { step: '1' });
    expect(values(file)).toEqual([1, 2, 3]);
    expect(loadSafetensors(file).metadata).toEqual({ step: '1' });
    saveSafetensors(file, v2);
    expect(values(file)).toEqual([4, 5, 6]);
    await saveSafetensorsAsync(file, v1, { step: '3' });
    expect(values(file)).toEqual([1, 2, 3]);
    expect(fs.readdirSync(dir)).toEqual(['model.safetensors']);
  });

  it('keeps the previous file when writing, fsync or rename fails', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'model.safetensors');
    saveSafetensors(file, v1);
    const eio = (): never => {
      throw Object.assign(new Error('EIO: i/o error, injected'), { code: 'EIO' });
    };
    // A write that stops half way (as a full disk would).
    const realWrite = fs.writeSync;
    vi.spyOn(fs, 'writeSync').mockImplementationOnce(((fd: number, data: Uint8Array, offset: number) => {
      realWrite(fd, data, offset, 10);
      return eio();
    }) as unknown as typeof fs.writeSync);
    expectCheckpointError(() => saveSafetensors(file, v2), `${file}: cannot be written (EIO: i/o error, injected); any previous file is unchanged`);
    vi.spyOn(fs, 'fsyncSync').mockImplementationOnce(eio);
    expectCheckpointError(() => saveSafetensors(file, v2), /cannot be written \(EIO/);
    vi.spyOn(fs, 'renameSync').mockImplementationOnce(eio);
    expectCheckpointError(() => saveSafetensors(file, v2), /cannot be written \(EIO/);
    vi.spyOn(fs.promises, 'rename').mockImplementationOnce(async () => eio());
    await expect(saveSafetensorsAsync(file, v2)).rejects.toMatchObject({ code: 'ERR_CHECKPOINT' });
    vi.restoreAllMocks();
    expect(values(file)).toEqual([1, 2, 3]);
    expect(fs.readdirSync(dir)).toEqual(['model.safetensors']);
  });

  it('writes the temporary file in the target directory, fsyncs it, then renames it', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'm.safetensors');
    const calls: string[] = [];
    const realOpen = fs.openSync;
    vi.spyOn(fs, 'openSync').mockImplementation(((p: fs.PathLike, flags?: fs.OpenMode, mode?: fs.Mode) => {
      const where = String(p) === dir ? 'the directory' : path.dirname(String(p)) === dir ? 'a file in the directory' : String(p);
      calls.push(`open ${where} ${String(flags)}`);
      return realOpen(p, flags as fs.OpenMode, mode);
    }) as typeof fs.openSync);
    const realFsync = fs.fsyncSync;
    vi.spyOn(fs, 'fsyncSync').mockImplementation((fd: number) => {
      calls.push('fsync');
      realFsync(fd);
    });
    const realRename = fs.renameSync;
    vi.spyOn(fs, 'renameSync').mockImplementation((from: fs.PathLike, to: fs.PathLike) => {
      expect(fs.existsSync(String(to))).toBe(false);
      calls.push(`rename ${path.dirname(String(from)) === dir} -> ${String(to) === file}`);
      realRename(from, to);
    });
    saveSafetensors(file, v1);
    // open tmp (exclusive), fsync it, rename over the target, then fsync the directory.
    expect(calls).toEqual(['open a file in the directory wx', 'fsync', 'rename true -> true', 'open the directory r', 'fsync']);
  });

  it('leaves the previous file loadable when the process is killed mid-save', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'model.safetensors');
    saveSafetensors(file, v1);
    const signal = path.join(dir, 'writing');
    const child = path.join(dir, 'child.ts');
    // The child writes the first 1000 bytes of a 4 MB checkpoint, says so, and blocks until killed.
    fs.writeFileSync(
      child,
      `const fs = require('node:fs');
const { saveSafetensors } = require(${JSON.stringify(path.join(__dirname, '..', 'src', 'io', 'safetensors.ts'))});
const realWrite = fs.writeSync;
fs.writeSync = (fd, data, offset, length) => {
  realWrite(fd, data, offset, Math.min(length, 1000));
  fs.writeFileSync(${JSON.stringify(signal)}, '');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
};
saveSafetensors(${JSON.stringify(file)}, [{ name: 'w', dtype: 'F32', shape: [1 << 20], data: new Float32Array(1 << 20).fill(9) }]);
`,
    );
    const proc = spawn(process.execPath, ['--require', 'tsx/cjs', child], { cwd: path.join(__dirname, '..'), stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => proc.on('exit', (_code, sig) => resolve(sig)));
    const deadline = Date.now() + 60_000;
    while (!fs.existsSync(signal) && Date.now() < deadline && proc.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    expect(fs.existsSync(signal)).toBe(true);
    proc.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    // The partial temporary file is left behind; the target still holds the previous checkpoint.
    const leftovers = fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'));
    expect(leftovers).toHaveLength(1);
    expect(fs.statSync(path.join(dir, leftovers[0])).size).toBe(1000);
    expect(values(file)).toEqual([1, 2, 3]);
  });

  it('reports unreadable and missing files', () => {
    expectCheckpointError(() => loadSafetensors(path.join(tmpRoot, 'nope.safetensors')), `${path.join(tmpRoot, 'nope.safetensors')}: no such file`);
    expectCheckpointError(() => saveSafetensors(path.join(tmpRoot, 'no', 'dir', 'm.safetensors'), v1), /cannot be written \(ENOENT/);
  });
});

// ---- PyTorch interoperability ----

const PYTHON = '/usr/bin/python3';
function pythonHasTorch(): boolean {
  if (!fs.existsSync(PYTHON)) return false;
  const r = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8', timeout: 60_000 });
  return r.status === 0;
}
const hasTorch = pythonHasTorch();

function runPython(code: string, args: string[]): string {
  const r = spawnSync(PYTHON, ['-c', code, ...args], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
  return r.stdout;
}

// A minimal reader written from the format description (the `safetensors` package is not installed here).
const PY_READ = String.raw`
import json, struct, sys, torch
path = sys.argv[1]
with open(path, 'rb') as f:
    raw = f.read()
(n,) = struct.unpack('<Q', raw[:8])
assert (8 + n) % 8 == 0, 'header not padded to 8 bytes'
text = raw[8:8 + n].decode('utf-8')
assert text[0] == '{' and text == text.rstrip(' ') + ' ' * (len(text) - len(text.rstrip(' ')))
header = json.loads(text)
data = raw[8 + n:]
dtypes = {'F32': torch.float32, 'F64': torch.float64}
out = {'__metadata__': header.pop('__metadata__', {})}
end = 0
for name, info in sorted(header.items(), key=lambda kv: kv[1]['data_offsets']):
    b, e = info['data_offsets']
    assert b == end, 'offsets not contiguous'
    end = e
    t = torch.frombuffer(bytearray(data[b:e]), dtype=dtypes[info['dtype']]) if e > b else torch.zeros(0, dtype=dtypes[info['dtype']])
    t = t.reshape(info['shape'])
    out[name] = {'dtype': info['dtype'], 'shape': list(t.shape), 'values': [float(v) for v in t.flatten().tolist()]}
assert end == len(data), 'data not covered'
print(json.dumps(out))
`;

// A minimal writer for a torch module's state dict, laid out as the reference writer does.
const PY_WRITE = String.raw`
import json, struct, sys, torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh(), torch.nn.Linear(2, 1))
tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
tensors['extra.f64'] = torch.tensor([[1.0 / 3.0, -2.5]], dtype=torch.float64)
names = {torch.float32: 'F32', torch.float64: 'F64'}
order = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
header, blobs, off = {'__metadata__': {'source': 'torch ' + torch.__version__}}, [], 0
for k in order:
    b = tensors[k].numpy().astype(tensors[k].numpy().dtype.newbyteorder('<')).tobytes()
    header[k] = {'dtype': names[tensors[k].dtype], 'shape': list(tensors[k].shape), 'data_offsets': [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
h = json.dumps(header).encode('utf-8')
h += b' ' * ((8 - len(h) % 8) % 8)
with open(sys.argv[1], 'wb') as f:
    f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))
print(json.dumps({k: {'shape': list(v.shape), 'values': [float(x) for x in v.flatten().tolist()]} for k, v in tensors.items()}))
`;

describe.skipIf(!hasTorch)(`safetensors interop with PyTorch${hasTorch ? '' : ' (skipped: /usr/bin/python3 without torch)'}`, () => {
  it('a file written here loads in Python into the same tensors', () => {
    const file = path.join(tmpDir(), 'ours.safetensors');
    saveSafetensors(file, sample, sampleMeta);
    const py = JSON.parse(runPython(PY_READ, [file])) as Record<string, { dtype: string; shape: number[]; values: number[] }> & {
      __metadata__: Record<string, string>;
    };
    expect(py.__metadata__).toEqual(sampleMeta);
    for (const t of sample) {
      expect(py[t.name].dtype).toBe(t.dtype);
      expect(py[t.name].shape).toEqual(t.shape);
      // Python floats printed by json are exact doubles; float32 values widen exactly.
      expect(py[t.name].values.map((v) => (Object.is(v, -0) ? 0 : v))).toEqual(Array.from(t.data, (v) => (Object.is(v, -0) ? 0 : v)));
    }
  });

  it('a torch state dict written in Python loads here by name', () => {
    const file = path.join(tmpDir(), 'torch.safetensors');
    const expected = JSON.parse(runPython(PY_WRITE, [file])) as Record<string, { shape: number[]; values: number[] }>;
    const loaded = loadSafetensors(file);
    expect(loaded.metadata.source).toMatch(/^torch /);
    expect(loaded.tensors.map((t) => t.name).sort()).toEqual(['0.bias', '0.weight', '2.bias', '2.weight', 'extra.f64']);
    for (const t of loaded.tensors) {
      expect(t.shape).toEqual(expected[t.name].shape);
      expect(Array.from(t.data)).toEqual(expected[t.name].values);
    }
    expect(loaded.tensors.find((t) => t.name === '0.weight')!.shape).toEqual([2, 3]); // nn.Linear weight is [out, in]
    expect(loaded.tensors.find((t) => t.name === 'extra.f64')!.data).toBeInstanceOf(Float64Array);
  });
});
