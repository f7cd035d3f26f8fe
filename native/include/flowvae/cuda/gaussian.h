// Diagonal Gaussian kernels on the GPU (native/cuda/gaussian.cu), as
// flowvae/gaussian.h defines them, over device pointers. Row sums in float64.
#pragma once
#include <cstddef>

namespace flowvae {
namespace cuda {

void gaussian_sample_diag(const float* mu, const float* logvar, const float* eps, float* z, float* logq,
                          std::size_t batch, std::size_t dim);
void gaussian_sample_diag_backward(const float* logvar, const float* eps, const float* dz, const float* dlogq,
                                   float* dmu, float* dlogvar, std::size_t batch, std::size_t dim);
void gaussian_log_standard(const float* x, float* out, std::size_t batch, std::size_t dim);
void gaussian_log_standard_backward(const float* x, const float* dout, float* dx, std::size_t batch, std::size_t dim);
void gaussian_kl_standard(const float* mu, const float* logvar, float* out, std::size_t batch, std::size_t dim);
void gaussian_kl_standard_backward(const float* mu, const float* logvar, const float* dout, float* dmu, float* dlogvar,
                                   std::size_t batch, std::size_t dim);

}  // namespace cuda
}  // namespace flowvae
