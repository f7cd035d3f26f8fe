/**
 * `flowvae fit2d --target u1 --flow planar --layers 32`: fits a flow
 * distribution to a 2-D target density by reverse KL (variational inference,
 * Rezende & Mohamed 2015, section 6.1) and writes one picture: the target
 * density, the fitted density and samples of the fit, side by side on
 * [-extent, extent]², with the reverse KL(q ‖ p) estimated with the target's
 * exact normalizer.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { FlowVaeError } from '../errors';
import { FlowDistribution, TARGET_2D_NAMES, reverseKL, target2d, type Target2DName } from '../distributions';
import { RING_RADIUS } from '../distributions/targets2d';
import { CliError } from './args';
import { FLOW_FAMILIES } from '../flows';
import { formatDuration, formatRate, nonNegativeInt, pngFile, positiveInt, learningRate, positiveNumber, threadNumber } from './args';
import { BACKEND_CHOICES, type BackendChoice, interruptible, selectBackend, threadCount } from './common';
import { densityHeatmap, scatterPlot, sideBySide } from './images';
import { Eta, Output, barGraphic, outputMode } from './progress';

/** Pixels per panel side. */
const PANEL = 256;
/** Samples drawn for the scatter panel. */
const SCATTER_SAMPLES = 20_000;
/** Seed of the picture's samples (independent of training and of the KL estimate). */
const SCATTER_SEED = 4242;

export const FIT2D_DEFAULTS = {
  target: 'U1',
  flow: 'planar',
  layers: 32,
  steps: 10_000,
  batch: 256,
  lr: 3e-3,
  warmup: 2000,
  seed: 1,
  klSamples: 100_000,
  extent: 4,
};

/** Conditional targets: fitted by maximum likelihood on (x, c) draws. */
const CONDITIONAL_TARGETS = [RING_RADIUS.name] as const;
type TargetName = Target2DName | (typeof CONDITIONAL_TARGETS)[number];
const ALL_TARGETS: readonly TargetName[] = [...TARGET_2D_NAMES, ...CONDITIONAL_TARGETS];
/** Flow families that take a context. */
const CONDITIONAL_FAMILIES = ['maf', 'iaf', 'realnvp', 'nice', 'glow', 'spline-coupling', 'spline-autoregressive'];

/** Target names, case-insensitively ("u1" is U1). */
function targetName(value: string): TargetName {
  const found = ALL_TARGETS.find((n) => n.toLowerCase() === value.toLowerCase());
  if (!found) throw new InvalidArgumentError(`Allowed choices are ${ALL_TARGETS.map((n) => n.toLowerCase()).join(', ')}.`);
  return found;
}

interface Fit2dOptions {
  target: TargetName;
  flow: string;
  layers: number;
  steps: number;
  batch: number;
  lr: number;
  warmup: number;
  seed: number;
  klSamples: number;
  extent: number;
  out?: string;
  backend: BackendChoice;
  threads?: number;
  json?: boolean;
}

