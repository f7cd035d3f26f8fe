import { ADAM_STEP_OPTION_KEYS, type AdamKernels } from '../kernels/adam';
import type { NativeAddon } from '../native';
import { checkOptions } from '../../validate';

type F = Float32Array;

/**
 * Native fused Adam/AdamW. Options go to the addon positionally; it checks
 * each value (with the reference's messages), every size and every length.
 */
export function cpuAdam(addon: NativeAddon): AdamKernels {
  return {
    step(params, grads, m, v, n, options) {
      const o = checkOptions(options, 'options', ADAM_STEP_OPTION_KEYS);
      return addon.adamStep(
        params as F,
        grads as F,
        m as F,
        v as F,
        n,
        o.lr as number,
        o.beta1 as number,
        o.beta2 as number,
        o.eps as number,
        o.weightDecay as number,
        o.decoupled as boolean,
        o.step as number,
        o.maxGradNorm as number,
      );
    },
  };
}
