/**
 * The backend contract: one interface per kernel family, one method per
 * kernel. The model layer talks only to this interface and never branches on
 * which backend it has. Implementations mirror each other file for file:
 * `src/backend/reference/<family>.ts` (pure TypeScript, float64, the oracle)
 * and `src/backend/cpu/<family>.ts` (native addon, float32, zero copy).
 *
 * Kernels write into caller-provided output arrays; sizes are passed
 * explicitly and every array length is checked against them.
 */
import type { AdamKernels } from './kernels/adam';
import type { AutoregressiveKernels } from './kernels/autoregressive';
import type { CouplingKernels } from './kernels/coupling';
import type { DenseKernels } from './kernels/dense';
import type { ElementwiseKernels } from './kernels/elementwise';
import type { GaussianKernels } from './kernels/gaussian';
import type { GlowKernels } from './kernels/glow';
import type { LikelihoodKernels } from './kernels/likelihood';
import type { PlanarKernels } from './kernels/planar';
import type { RadialKernels } from './kernels/radial';
import type { ResidualKernels } from './kernels/residual';
import type { RngKernels } from './kernels/rng';
import type { SplineKernels } from './kernels/spline';
import type { SylvesterKernels } from './kernels/sylvester';
import type { BackendName, DType, FloatArray } from './types';

export interface Backend {
  readonly name: BackendName;
  /** Element type of this backend's arrays. */
  readonly dtype: DType;
  /** A zero-filled array of this backend's element type. */
  alloc(length: number): FloatArray;
  /** A copy of `data` in this backend's element type. */
  from(data: ArrayLike<number>): FloatArray;

  readonly dense: DenseKernels;
  readonly elementwise: ElementwiseKernels;
  readonly rng: RngKernels;
  readonly adam: AdamKernels;
  readonly gaussian: GaussianKernels;
  readonly likelihood: LikelihoodKernels;
  readonly autoregressive: AutoregressiveKernels;
  readonly coupling: CouplingKernels;
  readonly planar: PlanarKernels;
  readonly radial: RadialKernels;
  readonly sylvester: SylvesterKernels;
  readonly glow: GlowKernels;
  readonly spline: SplineKernels;
  readonly residual: ResidualKernels;
}

export type { BackendName, DType, FloatArray };
