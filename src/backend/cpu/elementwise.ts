import { ACTIVATIONS, type Activation, type ElementwiseKernels } from '../kernels/elementwise';
import type { NativeAddon } from '../native';
import { checkOneOf } from '../../validate';

type F = Float32Array;

const ACTIVATION_INDEX = new Map<unknown, number>(ACTIVATIONS.map((name, index) => [name, index]));

/** The addon takes the activation as its index in ACTIVATIONS; an unknown name throws as the reference does. */
function activationIndex(kind: Activation): number {
  return ACTIVATION_INDEX.get(kind) ?? ACTIVATIONS.indexOf(checkOneOf(kind, 'kind', ACTIVATIONS));
}

/** Native activations; the binding checks every size and length. */
export function cpuElementwise(addon: NativeAddon): ElementwiseKernels {
  return {
    forward: (kind, x, y, n, alpha) => addon.elementwiseForward(activationIndex(kind), x as F, y as F, n, alpha),
    backward: (kind, x, y, dy, dx, n, alpha) => addon.elementwiseBackward(activationIndex(kind), x as F, y as F, dy as F, dx as F, n, alpha),
  };
}