export function fit2dCommand(): Command {
  return new Command('fit2d')
    .summary('fit a flow to a 2-D target density by reverse KL')
    .description(
      'Fits a flow (a standard normal pushed through --layers flow layers) to a 2-D target density by minimizing ' +
        'the reverse KL(q || p) with Adam, as in Rezende & Mohamed (2015): u1-u4 are their potentials, two-moons, ' +
        'rings and eight-gaussians are mixtures. Writes a PNG with the target density (left), the fitted density ' +
        '(middle) and samples of the fit (right) on [-extent, extent]^2, and prints the reverse KL estimated with ' +
        'the exact log-normalizer of the target.',
    )
    .addOption(
      new Option(
        '--target <name>',
        `target: ${ALL_TARGETS.map((n) => n.toLowerCase()).join(', ')} (ring-radius: a ring whose radius is the context, fitted by maximum likelihood with a conditional flow: spline-coupling and lr 1e-3 unless given)`,
      )
        .default(FIT2D_DEFAULTS.target, 'u1')
        .argParser(targetName),
    )
    .addOption(new Option('--flow <family>', 'flow family').choices(Object.keys(FLOW_FAMILIES)).default(FIT2D_DEFAULTS.flow))
    .addOption(new Option('--layers <K>', 'flow layers').default(FIT2D_DEFAULTS.layers).argParser(positiveInt))
    .addOption(new Option('--steps <n>', 'optimizer steps').default(FIT2D_DEFAULTS.steps).argParser(positiveInt))
    .addOption(new Option('--batch <n>', 'samples of q per step').default(FIT2D_DEFAULTS.batch).argParser(positiveInt))
    .addOption(new Option('--lr <rate>', 'Adam learning rate').default(FIT2D_DEFAULTS.lr).argParser(learningRate))
    .addOption(
      new Option('--warmup <steps>', 'annealing: the weight of log p rises from 0.01 to 1 over these steps (0: none)')
        .default(FIT2D_DEFAULTS.warmup)
        .argParser(nonNegativeInt),
    )
    .addOption(new Option('--seed <n>', 'seed of initialization and noise').default(FIT2D_DEFAULTS.seed).argParser(nonNegativeInt))
    .addOption(new Option('--kl-samples <S>', 'samples of q for the reverse KL estimate').default(FIT2D_DEFAULTS.klSamples).argParser(positiveInt))
    .addOption(new Option('--extent <a>', 'the pictures show [-a, a]^2').default(FIT2D_DEFAULTS.extent).argParser(positiveNumber))
    .addOption(new Option('--out <file>', 'PNG to write (default: fit2d-<target>.png)').argParser(pngFile))
    .addOption(new Option('--backend <name>', 'compute backend').choices(BACKEND_CHOICES).default('auto'))
    .addOption(new Option('--threads <n>', 'native threads (default: all cores)').argParser(threadNumber))
    .addOption(new Option('--json', 'print one JSON object per line (progress, summary) instead of text'))
    .action(async (o: Fit2dOptions, command: Command) => {
      const given = (name: string) => command.getOptionValueSource(name) === 'cli';
      if ((CONDITIONAL_TARGETS as readonly string[]).includes(o.target)) await fit2dConditional(o, { flow: given('flow'), lr: given('lr') });
      else await fit2d(o as Fit2dOptions & { target: Target2DName });
    });
}

/** Grid points (pixel centres) of a PANEL × PANEL picture of [-a, a]², row 0 at the top (y = +a). */
function gridPoints(extent: number): Float64Array {
  const z = new Float64Array(2 * PANEL * PANEL);
  for (let row = 0; row < PANEL; row++) {
    for (let col = 0; col < PANEL; col++) {
      const i = row * PANEL + col;
      z[2 * i] = -extent + (2 * extent * (col + 0.5)) / PANEL;
      z[2 * i + 1] = extent - (2 * extent * (row + 0.5)) / PANEL;
    }
  }
  return z;
}

