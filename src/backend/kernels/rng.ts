import type { FloatArray } from '../types';

/**
 * Counter-based random numbers (Philox4x32-10), identical on every backend:
 * element `j` of the stream for `seed` is a pure function of (seed, j), so the
 * same seed and offset give the same values whatever the backend or thread
 * count. The float32 backends return exactly `Math.fround` of the float64
 * reference values.
 *
 * Stream definition. `seed` is an integer in [0, 2^53) split into the Philox
 * key (lo, hi 32 bits). Element j uses block n = floor(j / 4), lane j mod 4:
 * Philox4x32-10(counter = (n mod 2^32, floor(n / 2^32), 0, 0), key) gives four
 * 32-bit words r0..r3, and u_l = (r_l >>> 8) · 2^−24 + 2^−25 ∈ (0, 1).
 * Uniforms are u_lane. Normals pair lanes by Box–Muller:
 * lane 0 = R(u0) cos 2πu1, lane 1 = R(u0) sin 2πu1, lane 2 = R(u2) cos 2πu3,
 * lane 3 = R(u2) sin 2πu3, R(u) = sqrt(−2 log u), with log, sin and cos
 * evaluated by the same float64 polynomial on every backend (not the
 * platform's libm), so the results are bit-identical.
 */
export interface RngKernels {
  /** Standard normals: `out[i]` = element `offset + i` of the stream. */
  normal(seed: number, offset: number, out: FloatArray): void;
  /** Uniforms in (0, 1): `out[i]` = element `offset + i` of the stream. */
  uniform(seed: number, offset: number, out: FloatArray): void;
}
