import { adamOptionsInBindingOrder, type AdamKernels } from '../kernels/adam';
import type { CudaAddon } from '../native';
import { checkTensorStep } from '../reference/adam';

type F = Float32Array;

/**
 * Fused Adam/AdamW on the GPU (native/cuda/adam.cu); options go
 * positionally, checked by the binding. stepTensors stages the tensors
 * through one flat host buffer (every call copies to the GPU and back
 * anyway) and runs the flat step on it.
 */
export function cudaAdam(cuda: CudaAddon): AdamKernels {
  let flatParams = new Float32Array(0);
  let flatGrads = new Float32Array(0);
  return {
    step(params, grads, m, v, n, options) {
      return cuda.adamStep(params as F, grads as F, m as F, v as F, n, ...adamOptionsInBindingOrder(options));
    },
    stepTensors(params, grads, m, v, options) {
      const args = adamOptionsInBindingOrder(options);
      const total = checkTensorStep(params, grads, m, v, 'float32');
      if (flatParams.length !== total) {
        flatParams = new Float32Array(total);
        flatGrads = new Float32Array(total);
      }
      let offset = 0;
      for (let k = 0; k < params.length; k++) {
        flatParams.set(params[k], offset);
        flatGrads.set(grads[k], offset);
        offset += params[k].length;
      }
      const norm = cuda.adamStep(flatParams, flatGrads, m as F, v as F, total, ...args);
      offset = 0;
      for (const p of params) {
        p.set(flatParams.subarray(offset, offset + p.length));
        offset += p.length;
      }
      return norm;
    },
  };
}