async function fit2d(o: Fit2dOptions & { target: Target2DName }): Promise<void> {
  const output = new Output(outputMode(o.json));
  const backend = selectBackend(o.backend, o.threads);
  const target = target2d(o.target);
  const dist = FlowDistribution.create({ dim: 2, flow: o.flow, layers: o.layers, seed: o.seed, backend });
  const out = o.out ?? `fit2d-${o.target.toLowerCase()}.png`;
  const threads = threadCount(backend);
  output.log(
    `flowvae fit2d: ${o.flow} flow, K = ${o.layers}, on ${o.target} by reverse KL: ${o.steps} steps of ${o.batch} samples, ` +
      `lr ${o.lr}, warm-up ${o.warmup} steps, seed ${o.seed}; backend ${backend.name}, ${threads} thread${threads === 1 ? '' : 's'}`,
  );
  output.event('start', {
    target: o.target,
    flow: o.flow,
    layers: o.layers,
    steps: o.steps,
    batch: o.batch,
    lr: o.lr,
    warmup: o.warmup,
    seed: o.seed,
    backend: backend.name,
    threads,
  });

  // Training, with a progress bar (terminal), ten progress lines (pipes) or JSON events.
  const started = performance.now();
  const eta = new Eta();
  const every = Math.max(1, Math.round(o.steps / 10));
  let windowSum = 0;
  let windowCount = 0;
  const stop = interruptible(() => {
    output.clearBar();
    output.log('flowvae: stopping after the current step (Ctrl-C again to quit at once)');
  });
  let result;
  try {
    result = await dist.fitTarget(target, {
      steps: o.steps,
      batchSize: o.batch,
      lr: o.lr,
      warmup: o.warmup,
      signal: stop.signal,
      onBatch: (p) => {
        windowSum += p.loss;
        windowCount += 1;
        output.bar(
          `step ${p.step}/${p.steps} ${barGraphic(p.step, p.steps, 20)} loss ${(windowSum / windowCount).toFixed(3)}  ` +
            `beta ${p.beta.toFixed(2)}  ${formatRate(p.samplesPerSecond)} samples/s  ETA ${eta.format(p.step, p.steps)}`,
        );
        if (p.step % every === 0 || p.step === p.steps) {
          const loss = windowSum / windowCount;
          output.log(
            `step ${String(p.step).padStart(String(p.steps).length)}/${p.steps}  loss ${loss.toFixed(4)} (mean of the last ${windowCount} steps)  beta ${p.beta.toFixed(2)}  ${formatRate(p.samplesPerSecond)} samples/s`,
          );
          output.event('progress', { step: p.step, steps: p.steps, loss, beta: p.beta, samplesPerSecond: p.samplesPerSecond });
          windowSum = 0;
          windowCount = 0;
        }
      },
    });
  } finally {
    output.clearBar();
    stop.dispose();
  }
  const fitSeconds = (performance.now() - started) / 1000;

  // The reverse KL with the target's exact log-normalizer (quadrature for U1-U4, 0 for the mixtures).
  const kl = reverseKL(dist, target, { samples: o.klSamples });

  // Picture: target density | fitted density | samples, on the same grid and colour scale.
  const grid = gridPoints(o.extent);
  const targetLog = target.logDensity(grid);
  const targetDensity = targetLog.map((v) => Math.exp(v - kl.logZ));
  const fitted = fittedDensityOnGrid(dist, grid);
  const fittedDensity = fitted.density;
  const fittedFrom =
    fitted.failed === 0 ? 'exact log q' : `exact log q; ${fitted.failed} of ${PANEL * PANEL} pixels left dark where the flow's inverse did not converge`;
  let max = 0;
  for (const v of targetDensity) if (v > max) max = v;
  for (const v of fittedDensity) if (Number.isFinite(v) && v > max) max = v;
  const samples = dist.sample(SCATTER_SAMPLES, { seed: SCATTER_SEED }).x;
  const picture = sideBySide(
    [densityHeatmap(targetDensity, PANEL, max), densityHeatmap(fittedDensity, PANEL, max), scatterPlot(samples, SCATTER_SAMPLES, PANEL, o.extent)],
    8,
  );
  picture.save(out);

  const aborted = result.stopped === 'aborted';
  const summary = {
    target: o.target,
    flow: o.flow,
    layers: o.layers,
    steps: result.steps,
    stopped: result.stopped,
    seconds: fitSeconds,
    reverseKL: kl.kl,
    standardError: kl.standardError,
    klSamples: kl.samples,
    logZ: kl.logZ,
    out,
    width: picture.width,
    height: picture.height,
  };
  output.log(
    [
      '',
      `flowvae fit2d: ${aborted ? `interrupted after ${result.steps} of ${o.steps} steps` : `${result.steps} steps`} in ${formatDuration(fitSeconds)}`,
      `  reverse KL(q || p)  ${kl.kl.toFixed(4)} ± ${kl.standardError.toFixed(4)} nats  (${kl.samples} samples of q; exact log Z = ${kl.logZ.toFixed(4)})`,
      `  picture             ${out} (${picture.width}x${picture.height}): target density | fitted density (${fittedFrom}) | ${SCATTER_SAMPLES} samples, on [-${o.extent}, ${o.extent}]^2`,
    ].join('\n'),
  );
  output.event('summary', summary);
  if (aborted) process.exitCode = stop.exitCode;
}

