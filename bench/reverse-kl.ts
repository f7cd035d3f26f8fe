/**
 * `npm run bench -- reverse-kl`: Rezende & Mohamed (2015) Figure 3 as
 * numbers. Planar and radial flows of length K = 2, 8, 32 on a standard
 * normal base are fitted by reverse KL to the potentials U1–U4 (with the
 * documented envelope, see src/distributions/targets2d.ts) and the exact
 * reverse KL(q ‖ p) in nats is estimated with 200 000 fresh samples and the
 * grid log Z. Longer flows should fit better.
 *
 * Budget per fit (the same for every cell): STEPS Adam steps of 256 draws,
 * lr 1e-2 on a cosine schedule, β annealed from 0.01 to 1 over the first
 * half (as RM15 anneal), on the cpu backend with 1 thread. Each cell is the
 * median over SEEDS seeds (initialization and noise), since reverse KL is
 * mode-seeking and a single run can settle in a worse local optimum.
 * Environment overrides for quick looks: REVERSE_KL_STEPS, REVERSE_KL_SEEDS.
 */
import { backends, getNumThreads, setNumThreads } from '../src/backend';
import { FlowDistribution, reverseKL, target2d, type Target2DName } from '../src/distributions';
import { median, printTable, writeResults } from './common';

const TARGETS: Target2DName[] = ['U1', 'U2', 'U3', 'U4'];
const FAMILIES = ['planar', 'radial'];
const LAYERS = [2, 8, 32];
const STEPS = Number(process.env.REVERSE_KL_STEPS ?? 10_000);
const SEEDS = Number(process.env.REVERSE_KL_SEEDS ?? 3);
const BATCH = 256;
const LR = 1e-2;
const EVAL_SAMPLES = 200_000;

interface Cell {
  target: Target2DName;
  flow: string;
  layers: number;
  /** Reverse KL (nats) of each seed, and their median. */
  kl: number[];
  median: number;
  /** Largest Monte Carlo standard error among the seeds. */
  standardError: number;
  seconds: number;
}

export async function run(): Promise<void> {
  const hasCpu = backends().find((b) => b.name === 'cpu')!.available;
  const backend = hasCpu ? 'cpu' : 'reference';
  const threadsBefore = getNumThreads();
  if (hasCpu) setNumThreads(1);
  const cells: Cell[] = [];
  const t0 = performance.now();
  try {
    for (const name of TARGETS) {
      const target = target2d(name);
      for (const flow of FAMILIES) {
        for (const layers of LAYERS) {
          const kls: number[] = [];
          let se = 0;
          const c0 = performance.now();
          for (let seed = 1; seed <= SEEDS; seed++) {
            const dist = FlowDistribution.create({ dim: 2, flow, layers, seed, backend });
            await dist.fitTarget(target, { steps: STEPS, batchSize: BATCH, lr: LR, lrSchedule: 'cosine', warmup: Math.floor(STEPS / 2) });
            const est = reverseKL(dist, target, { samples: EVAL_SAMPLES, seed: 1_000_000 + seed });
            kls.push(est.kl);
            se = Math.max(se, est.standardError);
          }
          const cell = { target: name, flow, layers, kl: kls, median: median(kls), standardError: se, seconds: (performance.now() - c0) / 1000 };
          cells.push(cell);
          console.log(
            `${name} ${flow} K=${layers}: KL ${kls.map((k) => k.toFixed(3)).join(', ')} (median ${cell.median.toFixed(3)}, ${cell.seconds.toFixed(1)} s)`,
          );
        }
      }
    }
  } finally {
    if (hasCpu) setNumThreads(threadsBefore);
  }
  const seconds = (performance.now() - t0) / 1000;
  const header = ['flow', 'K', ...TARGETS];
  const rows: (string | number)[][] = [header];
  for (const flow of FAMILIES) {
    for (const layers of LAYERS) {
      rows.push([flow, layers, ...TARGETS.map((t) => cells.find((c) => c.target === t && c.flow === flow && c.layers === layers)!.median.toFixed(3))]);
    }
  }
  console.log(`\nReverse KL(q ‖ p) in nats, median over ${SEEDS} seeds (${STEPS} steps of ${BATCH}; ${seconds.toFixed(0)} s in all):\n`);
  printTable(rows);
  console.log('\n' + markdownTable(rows));
  const file = writeResults('reverse-kl', {
    config: {
      backend,
      threads: 1,
      steps: STEPS,
      batchSize: BATCH,
      lr: LR,
      lrSchedule: 'cosine',
      warmup: Math.floor(STEPS / 2),
      seeds: SEEDS,
      evalSamples: EVAL_SAMPLES,
      logZ: Object.fromEntries(TARGETS.map((t) => [t, target2d(t).logZ])),
    },
    seconds,
    cells,
  });
  console.log(`\nwrote ${file}`);
}

function markdownTable(rows: (string | number)[][]): string {
  const lines = rows.map((r) => `| ${r.join(' | ')} |`);
  lines.splice(1, 0, `|${rows[0].map(() => '---').join('|')}|`);
  return lines.join('\n');
}
