import { adamOptionsInBindingOrder, type AdamKernels } from '../kernels/adam';
import type { NativeAddon } from '../native';

type F = Float32Array;

/**
 * Native fused Adam/AdamW. Options go to the addon positionally; it checks
 * each value (with the reference's messages), every size, every length and
 * every overlap.
 */
export function cpuAdam(addon: NativeAddon): AdamKernels {
  return {
    step(params, grads, m, v, n, options) {
      return addon.adamStep(params as F, grads as F, m as F, v as F, n, ...adamOptionsInBindingOrder(options));
    },
    stepTensors(params, grads, m, v, options) {
      return addon.adamStepTensors(params as F[], grads as F[], m as F, v as F, ...adamOptionsInBindingOrder(options));
    },
  };
}
