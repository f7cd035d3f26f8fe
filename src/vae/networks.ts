/**
 * The VAE's built-in networks from their options, as stored in checkpoints:
 *
 * - an MLP: `{ hidden, activation }` (the default);
 * - an LSTM over rows of `steps` steps (src/nn/sequence.ts):
 *   `{ kind: 'lstm', steps, hidden }` as encoder; as decoder also
 *   `mlpHidden`, `inputDropout` and `endClass`, with the per-step likelihood
 *   groups read off the model's likelihood (its groups repeat every step).
 */
import type { Backend } from '../backend/backend';
import { ACTIVATIONS, type Activation } from '../backend/kernels/elementwise';
import { expected, rangeError, typeError } from '../errors';
import { MLP } from '../nn/mlp';
import type { Network } from '../nn/network';
import { LstmDecoder, LstmEncoder } from '../nn/sequence';
import { checkInRange, checkKnownKeys, checkOneOf, checkPositiveInt } from '../validate';
import { groupOption, type LikelihoodGroup, type ResolvedGroup } from './likelihood';

export interface MlpOptions {
  /** Hidden layer widths (default [300, 300]). */
  hidden?: number[];
  /** Activation, one of ACTIVATIONS (default 'relu'). */
  activation?: Activation;
}

export interface LstmNetworkOptions {
  kind: 'lstm';
  /** Time steps per row: the row holds steps × (inputDim / steps) values. */
  steps: number;
  /** LSTM width. */
  hidden: number;
  /** Decoder: hidden widths of the MLP from z to (x0, h0, c0) (default [hidden]). */
  mlpHidden?: number[];
  /** Decoder: probability of zeroing a teacher-forced input step in training (default 0). */
  inputDropout?: number;
  /** Decoder: the class of the first categorical group that ends a sequence. */
  endClass?: number;
}

export type NetworkOptions = MlpOptions | LstmNetworkOptions;

export type ResolvedMlp = { hidden: number[]; activation: Activation };
export type ResolvedNetwork = ResolvedMlp | LstmNetworkOptions;

const MLP_KEYS = ['hidden', 'activation'] as const;
const LSTM_KEYS = ['kind', 'steps', 'hidden', 'mlpHidden', 'inputDropout', 'endClass'] as const;

function checkWidths(value: unknown, name: string): number[] {
  if (!Array.isArray(value)) throw typeError(expected('array of positive integers', name, value));
  value.forEach((h, i) => checkPositiveInt(h, `${name}[${i}]`));
  return [...value];
}

export function resolveNetwork(value: NetworkOptions | undefined, name: 'encoder' | 'decoder'): ResolvedNetwork {
  const net = value ?? {};
  if (typeof net !== 'object' || net === null) throw typeError(expected('object', name, net));
  if ('kind' in net) {
    checkOneOf(net.kind, `${name}.kind`, ['lstm'] as const);
    checkKnownKeys(net, name, name === 'encoder' ? ['kind', 'steps', 'hidden'] : LSTM_KEYS);
    const hidden = checkPositiveInt(net.hidden, `${name}.hidden`);
    const steps = checkPositiveInt(net.steps, `${name}.steps`);
    if (name === 'encoder') return { kind: 'lstm', steps, hidden };
    const out: LstmNetworkOptions = {
      kind: 'lstm',
      steps,
      hidden,
      mlpHidden: net.mlpHidden === undefined ? [hidden] : checkWidths(net.mlpHidden, `${name}.mlpHidden`),
      inputDropout: checkInRange(net.inputDropout ?? 0, `${name}.inputDropout`, 0, 1, { hi: true }),
    };
    return net.endClass === undefined ? out : { ...out, endClass: net.endClass };
  }
  checkKnownKeys(net, name, MLP_KEYS);
  const hidden = net.hidden === undefined ? [300, 300] : checkWidths(net.hidden, `${name}.hidden`);
  return { hidden, activation: checkOneOf(net.activation ?? 'relu', `${name}.activation`, ACTIVATIONS) };
}

function isLstm(spec: ResolvedNetwork): spec is LstmNetworkOptions {
  return 'kind' in spec && spec.kind === 'lstm';
}

/** The encoder trunk: an MLP with its last layer activated (it feeds the posterior heads), or an LSTM's last state. */
export function createEncoder(backend: Backend, spec: ResolvedNetwork, inputDim: number, seed: number): Network {
  if (!isLstm(spec)) {
    return new MLP(backend, { sizes: [inputDim, ...spec.hidden], activation: spec.activation, seed: seed * 1000 + 1, activateOutput: true });
  }
  if (inputDim % spec.steps !== 0) throw rangeError(`"encoder.steps" ${spec.steps} does not divide inputDim ${inputDim}`, 'ERR_SHAPE');
  return new LstmEncoder(backend, { steps: spec.steps, features: inputDim / spec.steps, hidden: spec.hidden, seed: seed * 1000 + 1 });
}

/** One step's likelihood groups, when the model's groups repeat every step. */
function stepGroupsOf(groups: readonly ResolvedGroup[], steps: number): LikelihoodGroup[] {
  if (groups.length === 1 && groups[0].kind !== 'categorical') {
    if (groups[0].columns % steps !== 0)
      throw rangeError(`"decoder.steps" ${steps} does not divide the likelihood's ${groups[0].columns} columns`, 'ERR_SHAPE');
    return [groupOption(groups[0], groups[0].columns / steps)];
  }
  const per = groups.length / steps;
  const same = (a: ResolvedGroup, b: ResolvedGroup) =>
    a.kind === b.kind && a.columns === b.columns && a.params === b.params && a.index === b.index && a.logVar === b.logVar;
  if (!Number.isInteger(per) || groups.some((g, i) => !same(g, groups[i % per]))) {
    throw rangeError(`An LSTM decoder of ${steps} steps needs likelihood groups that repeat every step; these ${groups.length} groups do not`);
  }
  return groups.slice(0, per).map((g) => groupOption(g));
}

/** The decoder: an MLP to the likelihood's parameters, or the autoregressive LSTM decoder. */
export function createDecoder(
  backend: Backend,
  spec: ResolvedNetwork,
  latentDim: number,
  groups: readonly ResolvedGroup[],
  paramDim: number,
  seed: number,
): Network {
  if (!isLstm(spec)) {
    return new MLP(backend, { sizes: [latentDim, ...spec.hidden, paramDim], activation: spec.activation, seed: seed * 1000 + 301 });
  }
  const stepGroups = stepGroupsOf(groups, spec.steps);
  const features = stepGroups.reduce((s, g) => s + (g.classes !== undefined ? 1 : g.columns!), 0);
  return new LstmDecoder(backend, {
    latentDim,
    steps: spec.steps,
    features,
    stepGroups,
    hidden: spec.hidden,
    mlpHidden: spec.mlpHidden,
    inputDropout: spec.inputDropout,
    endClass: spec.endClass,
    seed: seed * 1000 + 301,
  });
}
