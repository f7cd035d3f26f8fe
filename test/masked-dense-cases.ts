/**
 * Cases of the masked dense layers (MADE) shared by test/autoregressive.test.ts
 * and its capped-SIMD child process (test/masked-dense.simd.ts): cpu against
 * the reference at awkward sizes, every degree order, strict and not, with
 * and without bias, dx overwritten and accumulated. Nothing here imports
 * vitest.
 */
import type { Backend } from '../src/backend/backend';
import { inputDegrees } from '../src/nn/made';
import { seededRandom } from './binding/calls';

/** n float32-representable values in [−1, 1) from a seeded stream. */
function values(n: number, seed: number): Float64Array {
  const next = seededRandom(seed);
  return Float64Array.from({ length: n }, () => Math.fround(2 * next() - 1));
}

export type DegreeKind = 'natural' | 'reversed' | 'random';

/** Sizes [batch, outDim, inDim]: off the 8/16-column pieces and SIMD widths, a MADE's own shapes, one element. */
export const MASKED_SIZES: [number, number, number][] = [
  [1, 1, 1],
  [3, 5, 3],
  [37, 17, 40],
  [5, 80, 33],
  [100, 320, 40],
  [64, 80, 320],
];

/** Degrees of a masked layer: sorted out-degrees 0…inDim (a staircase against natural inputs; 0 keeps nothing under strict). */
export function maskedCaseDegrees(outDim: number, inDim: number, kind: DegreeKind, seed: number): { outDeg: Uint32Array; inDeg: Uint32Array } {
  const natural = Uint32Array.from({ length: inDim }, (_, i) => i + 1);
  const inDeg = kind === 'natural' ? natural : kind === 'reversed' ? natural.slice().reverse() : inputDegrees(inDim, 'random', seed);
  const sorted = Uint32Array.from({ length: outDim }, (_, o) => Math.floor((o * (inDim + 1)) / outDim));
  const outDeg = kind === 'random' ? inputDegrees(outDim, 'random', seed + 1).map((d) => sorted[d - 1]) : sorted;
  return { outDeg, inDeg };
}

function worstRatio(actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number): number {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const ratio = Math.abs(actual[i] - expected[i]) / (atol + rtol * Math.abs(expected[i]));
    worst = Number.isNaN(ratio) ? Infinity : Math.max(worst, ratio);
  }
  return worst;
}

/**
 * Runs every variant of one size on cpu and reference; returns the worst
 * error/tolerance ratio (≤ 1 passes). Tolerances: float32 sums of up to k
 * products of values in [−1, 1], whose rounding grows like √k. Throws when
 * the masked weight is not exact or a cut entry of dWeight is not exactly 0.
 */
export function compareMaskedDense(cpu: Backend, reference: Backend, batch: number, outDim: number, inDim: number): number {
  let worst = 0;
  for (const kind of ['natural', 'reversed', 'random'] as const) {
    for (const strict of [false, true]) {
      const { outDeg, inDeg } = maskedCaseDegrees(outDim, inDim, kind, outDim + inDim);
      const x = values(batch * inDim, 11);
      const weight = values(outDim * inDim, 12);
      const bias = strict ? null : values(outDim, 13);
      const dy = values(batch * outDim, 14);
      const dx0 = values(batch * inDim, 15);
      const dW0 = values(outDim * inDim, 16);
      const run = (b: Backend, accumulateDx: boolean) => {
        const masked = b.alloc(outDim * inDim);
        const y = b.from(new Float64Array(batch * outDim).fill(NaN)); // every element must be written
        b.autoregressive.maskedDenseForward(b.from(x), b.from(weight), bias && b.from(bias), outDeg, inDeg, strict, masked, y, batch, inDim, outDim);
        const dx = b.from(accumulateDx ? dx0 : new Float64Array(batch * inDim).fill(NaN));
        const dW = b.from(dW0);
        const db = b.from(new Float64Array(outDim).fill(0.5));
        b.autoregressive.maskedDenseBackward(b.from(x), masked, b.from(dy), outDeg, inDeg, strict, dx, dW, db, batch, inDim, outDim, accumulateDx);
        return { masked, y, dx, dW, db };
      };
      for (const accumulateDx of [false, true]) {
        const r = run(reference, accumulateDx);
        const c = run(cpu, accumulateDx);
        const label = `batch ${batch}, ${outDim} × ${inDim}, ${kind}, strict ${strict}, accumulate ${accumulateDx}`;
        for (let i = 0; i < r.masked.length; i++) {
          if (c.masked[i] !== r.masked[i]) throw new Error(`${label}: maskedWeight[${i}] = ${c.masked[i]}, expected ${r.masked[i]}`);
        }
        worst = Math.max(
          worst,
          worstRatio(c.y, r.y, 1e-5 * Math.max(1, Math.sqrt(inDim)), 1e-5),
          worstRatio(c.dx, r.dx, 1e-5 * Math.max(1, Math.sqrt(outDim)), 1e-5),
          worstRatio(c.dW, r.dW, 1e-5 * Math.max(1, Math.sqrt(batch)), 1e-5),
          worstRatio(c.db, r.db, 1e-5 * Math.max(1, Math.sqrt(batch)), 1e-5),
        );
        for (let o = 0; o < outDim; o++)
          for (let i = 0; i < inDim; i++) {
            const keep = strict ? outDeg[o] > inDeg[i] : outDeg[o] >= inDeg[i];
            if (!keep && c.dW[o * inDim + i] !== 0) throw new Error(`${label}: dWeight[${o}, ${i}] = ${c.dW[o * inDim + i]} where the mask cuts`);
          }
      }
      // Without the optional outputs nothing is written (and nothing crashes).
      const masked = cpu.alloc(outDim * inDim);
      cpu.autoregressive.maskedDenseForward(
        cpu.from(x),
        cpu.from(weight),
        null,
        outDeg,
        inDeg,
        strict,
        masked,
        cpu.alloc(batch * outDim),
        batch,
        inDim,
        outDim,
      );
      cpu.autoregressive.maskedDenseBackward(cpu.from(x), masked, cpu.from(dy), outDeg, inDeg, strict, null, null, null, batch, inDim, outDim, false);
    }
  }
  return worst;
}
