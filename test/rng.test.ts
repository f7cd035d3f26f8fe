import { describe, expect, it } from 'vitest';
import { backendByName, setNumThreads, getNumThreads } from '../src/backend';
import { philox4x32, referenceRng } from '../src/backend/reference/rng';
import { hasCpu } from './helpers';
import type { Backend } from '../src/backend/backend';
import { describeBackends, expectSameBits } from './helpers';

describe('rng: Philox4x32-10 known-answer vectors (Random123 kat_vectors)', () => {
  const cases: [number[], number[], number[]][] = [
    [
      [0, 0, 0, 0],
      [0, 0],
      [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
    ],
    [
      [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
      [0xffffffff, 0xffffffff],
      [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
    ],
    [
      [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
      [0xa4093822, 0x299f31d0],
      [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
    ],
  ];
  it.each(cases)('counter %j key %j', (c, k, want) => {
    const out = new Uint32Array(4);
    philox4x32(c[0], c[1], c[2], c[3], k[0], k[1], out);
    expect(Array.from(out)).toEqual(want);
  });
});

describe('rng: reference stream properties', () => {
  it('normals have mean 0, variance 1, and normal tails (n = 200k)', () => {
    const n = 200_000;
    const z = new Float64Array(n);
    referenceRng.normal(7, 0, z);
    let m = 0;
    for (const v of z) m += v;
    m /= n;
    let v2 = 0;
    let v4 = 0;
    let beyond2 = 0;
    for (const v of z) {
      v2 += (v - m) ** 2;
      v4 += (v - m) ** 4;
      if (Math.abs(v) > 2) beyond2++;
    }
    v2 /= n;
    v4 /= n;
    // Standard errors at n = 200k: mean 0.0022, variance 0.0032, kurtosis ~0.011,
    // P(|z|>2) = 0.0455 with s.e. 0.00047. Bounds are about 5 standard errors.
    expect(Math.abs(m)).toBeLessThan(0.011);
    expect(Math.abs(v2 - 1)).toBeLessThan(0.016);
    expect(Math.abs(v4 / (v2 * v2) - 3)).toBeLessThan(0.06);
    expect(Math.abs(beyond2 / n - 0.0455)).toBeLessThan(0.0025);
  });

  it('normals pass a Kolmogorov–Smirnov test against the standard normal CDF', () => {
    const n = 20_000;
    const z = new Float64Array(n);
    referenceRng.normal(12345, 99, z);
    const sorted = Array.from(z).sort((a, b) => a - b);
    // Φ via erf (Abramowitz–Stegun 7.1.26 has error 1.5e-7, far below the KS bound).
    const erf = (x: number) => {
      const t = 1 / (1 + 0.3275911 * Math.abs(x));
      const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
      return x >= 0 ? y : -y;
    };
    let d = 0;
    sorted.forEach((x, i) => {
      const cdf = 0.5 * (1 + erf(x / Math.SQRT2));
      d = Math.max(d, Math.abs(cdf - i / n), Math.abs(cdf - (i + 1) / n));
    });
    // KS critical value at alpha = 0.001: 1.95 / sqrt(n).
    expect(d).toBeLessThan(1.95 / Math.sqrt(n));
  });

  it('uniforms lie strictly inside (0, 1) with mean 1/2 and are float32-exact', () => {
    const n = 100_000;
    const u = new Float64Array(n);
    referenceRng.uniform(3, 5, u);
    let m = 0;
    let outside = 0;
    for (const v of u) {
      if (!(v > 0 && v < 1)) outside++;
      m += v;
    }
    expect(outside).toBe(0);
    // s.e. of the mean: sqrt(1/12/n) = 0.0009; bound ~5 s.e.
    expect(Math.abs(m / n - 0.5)).toBeLessThan(0.0046);
    const f32 = Float32Array.from(u);
    let inexact = 0;
    for (let i = 0; i < n; i++) if (f32[i] !== u[i]) inexact++;
    expect(inexact).toBe(0);
  });

  it('an element depends only on (seed, index): any offset reads the same stream', () => {
    const whole = new Float64Array(103);
    referenceRng.normal(42, 0, whole);
    for (const offset of [1, 2, 3, 5, 50]) {
      const part = new Float64Array(103 - offset);
      referenceRng.normal(42, offset, part);
      expect(Array.from(part)).toEqual(Array.from(whole.subarray(offset)));
    }
    const other = new Float64Array(103);
    referenceRng.normal(43, 0, other);
    expect(Array.from(other)).not.toEqual(Array.from(whole));
  });

  it('portable log/sin/cos agree with Math to 2e-15 (relative) on the values the stream uses', () => {
    const n = 20_000;
    const z = new Float64Array(n);
    referenceRng.normal(2024, 0, z);
    // Recompute each pair with the platform's libm from the same Philox words.
    const words = new Uint32Array(4);
    let worst = 0;
    for (let b = 0; b < n / 4; b++) {
      philox4x32(b, 0, 0, 0, 2024, 0, words);
      for (const pair of [0, 2]) {
        const radius = Math.sqrt(-2 * Math.log((words[pair] + 0.5) / 4294967296));
        const theta = (2 * Math.PI * (words[pair + 1] + 0.5)) / 4294967296;
        const want = [radius * Math.cos(theta), radius * Math.sin(theta)];
        for (const k of [0, 1]) {
          const got = z[4 * b + pair + k];
          worst = Math.max(worst, Math.abs(got - want[k]) / Math.max(1e-3, radius));
        }
      }
    }
    expect(worst).toBeLessThan(2e-15);
  });
});

describe.skipIf(!hasCpu())('rng: cpu streams equal the reference bit for bit', () => {
  const cpu = hasCpu() ? backendByName('cpu') : undefined;
  it.each([
    [0, 0, 1],
    [1, 3, 7],
    [17, 2, 33],
    [2 ** 40 + 5, 2 ** 33 + 1, 257],
    [9007199254740991, 123, 1000],
    [5, 0, 300_001],
  ])('seed %d offset %d n %d', (seed, offset, n) => {
    for (const kind of ['normal', 'uniform'] as const) {
      const ref = new Float64Array(n);
      referenceRng[kind](seed, offset, ref);
      const want = Float32Array.from(ref);
      const got = new Float32Array(n);
      cpu!.rng[kind](seed, offset, got);
      let mismatches = 0;
      for (let i = 0; i < n; i++) if (!Object.is(got[i], want[i])) mismatches++;
      expect(mismatches, `${kind} mismatches`).toBe(0);
    }
  });

  it('does not depend on the thread count', () => {
    const before = getNumThreads();
    const a = new Float32Array(500_000);
    const b = new Float32Array(500_000);
    try {
      setNumThreads(1);
      cpu!.rng.normal(9, 11, a);
      setNumThreads(2);
      cpu!.rng.normal(9, 11, b);
    } finally {
      setNumThreads(before);
    }
    expect(Buffer.compare(Buffer.from(a.buffer), Buffer.from(b.buffer))).toBe(0);
  });
});

describe('rng: bad arguments', () => {
  const targets = hasCpu() ? (['reference', 'cpu'] as const) : (['reference'] as const);
  for (const name of targets) {
    const b = backendByName(name);
    const out = b.alloc(4);
    it(`${name}: rejects bad seeds, offsets and outputs with the argument named`, () => {
      expect(() => b.rng.normal(-1, 0, out)).toThrow(RangeError);
      expect(() => b.rng.normal(-1, 0, out)).toThrow('Expected integer in [0, 2^53) for "seed" but received -1 (number)');
      expect(() => b.rng.normal(0.5, 0, out)).toThrow('for "seed"');
      expect(() => b.rng.normal(NaN, 0, out)).toThrow('Expected integer in [0, 2^53) for "seed" but received NaN (number)');
      expect(() => b.rng.uniform(1, -3, out)).toThrow('for "offset" but received -3 (number)');
      expect(() => b.rng.uniform('1' as unknown as number, 0, out)).toThrow(TypeError);
      expect(() => b.rng.uniform(1, 0, [0, 0] as unknown as Float32Array)).toThrow(TypeError);
      expect(() => b.rng.uniform(1, 0, [0, 0] as unknown as Float32Array)).toThrow('for "out" but received Array(2)');
      try {
        b.rng.normal(-1, 0, out);
      } catch (e) {
        expect((e as { code: string }).code).toBe('ERR_ARG');
      }
    });
  }
});

// Folded from the former test/cuda.test.ts. Skipped, with the reason, where no CUDA device is present.
describeBackends(['cuda'], 'cuda vs reference', (cuda: Backend) => {
  const reference = backendByName('reference');
  // (A skipped suite is still collected, with the reference backend: no cpu needed then.)
  const cpu = cuda.name === 'cuda' ? backendByName('cpu') : reference;
  describe('rng: the cpu and reference streams bit for bit', () => {
    it.each([
      [0, 0, 1],
      [1, 3, 7],
      [17, 2, 33],
      [2 ** 40 + 5, 2 ** 33 + 1, 257],
      [9007199254740991, 123, 1000],
      // Crosses block 2^32 (the counter's high word).
      [77, 4 * 2 ** 32 - 6, 20],
      [5, 0, 300_001],
    ])('seed %d offset %d n %d', (seed, offset, n) => {
      for (const kind of ['normal', 'uniform'] as const) {
        const ref = new Float64Array(n);
        reference.rng[kind](seed, offset, ref);
        const got = new Float32Array(n);
        cuda.rng[kind](seed, offset, got);
        expectSameBits(got, Float32Array.from(ref), `${kind} vs reference`);
        const onCpu = new Float32Array(n);
        cpu.rng[kind](seed, offset, onCpu);
        expectSameBits(got, onCpu, `${kind} vs cpu`);
      }
    });
  });
});
