/** The cpu backend: native C++ kernels (threads + SIMD) over Float32Array, zero copy. */
import type { Backend } from '../backend';
import type { NativeAddon } from '../native';
import { checkSize } from '../../validate';
import { cpuAdam } from './adam';
import { cpuAutoregressive } from './autoregressive';
import { cpuCoupling } from './coupling';
import { cpuDense } from './dense';
import { cpuElementwise } from './elementwise';
import { cpuGaussian } from './gaussian';
import { cpuGlow } from './glow';
import { cpuLikelihood } from './likelihood';
import { cpuPlanar } from './planar';
import { cpuRadial } from './radial';
import { cpuResidual } from './residual';
import { cpuRng } from './rng';
import { cpuSylvester } from './sylvester';
import { cpuSpline } from './spline';

export function createCpuBackend(addon: NativeAddon): Backend {
  return {
    name: 'cpu',
    dtype: 'float32',
    alloc: (length: number) => new Float32Array(checkSize(length, 'length')),
    from: (data: ArrayLike<number>) => Float32Array.from(data),
    dense: cpuDense(addon),
    elementwise: cpuElementwise(addon),
    rng: cpuRng(addon),
    adam: cpuAdam(addon),
    gaussian: cpuGaussian(addon),
    likelihood: cpuLikelihood(addon),
    autoregressive: cpuAutoregressive(addon),
    coupling: cpuCoupling(addon),
    planar: cpuPlanar(addon),
    radial: cpuRadial(addon),
    sylvester: cpuSylvester(addon),
    glow: cpuGlow(addon),
    spline: cpuSpline(addon),
    residual: cpuResidual(addon),
  };
}
