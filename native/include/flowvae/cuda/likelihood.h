// Observation log-likelihoods on the GPU (native/cuda/likelihood.cu), as
// flowvae/likelihood.h defines them, over device pointers. Row sums and the
// dlogvar sum over the batch in float64, in a fixed order.
#pragma once
#include <cstddef>

namespace flowvae {
namespace cuda {

void likelihood_bernoulli(const float* x, const float* logits, float* out, std::size_t batch, std::size_t dim);
void likelihood_bernoulli_backward(const float* x, const float* logits, const float* dout, float* dlogits,
                                   std::size_t batch, std::size_t dim);
void likelihood_gaussian(const float* x, const float* mean, const float* logvar, float* out, std::size_t batch,
                         std::size_t dim);
// dlogvar (may be null) accumulates over the batch.
void likelihood_gaussian_backward(const float* x, const float* mean, const float* logvar, const float* dout,
                                  float* dmean, float* dlogvar, std::size_t batch, std::size_t dim);

}  // namespace cuda
}  // namespace flowvae
