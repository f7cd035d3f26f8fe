import { ADAM_STEP_OPTION_KEYS, type AdamKernels } from '../kernels/adam';
import type { CudaAddon } from '../native';
import { checkOptions } from '../../validate';

type F = Float32Array;

/** Fused Adam/AdamW on the GPU (native/cuda/adam.cu); options go positionally, checked by the binding. */
export function cudaAdam(cuda: CudaAddon): AdamKernels {
  return {
    step(params, grads, m, v, n, options) {
      const o = checkOptions(options, 'options', ADAM_STEP_OPTION_KEYS);
      return cuda.adamStep(
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
