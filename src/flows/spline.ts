/**
 * Neural spline flows (Durkan et al. 2019): monotone rational-quadratic
 * splines with K bins on [−B, B) and identity tails, elementwise, their
 * 3K − 1 parameters per dimension produced by a conditioner
 * (see src/backend/kernels/spline.ts for the parametrization). Forward and
 * inverse are both analytic.
 *
 * - `SplineCouplingFlow` (RQ-NSF (C)): K coupling layers alternating the
 *   transformed half (src/flows/coupling.ts), the spline as the
 *   `CouplingTransform`. The conditioner MLP starts with a zero last layer,
 *   and zero spline parameters are the identity, so the stack starts at the
 *   identity.
 * - `SplineAutoregressiveFlow` (RQ-NSF (AR)): K steps, each a MADE (ordering
 *   reversed between steps) giving the spline parameters of dimension i from
 *   the dimensions before it. It is used in the density direction, like MAF:
 *   `forward` maps data x to noise u in one MADE pass per step,
 *
 *     θ = MADE_k(x, h),  u_i = spline(x_i; θ_i),  log|det ∂u/∂x| = Σ_i log spline'(x_i; θ_i),
 *
 *   and `inverse` (sampling, u → x) takes D sequential passes per step. The
 *   MADE output layer starts small (0.1 of PyTorch's default scale), so each
 *   step starts near, not at, the identity.
 *
 * Both keep the spline parameters blocked per row, `[3K − 1, width]`, which
 * is MADE's output layout (block j holds parameter j of every dimension).
 */
import type { FloatArray } from '../backend/types';
import { SPLINE_MAX_BINS, splineParamsPerElement } from '../backend/kernels/spline';
import { expected, typeError } from '../errors';
import type { Parameter } from '../nn/parameter';
import { checkInRange, checkIntegerBetween, checkPositiveInt } from '../validate';
import { AutoregressiveFlow, type AutoregressiveFlowOptions, type StepKernels } from './autoregressive';
import { CouplingStack, alternatingCouplings, type CouplingStackOptions, type CouplingTransform, type CouplingTransformSpec } from './coupling';
import type { Backend } from '../backend/backend';

/** Default number of bins. */
export const SPLINE_DEFAULT_BINS = 8;
/** Default half-width B of the spline's interval [−B, B) (beyond it: identity). */
export const SPLINE_DEFAULT_BOUND = 3;

export interface SplineOptions {
  /** Number of bins K (default 8). */
  bins?: number;
  /** Half-width B of the interval the spline covers (default 3); identity outside. */
  bound?: number;
}

function checkSplineOptions(options: SplineOptions): { bins: number; bound: number } {
  const bins = options.bins ?? SPLINE_DEFAULT_BINS;
  checkIntegerBetween(bins, 'bins', 1, SPLINE_MAX_BINS);
  const bound = checkInRange(options.bound ?? SPLINE_DEFAULT_BOUND, 'bound', 1e-30, 1e30);
  return { bins, bound };
}

/** The spline as a coupling transform: h per row is `[3K − 1, width]` (blocked), zero h is the identity. */
export class SplineCouplingTransform implements CouplingTransform {
  readonly kind = 'spline';
  readonly width: number;
  readonly bins: number;
  readonly bound: number;
  readonly paramsPerDim: number;
  private readonly backend: Backend;

  constructor({ width, backend }: CouplingTransformSpec, options: SplineOptions = {}) {
    this.width = checkPositiveInt(width, 'width');
    const { bins, bound } = checkSplineOptions(options);
    this.bins = bins;
    this.bound = bound;
    this.paramsPerDim = splineParamsPerElement(bins);
    this.backend = backend;
  }

  parameters(): Parameter[] {
    return [];
  }

  forward(x: FloatArray, h: FloatArray, y: FloatArray, logDet: FloatArray, batch: number, dim: number, offset: number): void {
    this.backend.spline.forward(x, h, y, logDet, batch, dim, this.width, offset, this.bins, this.bound);
  }

  inverse(y: FloatArray, h: FloatArray, x: FloatArray, logDet: FloatArray, batch: number, dim: number, offset: number): void {
    this.backend.spline.inverse(y, h, x, logDet, batch, dim, this.width, offset, this.bins, this.bound);
  }

  backward(
    x: FloatArray,
    h: FloatArray,
    dy: FloatArray,
    dLogDet: FloatArray,
    dx: FloatArray,
    dh: FloatArray,
    batch: number,
    dim: number,
    offset: number,
  ): void {
    this.backend.spline.backward(x, h, dy, dLogDet, dx, dh, batch, dim, this.width, offset, this.bins, this.bound);
  }
}

export interface SplineCouplingOptions extends CouplingStackOptions, SplineOptions {}

/**
 * Rational-quadratic neural spline flow, coupling form: `layers` coupling
 * layers (default 2) alternating the transformed half. Parameters:
 * `<k>.conditioner.<i>.weight|bias`.
 */
export class SplineCouplingFlow extends CouplingStack {
  readonly bins: number;
  readonly bound: number;

  constructor(options: SplineCouplingOptions) {
    if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
    const spline = checkSplineOptions(options);
    super(
      'spline-coupling',
      alternatingCouplings(options, (spec) => new SplineCouplingTransform(spec, spline)),
    );
    this.bins = spline.bins;
    this.bound = spline.bound;
  }
}

export interface SplineAutoregressiveOptions extends AutoregressiveFlowOptions, SplineOptions {}

/** Rational-quadratic neural spline flow, autoregressive form, in the density direction (see the file comment). */
export class SplineAutoregressiveFlow extends AutoregressiveFlow {
  readonly kind = 'spline-autoregressive';
  readonly bins: number;
  readonly bound: number;
  private readonly kernels: StepKernels;

  constructor(options: SplineAutoregressiveOptions) {
    if (typeof options !== 'object' || options === null) throw typeError(expected('options object', 'options', options));
    const { bins, bound } = checkSplineOptions(options);
    super(options, 0.1, splineParamsPerElement(bins));
    this.bins = bins;
    this.bound = bound;
    const k = this.backend.spline;
    // Every column of the row is transformed: window [0, dim).
    this.kernels = {
      forward: (x, ms, u, logDet, batch, dim) => k.forward(x, ms, u, logDet, batch, dim, dim, 0, bins, bound),
      backward: (x, ms, du, dLogDet, dx, dms, batch, dim) => k.backward(x, ms, du, dLogDet, dx, dms, batch, dim, dim, 0, bins, bound),
      inverse: (u, ms, x, logDet, batch, dim) => k.inverse(u, ms, x, logDet, batch, dim, dim, 0, bins, bound),
    };
  }

  protected get step(): StepKernels {
    return this.kernels;
  }
}
