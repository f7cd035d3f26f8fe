/** The reference backend: every kernel in plain TypeScript over Float64Array. The oracle of the test suite. */
import { assembleBackend, registerAll, type Backend } from '../registry';
import { checkSize } from '../../validate';
import { referenceAdam } from './adam';
import { referenceAutoregressive } from './autoregressive';
import { referenceCoupling } from './coupling';
import { referenceDense } from './dense';
import { referenceElementwise } from './elementwise';
import { referenceGaussian } from './gaussian';
import { referenceGlow } from './glow';
import { referenceLikelihood } from './likelihood';
import { referenceLstm } from './lstm';
import { referencePlanar } from './planar';
import { referenceRadial } from './radial';
import { referenceResidual } from './residual';
import { referenceRng } from './rng';
import { referenceSylvester } from './sylvester';
import { referenceSpline } from './spline';

// The reference implements every family (it is the oracle and the fallback of last resort).
registerAll<void>('reference', {
  dense: () => referenceDense,
  elementwise: () => referenceElementwise,
  rng: () => referenceRng,
  adam: () => referenceAdam,
  gaussian: () => referenceGaussian,
  likelihood: () => referenceLikelihood,
  autoregressive: () => referenceAutoregressive,
  coupling: () => referenceCoupling,
  planar: () => referencePlanar,
  radial: () => referenceRadial,
  sylvester: () => referenceSylvester,
  glow: () => referenceGlow,
  spline: () => referenceSpline,
  lstm: () => referenceLstm,
  residual: () => referenceResidual,
});

export const referenceBackend: Backend = assembleBackend(
  {
    name: 'reference',
    dtype: 'float64',
    alloc: (length: number) => new Float64Array(checkSize(length, 'length')),
    from: (data: ArrayLike<number>) => Float64Array.from(data),
  },
  undefined,
);
