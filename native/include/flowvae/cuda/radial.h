// Radial flow stacks on the GPU (native/cuda/radial.cu): the mathematics,
// layouts and stash of flowvae/radial.h, over device pointers, one warp per
// row (rows of up to 256 elements in registers). `bad` as in cuda/planar.h.
#pragma once
#include <cstddef>

namespace flowvae {
namespace cuda {

void radial_forward(const float* x, const float* params, bool amortized, float* y, float* log_det, float* layer_log_det,
                    float* stash, std::size_t batch, std::size_t dim, std::size_t layers, unsigned long long* bad);

// Shared: d_params accumulated into (float64 batch sum, fixed order);
// amortized: overwritten row by row.
void radial_backward(const float* x, const float* stash, const float* params, bool amortized, const float* dy,
                     const float* d_log_det, float* dx, float* d_params, std::size_t batch, std::size_t dim,
                     std::size_t layers, unsigned long long* bad);

// Closed form per row in float64, as the cpu.
void radial_inverse(const float* y, const float* params, bool amortized, float* x, float* log_det, std::size_t batch,
                    std::size_t dim, std::size_t layers, unsigned long long* bad);

}  // namespace cuda
}  // namespace flowvae
