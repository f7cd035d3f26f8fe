/**
 * The Network contract: what a VAE needs of its encoder trunk and decoder.
 * `MLP` is the built-in; any object with these members can take its place
 * (an own architecture, a recurrent net), as long as it computes through the
 * VAE's backend and keeps what its backward needs from the last forward.
 */
import type { FloatArray } from '../backend/types';
import { expected, rangeError, typeError } from '../errors';
import type { NamedBuffer, Parameter } from './parameter';

/** What a VAE tells its networks on each call. */
export interface NetworkCallOptions {
  /**
   * The decoder's data rows `[batch, inputDim]` during training and scoring:
   * an autoregressive decoder reads them for teacher forcing. Absent when
   * decoding codes with no data (sampling, `decode`).
   */
  target?: FloatArray;
  /** True during a training step (dropout and other training-only behaviour). */
  training?: boolean;
  /** How an autoregressive decoder generates when there is no target (default greedy). */
  generation?: GenerationOptions;
}

/** Generation of an autoregressive decoder: greedy, or sampling each step's categorical choice. */
export interface GenerationOptions {
  mode: 'greedy' | 'sample';
  /** Softmax temperature of sampled categorical choices (default 1). */
  temperature?: number;
  /** Stream of the sampled choices (elements from 0). */
  seed?: number;
}

export interface Network {
  /** Width of each input row. */
  readonly inDim: number;
  /** Width of each output row. */
  readonly outDim: number;
  /**
   * `[batch, outDim]` for `x` `[batch, inDim]`. The returned array belongs to
   * the network and must stay unchanged until its next forward (the VAE reads
   * it in backward).
   */
  forward(x: FloatArray, batch: number, options?: NetworkCallOptions): FloatArray;
  /**
   * Backpropagates ∂L/∂output `[batch, outDim]` through the last forward,
   * accumulating parameter gradients; returns ∂L/∂x (null when
   * `needInputGrad` is false). May overwrite `gradOut`.
   */
  backward(gradOut: FloatArray, needInputGrad: boolean): FloatArray | null;
  /** Trained tensors under names relative to the network (e.g. `0.weight`). */
  parameters(): Parameter[];
  /** Saved but untrained tensors (optional). */
  buffers?(): NamedBuffer[];
}

/** True for an object that looks like a Network (has its methods and widths). */
export function isNetwork(value: unknown): value is Network {
  if (typeof value !== 'object' || value === null) return false;
  const n = value as Partial<Network>;
  return typeof n.forward === 'function' && typeof n.backward === 'function' && typeof n.parameters === 'function';
}

/** Checks a user's network: its methods and, where the model fixes them, its widths. */
export function checkNetwork(value: unknown, name: string, widths: { inDim: number; outDim?: number }): Network {
  if (!isNetwork(value)) throw typeError(expected('object with forward, backward and parameters methods', name, value));
  const net = value;
  if (!Number.isInteger(net.inDim) || net.inDim !== widths.inDim) {
    throw rangeError(`Expected "${name}.inDim" to be ${widths.inDim} but received ${String(net.inDim)}`, 'ERR_SHAPE');
  }
  if (!Number.isInteger(net.outDim) || net.outDim < 1) throw rangeError(expected('positive integer', `${name}.outDim`, net.outDim), 'ERR_SHAPE');
  if (widths.outDim !== undefined && net.outDim !== widths.outDim) {
    throw rangeError(`Expected "${name}.outDim" to be ${widths.outDim} but received ${net.outDim}`, 'ERR_SHAPE');
  }
  return net;
}
