// Diagonal Gaussian kernels on the GPU (see flowvae/cuda/gaussian.h). Row
// sums: one warp per row, each lane summing its elements in float64, then a
// butterfly over the warp (a fixed order: the same bits on every run).
// Per-element terms are the cpu's float32 expressions.
#include <cuda_runtime.h>

#include "common.cuh"
#include "flowvae/cuda/gaussian.h"

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

__global__ void SampleDiagKernel(const float* mu, const float* logvar, const float* eps, float* z, float* logq,
                                 size_t batch, size_t dim) {
  const int lane = threadIdx.x % kWarp;
  for (size_t r = WarpIndex(); r < batch; r += WarpCount()) {
    double s = 0;
    for (size_t j = r * dim + lane; j < (r + 1) * dim; j += kWarp) {
      z[j] = mu[j] + expf(0.5f * logvar[j]) * eps[j];
      s += kLog2Pi + static_cast<double>(logvar[j]) + static_cast<double>(eps[j]) * eps[j];
    }
    s = WarpSum(s);
    if (lane == 0) logq[r] = static_cast<float>(-0.5 * s);
  }
}

__global__ void SampleDiagBackwardKernel(const float* logvar, const float* eps, const float* dz, const float* dlogq,
                                         float* dmu, float* dlogvar, size_t batch, size_t dim) {
  const size_t n = batch * dim;
  for (size_t j = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; j < n;
       j += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float half_dlogq = 0.5f * dlogq[j / dim];
    dmu[j] = dz[j];
    dlogvar[j] = 0.5f * dz[j] * eps[j] * expf(0.5f * logvar[j]) - half_dlogq;
  }
}

__global__ void LogStandardKernel(const float* x, float* out, size_t batch, size_t dim) {
  const int lane = threadIdx.x % kWarp;
  for (size_t r = WarpIndex(); r < batch; r += WarpCount()) {
    double s = 0;
    for (size_t j = r * dim + lane; j < (r + 1) * dim; j += kWarp) s += static_cast<double>(x[j]) * x[j];
    s = WarpSum(s);
    if (lane == 0) out[r] = static_cast<float>(-0.5 * (s + kLog2Pi * static_cast<double>(dim)));
  }
}

__global__ void LogStandardBackwardKernel(const float* x, const float* dout, float* dx, size_t batch, size_t dim) {
  const size_t n = batch * dim;
  for (size_t j = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; j < n;
       j += static_cast<size_t>(gridDim.x) * blockDim.x)
    dx[j] = -x[j] * dout[j / dim];
}

__global__ void KlStandardKernel(const float* mu, const float* logvar, float* out, size_t batch, size_t dim) {
  const int lane = threadIdx.x % kWarp;
  for (size_t r = WarpIndex(); r < batch; r += WarpCount()) {
    double s = 0;
    for (size_t j = r * dim + lane; j < (r + 1) * dim; j += kWarp) {
      const double lv = logvar[j];
      s += static_cast<double>(mu[j]) * mu[j] + expm1(lv) - lv;
    }
    s = WarpSum(s);
    if (lane == 0) out[r] = static_cast<float>(0.5 * s);
  }
}

__global__ void KlStandardBackwardKernel(const float* mu, const float* logvar, const float* dout, float* dmu,
                                         float* dlogvar, size_t batch, size_t dim) {
  const size_t n = batch * dim;
  for (size_t j = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; j < n;
       j += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float g = dout[j / dim];
    dmu[j] = g * mu[j];
    dlogvar[j] = 0.5f * g * expm1f(logvar[j]);
  }
}

unsigned ElementGrid(size_t n) { return detail::GridFor(n, 256 * 4); }

}  // namespace

void gaussian_sample_diag(const float* mu, const float* logvar, const float* eps, float* z, float* logq,
                          std::size_t batch, std::size_t dim) {
  if (batch == 0) return;
  SampleDiagKernel<<<RowGrid(batch), kRowThreads, 0, stream()>>>(mu, logvar, eps, z, logq, batch, dim);
  check_launch("gaussian_sample_diag");
}

void gaussian_sample_diag_backward(const float* logvar, const float* eps, const float* dz, const float* dlogq,
                                   float* dmu, float* dlogvar, std::size_t batch, std::size_t dim) {
  if (batch * dim == 0) return;
  SampleDiagBackwardKernel<<<ElementGrid(batch * dim), 256, 0, stream()>>>(logvar, eps, dz, dlogq, dmu, dlogvar, batch,
                                                                           dim);
  check_launch("gaussian_sample_diag_backward");
}

void gaussian_log_standard(const float* x, float* out, std::size_t batch, std::size_t dim) {
  if (batch == 0) return;
  LogStandardKernel<<<RowGrid(batch), kRowThreads, 0, stream()>>>(x, out, batch, dim);
  check_launch("gaussian_log_standard");
}

void gaussian_log_standard_backward(const float* x, const float* dout, float* dx, std::size_t batch, std::size_t dim) {
  if (batch * dim == 0) return;
  LogStandardBackwardKernel<<<ElementGrid(batch * dim), 256, 0, stream()>>>(x, dout, dx, batch, dim);
  check_launch("gaussian_log_standard_backward");
}

void gaussian_kl_standard(const float* mu, const float* logvar, float* out, std::size_t batch, std::size_t dim) {
  if (batch == 0) return;
  KlStandardKernel<<<RowGrid(batch), kRowThreads, 0, stream()>>>(mu, logvar, out, batch, dim);
  check_launch("gaussian_kl_standard");
}

void gaussian_kl_standard_backward(const float* mu, const float* logvar, const float* dout, float* dmu, float* dlogvar,
                                   std::size_t batch, std::size_t dim) {
  if (batch * dim == 0) return;
  KlStandardBackwardKernel<<<ElementGrid(batch * dim), 256, 0, stream()>>>(mu, logvar, dout, dmu, dlogvar, batch, dim);
  check_launch("gaussian_kl_standard_backward");
}

}  // namespace cuda
}  // namespace flowvae
