import { backendByName, setNumThreads } from '../src/backend';
import type { Backend } from '../src/backend/backend';
import { RealNVPFlow } from '../src/flows/realnvp';
setNumThreads(1);
const cpu = backendByName('cpu');
const acc: Record<string, number> = {};
function wrapFamily(name: string, fam: any) {
  const out: any = {};
  for (const k of Object.keys(fam)) out[k] = (...a: any[]) => { const t0 = process.hrtime.bigint(); fam[k](...a); acc[`${name}.${k}`] = (acc[`${name}.${k}`] ?? 0) + Number(process.hrtime.bigint() - t0) / 1e6; };
  return out;
}
const b: Backend = { ...cpu, dense: wrapFamily('dense', cpu.dense), elementwise: wrapFamily('elementwise', cpu.elementwise), coupling: wrapFamily('coupling', cpu.coupling) };
for (const batch of [256, 4096]) {
  const flow = new RealNVPFlow({ dim: 40, layers: 8, hidden: [256, 256], activation: 'relu', seed: 1, backend: b });
  const x = cpu.alloc(batch * 40).map((_, i) => Math.sin(i));
  const wy = cpu.alloc(batch * 40).map((_, i) => Math.cos(i));
  const wl = cpu.alloc(batch).fill(0.3);
  const params = flow.parameters();
  const step = () => { for (const p of params) p.grad.fill(0); flow.forward(x, batch); flow.backward(wy, wl); };
  for (let i = 0; i < 3; i++) step();
  for (const k of Object.keys(acc)) delete acc[k];
  const n = batch > 1000 ? 5 : 30;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) step();
  const total = Number(process.hrtime.bigint() - t0) / 1e6 / n;
  let inK = 0;
  const parts = Object.entries(acc).map(([k, v]) => { inK += v / n; return `${k} ${(v / n).toFixed(2)}`; });
  console.log(batch, 'total ms', total.toFixed(2), 'other (TS)', (total - inK).toFixed(2), '|', parts.join(', '));
}
