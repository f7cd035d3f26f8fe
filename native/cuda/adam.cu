// Fused Adam/AdamW on the GPU (see flowvae/cuda/adam.h).
//
// The norm: each block of 256 threads sums the squares of one fixed chunk of
// kChunk gradients in float64 (thread t takes elements t, t + 256, …, then a
// tree in shared memory), and one block adds the chunk sums in a fixed tree.
// The layout depends on n only, so the norm is the same bits on every run.
// Without clipping one kernel updates and sums; with clipping the scale is
// computed on the device from the norm, so the host never waits in between.
//
// Compiled with -fmad=false (CMakeLists.txt): the update is the cpu's float32
// sequence of separately rounded operations.
#include <cuda_runtime.h>

#include <cmath>

#include "common.cuh"
#include "flowvae/cuda/adam.h"

namespace flowvae {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr std::size_t kChunk = 8192;  // gradients per norm chunk (32 per thread)

// The loop constants of native/cpu/adam.cc, computed on the host in the same way.
struct Coefficients {
  float l2, decay, beta1, one_minus_beta1, beta2, one_minus_beta2, bias2_sqrt, eps, step_size;
  bool add_l2, apply_decay;
};

__device__ __forceinline__ void UpdateOne(const Coefficients& c, bool clip, float scale, float& param, float grad,
                                          float& m, float& v) {
  float g = grad;
  if (clip) g = g * scale;
  float p = param;
  if (c.add_l2) g = g + c.l2 * p;
  if (c.apply_decay) p = p * c.decay;
  m = c.beta1 * m + c.one_minus_beta1 * g;
  v = c.beta2 * v + c.one_minus_beta2 * (g * g);
  const float denom = sqrtf(v) / c.bias2_sqrt + c.eps;
  param = p - c.step_size * (m / denom);
}

// Tree sum of one double per thread over the block (kThreads), fixed order.
__device__ double BlockSum(double v) {
  __shared__ double sums[kThreads];
  sums[threadIdx.x] = v;
  __syncthreads();
  for (int width = kThreads / 2; width > 0; width >>= 1) {
    if (threadIdx.x < width) sums[threadIdx.x] += sums[threadIdx.x + width];
    __syncthreads();
  }
  return sums[0];
}

// kUpdate: update only; kNorm: chunk sums only; kBoth: update and chunk sums.
enum Pass { kNorm, kUpdate, kBoth };

// One block per chunk (grid-stride over chunks). `scale` (device) is read when clipping.
template <Pass kPass>
__global__ void __launch_bounds__(kThreads)
    ChunkKernel(float* params, const float* grads, float* m, float* v, size_t n, Coefficients c, const float* scale,
                double* chunk_sums, size_t chunks) {
  const bool clip = scale != nullptr;
  const float s = clip ? *scale : 1.0f;
  for (size_t chunk = blockIdx.x; chunk < chunks; chunk += gridDim.x) {
    const size_t begin = chunk * kChunk;
    const size_t end = begin + kChunk < n ? begin + kChunk : n;
    double squares = 0.0;
    for (size_t i = begin + threadIdx.x; i < end; i += kThreads) {
      const float g = grads[i];
      if (kPass != kUpdate) squares += static_cast<double>(g) * g;
      if (kPass != kNorm) UpdateOne(c, clip, s, params[i], g, m[i], v[i]);
    }
    if (kPass != kUpdate) {
      const double total = BlockSum(squares);
      if (threadIdx.x == 0) chunk_sums[chunk] = total;
      __syncthreads();  // `sums` is reused by the next chunk
    }
  }
}

// One block: norm = √(Σ chunk sums); with clipping, the scale as the cpu computes it.
__global__ void __launch_bounds__(kThreads)
    FinishNormKernel(const double* chunk_sums, size_t chunks, double max_norm, double* norm, float* scale) {
  double partial = 0.0;
  for (size_t i = threadIdx.x; i < chunks; i += kThreads) partial += chunk_sums[i];
  const double total = BlockSum(partial);
  if (threadIdx.x == 0) {
    const double value = sqrt(total);
    *norm = value;
    if (scale) {
      // As torch.nn.utils.clip_grad_norm_; a NaN norm gives a NaN scale.
      const double ratio = max_norm / (value + 1e-6);
      *scale = static_cast<float>(isnan(ratio) ? ratio : (ratio < 1.0 ? ratio : 1.0));
    }
  }
}

}  // namespace

void adam_step(float* params, const float* grads, float* m, float* v, std::size_t n, const AdamOptions& o,
               double* norm) {
  if (n == 0) {
    fill_zero(norm, sizeof(double));
    return;
  }
  const double step = static_cast<double>(o.step);
  const double bias1 = 1.0 - std::pow(o.beta1, step);
  const double bias2 = 1.0 - std::pow(o.beta2, step);
  Coefficients c{};
  c.add_l2 = !o.decoupled && o.weight_decay > 0.0;
  c.apply_decay = o.decoupled && o.weight_decay > 0.0;
  c.l2 = static_cast<float>(o.weight_decay);
  c.decay = static_cast<float>(1.0 - o.lr * o.weight_decay);
  c.beta1 = static_cast<float>(o.beta1);
  c.one_minus_beta1 = static_cast<float>(1.0 - o.beta1);
  c.beta2 = static_cast<float>(o.beta2);
  c.one_minus_beta2 = static_cast<float>(1.0 - o.beta2);
  c.bias2_sqrt = static_cast<float>(std::sqrt(bias2));
  c.eps = static_cast<float>(o.eps);
  c.step_size = static_cast<float>(o.lr / bias1);

  const std::size_t chunks = (n + kChunk - 1) / kChunk;
  DeviceBuffer<double> chunk_sums(chunks);
  const unsigned grid = detail::GridFor(chunks, 1);
  cudaStream_t s = stream();
  if (o.max_grad_norm <= 0.0) {
    ChunkKernel<kBoth><<<grid, kThreads, 0, s>>>(params, grads, m, v, n, c, nullptr, chunk_sums.get(), chunks);
    check_launch("adam_update");
    FinishNormKernel<<<1, kThreads, 0, s>>>(chunk_sums.get(), chunks, 0.0, norm, nullptr);
    check_launch("adam_norm");
    return;
  }
  DeviceBuffer<float> scale(1);
  ChunkKernel<kNorm><<<grid, kThreads, 0, s>>>(params, grads, m, v, n, c, nullptr, chunk_sums.get(), chunks);
  check_launch("adam_norm");
  FinishNormKernel<<<1, kThreads, 0, s>>>(chunk_sums.get(), chunks, o.max_grad_norm, norm, scale.get());
  check_launch("adam_clip_scale");
  ChunkKernel<kUpdate><<<grid, kThreads, 0, s>>>(params, grads, m, v, n, c, scale.get(), nullptr, chunks);
  check_launch("adam_update");
}

}  // namespace cuda
}  // namespace flowvae
