/**
 * Seeded, counter-based random integers for data handling (shuffling,
 * splits). Word `i` of stream `(seed, stream)` is a pure function of
 * `(seed, stream, i)`, so an epoch's order can be recomputed from its number
 * alone (resuming a run gives the same batches) and no state is shared.
 *
 * The generator is a keyed hash: two rounds of a 32-bit avalanche mixer
 * (Wellons' "lowbias32" constants) over the counter, keyed by a hash of the
 * seed and stream. The key has 32 bits, so two (seed, stream) pairs share a
 * stream with probability 2^-32. It is for shuffling data, not for
 * cryptography, and is independent of the Philox stream the kernels use for
 * sampling.
 */
import { expected, rangeError, typeError } from '../errors';
import { checkSeed } from '../validate';


function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

export { checkSeed } from '../validate';

/** Counter-based generator of 32-bit words for one (seed, stream). */
export class CounterRandom {
  private readonly key: number;
  private counter = 0;

  constructor(seed: number, stream = 0) {
    checkSeed(seed, 'seed');
    checkSeed(stream, 'stream');
    const seedLo = seed >>> 0;
    const seedHi = Math.floor(seed / 2 ** 32) >>> 0;
    const streamLo = stream >>> 0;
    const streamHi = Math.floor(stream / 2 ** 32) >>> 0;
    let k = mix32(seedLo ^ 0x9e3779b9);
    k = mix32(k ^ seedHi ^ 0x85ebca6b);
    k = mix32(k ^ streamLo ^ 0xc2b2ae35);
    k = mix32(k ^ streamHi ^ 0x27d4eb2f);
    this.key = k;
  }

  /** Word `i` of this stream (does not move the position). */
  wordAt(i: number): number {
    // The low and high halves of the counter both enter, so streams longer than 2^32 words do not wrap.
    const lo = i >>> 0;
    const hi = Math.floor(i / 2 ** 32) >>> 0;
    return mix32(mix32((this.key ^ lo) >>> 0) ^ Math.imul(hi + 1, 0x9e3779b9) ^ this.key);
  }

  /** Next 32-bit word. */
  nextUint32(): number {
    return this.wordAt(this.counter++);
  }

  /** Uniform integer in [0, bound) for 1 <= bound <= 2^32, without modulo bias (rejection). */
  nextInt(bound: number): number {
    if (!Number.isInteger(bound) || bound < 1 || bound > 2 ** 32) {
      throw rangeError(expected('integer in [1, 2^32]', 'bound', bound));
    }
    // Accept words below the largest multiple of `bound` that fits in 2^32 (< 1 in 2 rejected).
    const limit = 2 ** 32 - (2 ** 32 % bound);
    for (;;) {
      const r = this.nextUint32();
      if (r < limit) return r % bound;
    }
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }
}

/**
 * Fills `out` with a permutation of 0..out.length-1 determined by
 * (seed, stream): Fisher–Yates driven by CounterRandom. Allocates nothing.
 */
export function permutationInto(out: Uint32Array, seed: number, stream = 0): Uint32Array {
  if (!(out instanceof Uint32Array)) throw typeError(expected('Uint32Array', 'out', out));
  const rng = new CounterRandom(seed, stream);
  const n = out.length;
  for (let i = 0; i < n; i++) out[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.nextInt(i + 1);
    const t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
  return out;
}

/** A permutation of 0..n-1 determined by (seed, stream). */
export function permutation(n: number, seed: number, stream = 0): Uint32Array {
  if (typeof n !== 'number') throw typeError(expected('non-negative integer', 'n', n));
  if (!Number.isInteger(n) || n < 0 || n > 2 ** 32 - 1) throw rangeError(expected('non-negative integer', 'n', n));
  return permutationInto(new Uint32Array(n), seed, stream);
}
