/**
 * Child process of test/spline.test.ts: with FLOWVAE_SIMD capping the addon's
 * SIMD path (scalar or avx2), runs the kernel cases of test/spline-cases.ts on
 * cpu and reference and prints {simd, worst, cases}, where worst is the
 * largest error / tolerance ratio over every output (≤ 1 passes), and
 * untouched whether every column outside the windows kept its value.
 */
import { backendByName } from '../src/backend';
import { loadNative } from '../src/backend/native';
import { SPLINE_CASES, caseData, caseTolerances, runCase, worstRatio, type CaseResult } from './spline-cases';

const cpu = backendByName('cpu');
const reference = backendByName('reference');
let worst = 0;
let cases = 0;
let untouched = true;
for (const c of SPLINE_CASES) {
  const d = caseData(c, 17 * c.dim + c.batch);
  const r = runCase(reference, c, d);
  const k = runCase(cpu, c, d);
  const tol = caseTolerances(c, r);
  for (const key of Object.keys(tol) as (keyof CaseResult)[]) worst = Math.max(worst, worstRatio(k[key], r[key], tol[key]));
  for (const a of [k.y, k.dx, k.xInverse]) {
    for (let i = 0; i < a.length; i++) {
      const col = i % c.dim;
      if ((col < c.start || col >= c.start + c.width) && a[i] !== 7.5) untouched = false;
    }
  }
  cases++;
}
process.stdout.write(JSON.stringify({ simd: loadNative()!.simdLevel(), worst, cases, untouched }) + '\n');
