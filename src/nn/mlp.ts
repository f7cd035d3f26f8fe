/**
 * Multi-layer perceptron: Linear → activation → … → Linear (no activation
 * after the last layer). Parameters are named `<i>.weight`, `<i>.bias` with
 * i the index of the Linear in an equivalent PyTorch `nn.Sequential`
 * (activations take the odd indices), so weights load into PyTorch by name.
 */
import type { Backend } from '../backend/backend';
import type { Activation } from '../backend/kernels/elementwise';
import type { FloatArray } from '../backend/types';
import type { Network } from './network';
import { prefixParameters, type NamedBuffer, type Parameter } from './parameter';
import { Linear } from './linear';

export interface MLPOptions {
  /** Layer widths including input and output, e.g. [784, 300, 300, 40]. */
  sizes: readonly number[];
  activation: Activation;
  /** Slope of leaky_relu / scale of elu. */
  alpha?: number;
  seed: number;
  /** Scale of the last layer's initial weights (small values start flows near the identity). */
  lastInitScale?: number;
  /** Apply the activation after the last layer too (an encoder trunk feeding several heads). */
  activateOutput?: boolean;
}

export class MLP implements Network {
  readonly layers: Linear[] = [];
  readonly activation: Activation;
  readonly alpha: number;
  readonly inDim: number;
  readonly outDim: number;
  readonly activateOutput: boolean;
  private hidden: FloatArray[] = [];
  private batch = 0;

  constructor(
    readonly backend: Backend,
    options: MLPOptions,
  ) {
    const sizes = options.sizes;
    this.activation = options.activation;
    this.alpha = options.alpha ?? (options.activation === 'elu' ? 1 : 0.01);
    for (let i = 0; i + 1 < sizes.length; i++) {
      const last = i + 2 === sizes.length;
      this.layers.push(
        new Linear(backend, {
          inDim: sizes[i],
          outDim: sizes[i + 1],
          seed: options.seed + 7919 * (i + 1),
          initScale: last ? (options.lastInitScale ?? 1) : 1,
        }),
      );
    }
    this.activateOutput = options.activateOutput ?? false;
    this.inDim = sizes[0];
    this.outDim = sizes[sizes.length - 1];
  }

  parameters(): Parameter[] {
    return this.layers.flatMap((l, i) => prefixParameters(String(2 * i), l.parameters()));
  }

  buffers(): NamedBuffer[] {
    return [];
  }

  forward(x: FloatArray, batch: number): FloatArray {
    this.batch = batch;
    let h = x;
    for (let i = 0; i < this.layers.length; i++) {
      h = this.layers[i].forward(h, batch);
      if (this.activated(i)) {
        const n = batch * this.layers[i].outDim;
        if (!this.hidden[i] || this.hidden[i].length !== n) this.hidden[i] = this.backend.alloc(n);
        this.backend.elementwise.forward(this.activation, h, this.hidden[i], n, this.alpha);
        h = this.hidden[i];
      }
    }
    return h;
  }

  private activated(i: number): boolean {
    return i + 1 < this.layers.length || this.activateOutput;
  }

  /**
   * Accumulates parameter gradients; returns ∂L/∂x (null when `needInputGrad`
   * is false). `gradOut` may be overwritten (the activation gradient is applied in place).
   */
  backward(gradOut: FloatArray, needInputGrad = true): FloatArray | null {
    let g: FloatArray | null = gradOut;
    for (let i = this.layers.length - 1; i >= 0; i--) {
      if (this.activated(i)) {
        // Gradient through the activation, in place on the buffer Linear returned.
        const n = this.batch * this.layers[i].outDim;
        const pre = this.layers[i].output;
        this.backend.elementwise.backward(this.activation, pre, this.hidden[i], g!, g!, n, this.alpha);
      }
      g = this.layers[i].backward(g!, i > 0 || needInputGrad);
    }
    return g;
  }
}
