import type { RadialKernels } from '../kernels/radial';
import type { NativeAddon } from '../native';

type F = Float32Array;

/** Native radial-flow stacks; the binding checks every size, length and overlap. */
export function cpuRadial(addon: NativeAddon): RadialKernels {
  return {
    forward: (x, params, y, logDet, layerLogDet, stash, batch, dim, layers, amortized) =>
      addon.radialForward(x as F, params as F, y as F, logDet as F, layerLogDet as F | null, stash as F, batch, dim, layers, amortized),
    backward: (x, stash, params, dy, dLogDet, dx, dParams, batch, dim, layers, amortized) =>
      addon.radialBackward(x as F, stash as F, params as F, dy as F, dLogDet as F, dx as F, dParams as F, batch, dim, layers, amortized),
    inverse: (y, params, x, logDet, batch, dim, layers, amortized) =>
      addon.radialInverse(y as F, params as F, x as F, logDet as F, batch, dim, layers, amortized),
  };
}
