/**
 * `flowvae eval <run>`: the test ELBO and importance-sampled NLL of a trained
 * run, computed exactly as `train` computes its summary (same test rows, same
 * noise streams), so on the same backend the numbers are reproduced to the
 * last digit.
 */
import { Command, Option } from 'commander';
import { VAE } from '../vae/vae';
import { CliError, EXIT_FAILURE, formatDuration, positiveInt, threadNumber } from './args';
import { BACKEND_CHOICES, type BackendChoice, interruptible, selectBackend, threadCount } from './common';
import { DATA_HELP, dataSourceOption, loadData, parseDataSpec } from './data';
import { TEST_BINARIZE_SEED, evaluationRows, testElbo, testNll } from './evaluate';
import { Eta, Output, barGraphic, outputMode } from './progress';
import { readRunMetrics } from './run-folder';
import { describeModel } from './train';

interface EvalOptions {
  samples?: number;
  data?: string;
  testSize?: number;
  backend: BackendChoice;
  threads?: number;
  json?: boolean;
}

export function evalCommand(): Command {
  return new Command('eval')
    .summary('test ELBO and importance-sampled NLL of a trained run')
    .description(
      'Evaluates the model of a run folder on a test set: the ELBO (one posterior sample per example) and ' +
        "the negative log-likelihood by importance sampling (--samples per example). With the run's own test " +
        'set and sample count (the defaults), this reproduces the numbers train printed.',
    )
    .argument('<run>', 'run folder written by flowvae train')
    .addOption(new Option('--samples <S>', "importance samples per example (default: the run's, 1000 unless changed)").argParser(positiveInt))
    .addOption(new Option('--data <source>', `test data (default: the run's test set): ${DATA_HELP}`).argParser(dataSourceOption))
    .addOption(new Option('--test-size <n>', "use only the first n test examples (default: the run's)").argParser(positiveInt))
    .addOption(new Option('--backend <name>', 'compute backend').choices(BACKEND_CHOICES).default('auto'))
    .addOption(new Option('--threads <n>', 'native threads (default: all cores)').argParser(threadNumber))
    .addOption(new Option('--json', 'print the result as one JSON object'))
    .action(async (run: string, o: EvalOptions) => {
      await evaluate(run, o);
    });
}

async function evaluate(run: string, o: EvalOptions): Promise<void> {
  const output = new Output(outputMode(o.json));
  const metrics = readRunMetrics(run);
  const s = metrics.settings;
  const backend = selectBackend(o.backend, o.threads);
  const vae = VAE.load(run, { backend });
  const dataSource = o.data ?? s.data;
  const spec = parseDataSpec(dataSource);
  // The run's own test set: the same source, held-out split and size.
  const own = o.data === undefined;
  const loaded = loadData({
    data: spec,
    testData: own && s.testData !== null ? parseDataSpec(s.testData) : undefined,
    seed: s.seed,
    testSize: o.testSize ?? (own ? (s.testSize ?? undefined) : undefined),
  });
  const test = loaded.test;
  if (test.dim !== vae.inputDim) {
    throw new CliError(`error: the model expects ${vae.inputDim} values per example but ${dataSource} has ${test.dim}`, EXIT_FAILURE);
  }
  const samples = o.samples ?? s.samples;
  const rows = evaluationRows(backend, test, s.binarize === 'dynamic', TEST_BINARIZE_SEED);
  const started = performance.now();
  const elbo = testElbo(vae, rows);
  const eta = new Eta();
  const stop = interruptible(() => undefined);
  const nll = await testNll(vae, rows, {
    samples,
    signal: stop.signal,
    onProgress: (done, total) => output.bar(`test NLL ${barGraphic(done, total, 20)} ${done}/${total}  ETA ${eta.format(done, total)}`),
  });
  stop.dispose();
  output.clearBar();
  const seconds = (performance.now() - started) / 1000;
  if (nll === null) {
    output.log('flowvae eval: interrupted');
    process.exitCode = stop.exitCode;
    return;
  }
  const result = {
    run,
    model: describeModel(vae.config),
    data: dataSource,
    examples: test.n,
    binarized: s.binarize === 'dynamic',
    backend: backend.name,
    threads: threadCount(backend),
    elbo: elbo.elbo,
    reconstruction: elbo.reconstruction,
    kl: elbo.kl,
    nll,
    nllSamples: samples,
    seconds,
  };
  if (output.mode === 'json') {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  output.log(
    [
      `flowvae eval ${run}: ${result.model}`,
      `  test set   ${dataSource}: ${test.n} examples${result.binarized ? ' (binarized)' : ''}; backend ${backend.name}, ${result.threads} thread${result.threads === 1 ? '' : 's'}`,
      `  test ELBO  ${elbo.elbo.toFixed(2)} nats  (KL ${elbo.kl.toFixed(2)}, reconstruction ${elbo.reconstruction.toFixed(2)}; 1 sample per example)`,
      `  test NLL   ${nll.toFixed(2)} nats  (importance sampling, ${samples} samples per example)  [${formatDuration(seconds)}]`,
    ].join('\n'),
  );
}
