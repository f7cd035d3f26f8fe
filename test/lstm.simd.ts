/**
 * Child process of test/lstm.test.ts: with FLOWVAE_SIMD capping the addon's
 * SIMD path (scalar or avx2), runs the lstm cross-check cases of
 * test/lstm-cases.ts and prints {simd, worst, cases}, where worst is the
 * largest error / tolerance ratio (≤ 1 passes).
 */
import { backendByName, backends } from '../src/backend';
import { CASES, compareLstm } from './lstm-cases';

const cpu = backendByName('cpu');
const reference = backendByName('reference');
let worst = 0;
for (const [, c] of CASES) worst = Math.max(worst, compareLstm(cpu, reference, c, c.batch * 1000 + c.steps * 10 + c.hidden));
process.stdout.write(JSON.stringify({ simd: backends().find((b) => b.name === 'cpu')!.simd, worst, cases: CASES.length }));
