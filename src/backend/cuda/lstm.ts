import type { LstmKernels } from '../kernels/lstm';
import type { CudaAddon } from '../native';
import { cpuLstm } from '../cpu/lstm';

/**
 * LSTM kernels on the GPU (native/cuda/lstm.cu): the cuda addon's bindings
 * have the cpu ones' names and arguments, so the cpu wrapper serves both.
 */
export function cudaLstm(cuda: CudaAddon): LstmKernels {
  return cpuLstm(cuda as unknown as Parameters<typeof cpuLstm>[0]);
}
