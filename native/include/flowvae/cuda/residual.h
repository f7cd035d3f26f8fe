// Residual flows on the GPU (native/cuda/residual.cu): the mathematics,
// layouts and stash of flowvae/residual.h over device pointers (sizes stays
// on the host). One thread per row, the row's state in a global scratch;
// the network gradient of backward is summed per row into a scratch and added
// up in float64 in a fixed order (column_sums.cuh): the same bits every run.
// `bad` (device memory) is incremented by the number of rows that the cpu
// kernels would count.
//
// Not bound yet: the cuda backend runs this family on the cpu kernels
// (CUDA_PENDING_FAMILIES in src/backend/cuda/index.ts).
#pragma once
#include <cstddef>
#include <cstdint>

namespace flowvae {
namespace cuda {

// Most linear layers a network of this file may have.
constexpr std::size_t kResidualMaxLayers = 16;

// One block: power iteration on u, v (device, updated in place), sigma[0], out = W·min(1, c/σ̂).
void residual_normalize(const float* weight, float* u, float* v, float* out, float* sigma, std::size_t rows,
                        std::size_t cols, float c, std::size_t iterations);

void residual_forward(const float* x, const float* net, const uint32_t* sizes, std::size_t layers, int activation,
                      const float* noise, const float* terms, double p, std::size_t exact_terms, float* y,
                      float* log_det, float* stash, std::size_t batch, unsigned long long* bad);

void residual_backward(const float* x, const float* net, const uint32_t* sizes, std::size_t layers, int activation,
                       bool exact, const float* stash, const float* dy, const float* d_log_det, float* dx, float* d_net,
                       std::size_t batch, unsigned long long* bad);

void residual_inverse(const float* y, const float* net, const uint32_t* sizes, std::size_t layers, int activation,
                      const float* noise, const float* terms, double p, std::size_t exact_terms, double tol,
                      std::size_t max_iterations, float* x, float* log_det, std::size_t batch, unsigned long long* bad);

}  // namespace cuda
}  // namespace flowvae