/**
 * q(z) at the grid points, one picture row per call. Flows without a closed-form
 * inverse (planar, Sylvester) solve for it iteratively and throw
 * ERR_NOT_CONVERGED for a whole call when one point fails; such a row is
 * redone point by point and the points that still fail are left at 0 (and
 * counted) rather than guessed.
 */
function fittedDensityOnGrid(dist: FlowDistribution, grid: Float64Array): { density: Float64Array; failed: number } {
  const density = new Float64Array(PANEL * PANEL);
  let failed = 0;
  const logProb = (points: Float64Array): Float64Array | null => {
    try {
      return Float64Array.from(dist.logProb(dist.backend.from(points)));
    } catch (err) {
      if (err instanceof FlowVaeError && err.code === 'ERR_NOT_CONVERGED') return null;
      throw err;
    }
  };
  for (let row = 0; row < PANEL; row++) {
    const points = grid.subarray(2 * row * PANEL, 2 * (row + 1) * PANEL);
    const lq = logProb(points);
    for (let col = 0; col < PANEL; col++) {
      const v = lq ? lq[col] : logProb(points.slice(2 * col, 2 * col + 2))?.[0];
      if (v === undefined || !Number.isFinite(v)) failed += 1;
      else density[row * PANEL + col] = Math.exp(v);
    }
  }
  return { density, failed };
}

/** Contexts the conditional picture shows, one density panel each. */
const PICTURE_CONTEXTS = [1, 2, 3];
/** Training and held-out draws of a conditional target. */
const CONDITIONAL_TRAIN = 20_000;
const CONDITIONAL_TEST = 5_000;

/**
 * `--target ring-radius`: maximum likelihood of a conditional flow on
 * (x, c) draws; the picture shows q(x | c) at c = 1, 2, 3 and samples at
 * each; the summary compares the held-out log q(x | c) with the exact log p(x | c).
 */
