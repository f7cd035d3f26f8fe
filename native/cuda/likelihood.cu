// Observation log-likelihoods on the GPU (see flowvae/cuda/likelihood.h).
// Row sums: one warp per row, float64 per lane, then a butterfly over the
// warp; the dlogvar batch sum: one thread per feature, rows in order, in
// float64 (the cpu's order). Per-element terms are the cpu's float32 expressions.
#include <cuda_runtime.h>

#include "common.cuh"
#include "flowvae/cuda/likelihood.h"

namespace flowvae {
namespace cuda {
namespace {

using detail::kRowThreads;
using detail::kWarp;
using detail::RowGrid;
using detail::WarpCount;
using detail::WarpIndex;
using detail::WarpSum;

constexpr double kLog2Pi = 1.8378770664093453;

// log(1 + e^l) = max(l, 0) + log1p(e^-|l|).
__device__ __forceinline__ float Softplus(float l) { return fmaxf(l, 0.0f) + log1pf(expf(-fabsf(l))); }

__device__ __forceinline__ float Sigmoid(float l) {
  if (l >= 0) return 1.0f / (1.0f + expf(-l));
  const float e = expf(l);
  return e / (1.0f + e);
}

__global__ void BernoulliKernel(const float* x, const float* logits, float* out, size_t batch, size_t dim) {
  const int lane = threadIdx.x % kWarp;
  for (size_t r = WarpIndex(); r < batch; r += WarpCount()) {
    double s = 0;
    for (size_t j = r * dim + lane; j < (r + 1) * dim; j += kWarp) s += x[j] * logits[j] - Softplus(logits[j]);
    s = WarpSum(s);
    if (lane == 0) out[r] = static_cast<float>(s);
  }
}

__global__ void BernoulliBackwardKernel(const float* x, const float* logits, const float* dout, float* dlogits,
                                        size_t batch, size_t dim) {
  const size_t n = batch * dim;
  for (size_t j = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; j < n;
       j += static_cast<size_t>(gridDim.x) * blockDim.x)
    dlogits[j] = dout[j / dim] * (x[j] - Sigmoid(logits[j]));
}

__global__ void GaussianKernel(const float* x, const float* mean, const float* logvar, float* out, size_t batch,
                               size_t dim) {
  const int lane = threadIdx.x % kWarp;
  // Σ logvar, the same in every warp (a fixed order).
  double lv = 0;
  for (size_t j = lane; j < dim; j += kWarp) lv += logvar[j];
  lv = WarpSum(lv);
  for (size_t r = WarpIndex(); r < batch; r += WarpCount()) {
    double s = 0;
    for (size_t j = lane; j < dim; j += kWarp) {
      const float d = x[r * dim + j] - mean[r * dim + j];
      s += d * d * expf(-logvar[j]);
    }
    s = WarpSum(s);
    if (lane == 0) out[r] = static_cast<float>(-0.5 * (s + lv + kLog2Pi * static_cast<double>(dim)));
  }
}

__global__ void GaussianMeanBackwardKernel(const float* x, const float* mean, const float* logvar, const float* dout,
                                           float* dmean, size_t batch, size_t dim) {
  const size_t n = batch * dim;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float d = x[i] - mean[i];
    dmean[i] = dout[i / dim] * d * expf(-logvar[i % dim]);
  }
}

__global__ void GaussianLogvarBackwardKernel(const float* x, const float* mean, const float* logvar, const float* dout,
                                             float* dlogvar, size_t batch, size_t dim) {
  for (size_t j = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; j < dim;
       j += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float precision = expf(-logvar[j]);
    double s = 0;
    for (size_t r = 0; r < batch; ++r) {
      const float d = x[r * dim + j] - mean[r * dim + j];
      s += dout[r] * 0.5 * (d * d * precision - 1.0);
    }
    dlogvar[j] += static_cast<float>(s);
  }
}

unsigned ElementGrid(size_t n) { return detail::GridFor(n, 256 * 4); }

}  // namespace

void likelihood_bernoulli(const float* x, const float* logits, float* out, std::size_t batch, std::size_t dim) {
  if (batch == 0) return;
  BernoulliKernel<<<RowGrid(batch), kRowThreads, 0, stream()>>>(x, logits, out, batch, dim);
  check_launch("likelihood_bernoulli");
}

void likelihood_bernoulli_backward(const float* x, const float* logits, const float* dout, float* dlogits,
                                   std::size_t batch, std::size_t dim) {
  if (batch * dim == 0) return;
  BernoulliBackwardKernel<<<ElementGrid(batch * dim), 256, 0, stream()>>>(x, logits, dout, dlogits, batch, dim);
  check_launch("likelihood_bernoulli_backward");
}

void likelihood_gaussian(const float* x, const float* mean, const float* logvar, float* out, std::size_t batch,
                         std::size_t dim) {
  if (batch == 0) return;
  GaussianKernel<<<RowGrid(batch), kRowThreads, 0, stream()>>>(x, mean, logvar, out, batch, dim);
  check_launch("likelihood_gaussian");
}

void likelihood_gaussian_backward(const float* x, const float* mean, const float* logvar, const float* dout,
                                  float* dmean, float* dlogvar, std::size_t batch, std::size_t dim) {
  if (batch * dim > 0) {
    GaussianMeanBackwardKernel<<<ElementGrid(batch * dim), 256, 0, stream()>>>(x, mean, logvar, dout, dmean, batch,
                                                                               dim);
    check_launch("likelihood_gaussian_backward");
  }
  if (dlogvar && dim > 0) {
    GaussianLogvarBackwardKernel<<<detail::GridFor(dim, 128), 128, 0, stream()>>>(x, mean, logvar, dout, dlogvar, batch,
                                                                                  dim);
    check_launch("likelihood_gaussian_logvar_backward");
  }
}

}  // namespace cuda
}  // namespace flowvae
