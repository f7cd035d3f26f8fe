import type { FloatArray } from '../types';

/**
 * Counter-based random numbers (Philox4x32-10), identical on every backend:
 * element `j` of the stream for `seed` is a pure function of (seed, j), so the
 * same seed and offset give the same values whatever the backend or thread
 * count. The float32 backends return exactly `Math.fround` of the float64
 * reference values.
 *
 * Stream definition. `seed` is an integer in [0, 2^53) split into the Philox
 * key (low, high 32 bits). Element j uses block n = floor(j / 4), lane j mod 4:
 * Philox4x32-10(counter = (n mod 2^32, floor(n / 2^32), 0, 0), key) gives four
 * 32-bit words r0..r3.
 *
 * - Uniforms: lane l gives (2·(r_l >>> 9) + 1) · 2^−24, in (0, 1) and exactly
 *   representable in float32 (so float32 uniforms are never 0 or 1).
 * - Normals pair lanes by Box–Muller with v_l = (r_l + 0.5) · 2^−32:
 *   lane 0 = R(v0) cos 2πv1, lane 1 = R(v0) sin 2πv1, lane 2 = R(v2) cos 2πv3,
 *   lane 3 = R(v2) sin 2πv3, R(v) = sqrt(−2 log v). log, sin and cos are
 *   evaluated by the same float64 polynomials on every backend (not the
 *   platform's libm), so the results are bit-identical.
 */
export interface RngKernels {
  /** Standard normals: `out[i]` = element `offset + i` of the stream. */
  normal(seed: number, offset: number, out: FloatArray): void;
  /** Uniforms in (0, 1): `out[i]` = element `offset + i` of the stream. */
  uniform(seed: number, offset: number, out: FloatArray): void;
}
