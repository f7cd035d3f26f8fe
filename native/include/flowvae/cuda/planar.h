// Planar flow stacks on the GPU (native/cuda/planar.cu): the mathematics,
// layouts and stash of flowvae/planar.h, over device pointers. One warp per
// row; rows of up to 256 elements stay in registers across all K layers.
// `bad` (device memory) is incremented by the number of rows that
// flowvae::planar_* would count, so the host reads it once at the end.
#pragma once
#include <cstddef>

namespace flowvae {
namespace cuda {

void planar_forward(const float* x, const float* params, bool amortized, float* y, float* log_det, float* layer_log_det,
                    float* stash, std::size_t batch, std::size_t dim, std::size_t layers, unsigned long long* bad);

// Shared: d_params [K·P] is accumulated into, the batch sum taken in float64
// in a fixed order (deterministic). Amortized: overwritten row by row.
void planar_backward(const float* y, const float* stash, const float* params, bool amortized, const float* dy,
                     const float* d_log_det, float* dx, float* d_params, std::size_t batch, std::size_t dim,
                     std::size_t layers, unsigned long long* bad);

// Per row in float64 (safeguarded Newton along w, as the cpu).
void planar_inverse(const float* y, const float* params, bool amortized, float* x, float* log_det, std::size_t batch,
                    std::size_t dim, std::size_t layers, unsigned long long* bad);

}  // namespace cuda
}  // namespace flowvae
