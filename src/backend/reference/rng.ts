/**
 * Reference Philox4x32-10 with portable log/sin/cos, the definition of the
 * flowvae random streams (see kernels/rng.ts). native/cpu/rng.cc performs the
 * same float64 operations in the same order, so both produce identical bits.
 */
import type { RngKernels } from '../kernels/rng';
import type { FloatArray } from '../types';
import { checkSeed, checkSize } from '../../validate';
import { expected, rangeError, typeError } from '../../errors';

const PHILOX_M0 = 0xd2511f53;
const PHILOX_M1 = 0xcd9e8d57;
const PHILOX_W0 = 0x9e3779b9;
const PHILOX_W1 = 0xbb67ae85;
const TWO32 = 4294967296;

/** High 32 bits of the 64-bit product of two uint32 values (exact, via 16-bit limbs). */
function mulhi32(a: number, b: number): number {
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const ll = al * bl;
  const lh = al * bh;
  const hl = ah * bl;
  const hh = ah * bh;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (hh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) >>> 0;
}

/** Philox4x32-10 of one counter block; writes four uint32 words into `out`. */
export function philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number, out: Uint32Array): void {
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + PHILOX_W0) >>> 0;
      k1 = (k1 + PHILOX_W1) >>> 0;
    }
    const hi0 = mulhi32(PHILOX_M0, c0);
    const lo0 = Math.imul(PHILOX_M0, c0) >>> 0;
    const hi1 = mulhi32(PHILOX_M1, c2);
    const lo1 = Math.imul(PHILOX_M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

// Constants shared with native/cpu/rng.cc; each is produced by the same
// correctly rounded float64 operations on both sides.
const LN2 = 0.6931471805599453;
const SQRT2 = 1.4142135623730951;
const HALF_PI = 1.5707963267948966;
const TWO_POW_M32 = 1 / TWO32;
const TWO_POW_M24 = 1 / 16777216;

/** log(f) for f in [sqrt(1/2), sqrt(2)] as 2·atanh(s), s = (f − 1)/(f + 1), |s| ≤ 0.172; 11 terms reach 1e-18. */
function logReduced(f: number): number {
  const s = (f - 1) / (f + 1);
  const s2 = s * s;
  let p = 2.0 / 21.0;
  p = p * s2 + 2.0 / 19.0;
  p = p * s2 + 2.0 / 17.0;
  p = p * s2 + 2.0 / 15.0;
  p = p * s2 + 2.0 / 13.0;
  p = p * s2 + 2.0 / 11.0;
  p = p * s2 + 2.0 / 9.0;
  p = p * s2 + 2.0 / 7.0;
  p = p * s2 + 2.0 / 5.0;
  p = p * s2 + 2.0 / 3.0;
  p = p * s2 + 2.0;
  return s * p;
}

/** log(v) for v = (r + 0.5)·2^−32, r a uint32, using only exact scaling and the polynomial above. */
function logUnit(r: number): number {
  // v = m · 2^−33 with m = 2r + 1 odd, m < 2^33. Scale m into [1, 2) by a power of two.
  const m = 2 * r + 1;
  let e = r === 0 ? 0 : 32 - Math.clz32(r); // floor(log2(m))
  let f = m / 2 ** e; // exact: division by a power of two
  if (f > SQRT2) {
    f = f / 2;
    e = e + 1;
  }
  return (e - 33) * LN2 + logReduced(f);
}

// Taylor coefficients 1/n! for n = 0..18, built by repeated division (identical on both sides).
const INV_FACTORIAL: number[] = (() => {
  const c = [1];
  for (let n = 1; n <= 18; n++) c.push(c[n - 1] / n);
  return c;
})();

/** sin(a) and cos(a) for |a| ≤ π/4 by Taylor series to a^17 / a^18 (error < 1e-17). */
function sinCosReduced(a: number, out: Float64Array): void {
  const a2 = a * a;
  let s = INV_FACTORIAL[17];
  s = s * -a2 + INV_FACTORIAL[15];
  s = s * -a2 + INV_FACTORIAL[13];
  s = s * -a2 + INV_FACTORIAL[11];
  s = s * -a2 + INV_FACTORIAL[9];
  s = s * -a2 + INV_FACTORIAL[7];
  s = s * -a2 + INV_FACTORIAL[5];
  s = s * -a2 + INV_FACTORIAL[3];
  s = s * -a2 + INV_FACTORIAL[1];
  let c = INV_FACTORIAL[18];
  c = c * -a2 + INV_FACTORIAL[16];
  c = c * -a2 + INV_FACTORIAL[14];
  c = c * -a2 + INV_FACTORIAL[12];
  c = c * -a2 + INV_FACTORIAL[10];
  c = c * -a2 + INV_FACTORIAL[8];
  c = c * -a2 + INV_FACTORIAL[6];
  c = c * -a2 + INV_FACTORIAL[4];
  c = c * -a2 + INV_FACTORIAL[2];
  c = c * -a2 + INV_FACTORIAL[0];
  out[0] = s * a;
  out[1] = c;
}

/** sin(2πv) and cos(2πv) for v = (r + 0.5)·2^−32: exact quadrant reduction, then the series. */
function sinCosTurn(r: number, out: Float64Array): void {
  const x = (r + 0.5) * (4 * TWO_POW_M32); // 4v, exact
  const quadrant = Math.floor(x + 0.5);
  const a = (x - quadrant) * HALF_PI; // |a| ≤ π/4
  sinCosReduced(a, out);
  const s = out[0];
  const c = out[1];
  switch (quadrant & 3) {
    case 0:
      break;
    case 1:
      out[0] = c;
      out[1] = -s;
      break;
    case 2:
      out[0] = -s;
      out[1] = -c;
      break;
    default:
      out[0] = -c;
      out[1] = s;
      break;
  }
}

/** Splits an integer in [0, 2^53) into [low, high] uint32 words. */
function split64(value: number): [number, number] {
  const hi = Math.floor(value / TWO32);
  return [value - hi * TWO32, hi];
}

function checkOut(value: unknown): FloatArray {
  if (!(value instanceof Float64Array) && !(value instanceof Float32Array)) {
    throw typeError(expected('Float32Array or Float64Array', 'out', value));
  }
  return value;
}

type LaneFn = (words: Uint32Array, lane: number, scratch: Float64Array) => number;

function uniformLane(words: Uint32Array, lane: number): number {
  return (2 * (words[lane] >>> 9) + 1) * TWO_POW_M24;
}

function normalLane(words: Uint32Array, lane: number, scratch: Float64Array): number {
  const pair = lane & 2; // lanes (0,1) and (2,3) share a Box–Muller pair
  const radius = Math.sqrt(-2 * logUnit(words[pair]));
  sinCosTurn(words[pair + 1], scratch);
  return (lane & 1) === 0 ? radius * scratch[1] : radius * scratch[0];
}

/** Fills out[i] with element offset + i of the stream, lane by lane. */
function fill(seed: number, offset: number, out: FloatArray, lane: LaneFn): void {
  const [k0, k1] = split64(seed);
  const words = new Uint32Array(4);
  const scratch = new Float64Array(2);
  let block = -1;
  for (let i = 0; i < out.length; i++) {
    const j = offset + i;
    const n = Math.floor(j / 4);
    if (n !== block) {
      block = n;
      const [c0, c1] = split64(n);
      philox4x32(c0, c1, 0, 0, k0, k1, words);
    }
    out[i] = lane(words, j - 4 * n, scratch);
  }
}

function checkCall(seed: number, offset: number, out: FloatArray): void {
  checkSeed(seed, 'seed');
  checkSeed(offset, 'offset');
  checkOut(out);
  checkSize(out.length, 'out.length');
  if (offset + out.length > Number.MAX_SAFE_INTEGER) throw rangeError(expected('offset + out.length below 2^53', 'offset', offset));
}

export const referenceRng: RngKernels = {
  normal(seed, offset, out) {
    checkCall(seed, offset, out);
    fill(seed, offset, out, normalLane);
  },
  uniform(seed, offset, out) {
    checkCall(seed, offset, out);
    fill(seed, offset, out, uniformLane);
  },
};
