/**
 * Child process of test/autoregressive.test.ts: with FLOWVAE_SIMD capping the
 * addon's SIMD path (scalar or avx2), runs the masked dense cases of
 * test/masked-dense-cases.ts and prints {simd, worst, cases}, where worst is
 * the largest error / tolerance ratio (≤ 1 passes).
 */
import { backendByName, backends } from '../src/backend';
import { MASKED_SIZES, compareMaskedDense } from './masked-dense-cases';

const cpu = backendByName('cpu');
const reference = backendByName('reference');
let worst = 0;
for (const [batch, outDim, inDim] of MASKED_SIZES) worst = Math.max(worst, compareMaskedDense(cpu, reference, batch, outDim, inDim));
process.stdout.write(JSON.stringify({ simd: backends().find((b) => b.name === 'cpu')!.simd, worst, cases: MASKED_SIZES.length }));