async function fit2dConditional(o: Fit2dOptions, given: { flow: boolean; lr: boolean }): Promise<void> {
  // A ring's conditionals are bimodal: monotone splines fit them where affine steps (maf) cannot.
  const flow = given.flow ? o.flow : 'spline-coupling';
  const lr = given.lr ? o.lr : 1e-3;
  if (!CONDITIONAL_FAMILIES.includes(flow)) {
    throw new CliError(`error: --flow ${flow} takes no context; --target ${o.target} needs one of ${CONDITIONAL_FAMILIES.join(', ')}`);
  }
  const output = new Output(outputMode(o.json));
  const backend = selectBackend(o.backend, o.threads);
  // Splines act on [−bound, bound]: 4 holds the largest ring (radius 3 plus noise).
  const splineOptions = flow.startsWith('spline') ? { bound: 4 } : {};
  const dist = FlowDistribution.create({
    dim: 2,
    flow,
    layers: o.layers,
    hidden: [64],
    contextDim: RING_RADIUS.contextDim,
    seed: o.seed,
    backend,
    ...splineOptions,
  });
  const out = o.out ?? `fit2d-${o.target}.png`;
  const train = RING_RADIUS.sample(CONDITIONAL_TRAIN, o.seed);
  const epochs = Math.max(1, Math.round((o.steps * o.batch) / CONDITIONAL_TRAIN));
  const threads = threadCount(backend);
  output.log(
    `flowvae fit2d: conditional ${flow} flow, K = ${o.layers}, on ${o.target} (${RING_RADIUS.formula}) by maximum likelihood: ` +
      `${CONDITIONAL_TRAIN} draws, ${epochs} epochs of batch ${o.batch}, lr ${lr}, seed ${o.seed}; backend ${backend.name}, ${threads} thread${threads === 1 ? '' : 's'}`,
  );
  output.event('start', { target: o.target, flow, layers: o.layers, epochs, batch: o.batch, lr, seed: o.seed, backend: backend.name, threads });
  const started = performance.now();
  const stop = interruptible(() => {
    output.clearBar();
    output.log('flowvae: stopping after the current step (Ctrl-C again to quit at once)');
  });
  let result;
  try {
    result = await dist.fit(backend.from(train.x), {
      context: backend.from(train.context),
      epochs,
      batchSize: o.batch,
      lr,
      signal: stop.signal,
      onEpoch: (m) => {
        output.log(`epoch ${m.epoch}/${epochs}  loss ${m.loss.toFixed(4)} (−mean log q(x | c))`);
        output.event('progress', { epoch: m.epoch, epochs, loss: m.loss });
      },
    });
  } finally {
    output.clearBar();
    stop.dispose();
  }
  const fitSeconds = (performance.now() - started) / 1000;

  // Held-out draws: the model's mean log q(x | c) against the exact mean log p(x | c).
  const test = RING_RADIUS.sample(CONDITIONAL_TEST, o.seed + 1);
  const model = mean(dist.logProb(backend.from(test.x), { context: backend.from(test.context) }));
  const truth = mean(RING_RADIUS.logDensity(test.x, test.context));

  // Picture: q(x | c) at each picture context, on one colour scale, then samples at all of them.
  const grid = gridPoints(o.extent);
  const panels = PICTURE_CONTEXTS.map((c) => {
    const lq = dist.logProb(backend.from(grid), { context: backend.from(new Float64Array(PANEL * PANEL).fill(c)) });
    return Float64Array.from(lq, Math.exp);
  });
  let max = 0;
  for (const d of panels) for (const v of d) if (Number.isFinite(v) && v > max) max = v;
  const perContext = Math.floor(SCATTER_SAMPLES / PICTURE_CONTEXTS.length);
  const contexts = new Float64Array(perContext * PICTURE_CONTEXTS.length);
  PICTURE_CONTEXTS.forEach((c, k) => contexts.fill(c, k * perContext, (k + 1) * perContext));
  const samples = dist.sample(contexts.length, { seed: SCATTER_SEED, context: backend.from(contexts) }).x;
  const picture = sideBySide([...panels.map((d) => densityHeatmap(d, PANEL, max)), scatterPlot(samples, contexts.length, PANEL, o.extent)], 8);
  picture.save(out);

  const aborted = result.stopped === 'aborted';
  output.log(
    [
      '',
      `flowvae fit2d: ${aborted ? `interrupted after ${result.epochs.length} of ${epochs} epochs` : `${result.epochs.length} epochs`} in ${formatDuration(fitSeconds)}`,
      `  held-out log q(x | c)  ${model.toFixed(4)} nats; exact log p(x | c) ${truth.toFixed(4)}; gap ${(truth - model).toFixed(4)} nats (${CONDITIONAL_TEST} draws)`,
      `  picture                ${out} (${picture.width}x${picture.height}): q(x | c) at c = ${PICTURE_CONTEXTS.join(', ')} | ${contexts.length} samples at those c, on [-${o.extent}, ${o.extent}]^2`,
    ].join('\n'),
  );
  output.event('summary', {
    target: o.target,
    flow,
    layers: o.layers,
    epochs: result.epochs.length,
    stopped: result.stopped,
    seconds: fitSeconds,
    logLikelihood: model,
    trueLogLikelihood: truth,
    gap: truth - model,
    out,
    width: picture.width,
    height: picture.height,
  });
  if (aborted) process.exitCode = stop.exitCode;
}

function mean(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i];
  return s / values.length;
}
