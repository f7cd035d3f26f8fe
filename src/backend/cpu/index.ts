/** The cpu backend: native C++ kernels (threads + SIMD) over Float32Array, zero copy. */
import { assembleBackend, registerAll, type Backend } from '../registry';
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
import { cpuLstm } from './lstm';
import { cpuPlanar } from './planar';
import { cpuRadial } from './radial';
import { cpuResidual } from './residual';
import { cpuRng } from './rng';
import { cpuSylvester } from './sylvester';
import { cpuSpline } from './spline';

// Every family has cpu kernels (cuda falls back to these).
registerAll<NativeAddon>('cpu', {
  dense: cpuDense,
  elementwise: cpuElementwise,
  rng: cpuRng,
  adam: cpuAdam,
  gaussian: cpuGaussian,
  likelihood: cpuLikelihood,
  autoregressive: cpuAutoregressive,
  coupling: cpuCoupling,
  planar: cpuPlanar,
  radial: cpuRadial,
  sylvester: cpuSylvester,
  glow: cpuGlow,
  spline: cpuSpline,
  lstm: cpuLstm,
  residual: cpuResidual,
});

export function createCpuBackend(addon: NativeAddon): Backend {
  return assembleBackend(
    {
      name: 'cpu',
      dtype: 'float32',
      alloc: (length: number) => new Float32Array(checkSize(length, 'length')),
      from: (data: ArrayLike<number>) => Float32Array.from(data),
    },
    addon,
  );
}
