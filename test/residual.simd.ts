/**
 * Child process of test/residual.test.ts: with FLOWVAE_SIMD capping the
 * addon's SIMD path (scalar or avx2), runs a residual stack's forward (exact
 * and estimator), backward and inverse on the cpu backend and prints
 * {simd, values}: every output, for the parent to compare across paths.
 */
import { backendByName, backends } from '../src/backend';
import { ResidualBlock } from '../src/flows/residual';

const cpu = backendByName('cpu');
const values: number[] = [];
for (const [dim, hidden, logDet] of [
  [3, [17, 9], 'exact'],
  [11, [13], 'estimator'],
] as const) {
  const flow = new ResidualBlock({ dim, hidden: [...hidden], logDet, seed: 4, backend: cpu });
  const batch = 21;
  const x = Float32Array.from({ length: batch * dim }, (_, i) => Math.sin(1.7 * i) * 1.5);
  const out = flow.forward(x, batch, { training: true });
  values.push(...out.y, ...out.logDet);
  const g = flow.backward(
    Float32Array.from(x, (v) => Math.cos(v)),
    Float32Array.from({ length: batch }, (_, i) => 0.1 * i - 1),
  );
  values.push(...g.gradInput);
  for (const p of flow.parameters()) values.push(...p.grad);
  const inv = flow.inverse(Float32Array.from(out.y), batch);
  values.push(...inv.x, ...inv.logDet);
}
process.stdout.write(JSON.stringify({ simd: backends().find((b) => b.name === 'cpu')!.simd, values }));
