/**
 * Scalar functions every TypeScript layer uses, written once in the stable
 * forms the kernels define (float64).
 */

/** 1/(1 + e⁻ˣ), from e^−|x| so that it never overflows. */
export function sigmoid(x: number): number {
  const e = Math.exp(-Math.abs(x));
  return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

/** log(1 + eˣ) = max(x, 0) + log1p(e^−|x|): no overflow, no cancellation. */
export function softplus(x: number): number {
  return Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
}
