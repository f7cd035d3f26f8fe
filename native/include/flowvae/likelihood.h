// Observation log-likelihoods (see src/backend/kernels/likelihood.ts).
#pragma once
#include <cstddef>

#include "flowvae/cpu_features.h"

namespace flowvae {

// `level` picks the SIMD path of the per-element terms (capped at what this CPU supports).
void likelihood_bernoulli(const float* x, const float* logits, float* out, std::size_t batch, std::size_t dim,
                          SimdLevel level = simd_level());
void likelihood_bernoulli_backward(const float* x, const float* logits, const float* dout, float* dlogits,
                                   std::size_t batch, std::size_t dim, SimdLevel level = simd_level());
void likelihood_gaussian(const float* x, const float* mean, const float* logvar, float* out, std::size_t batch,
                         std::size_t dim);
// dlogvar (may be null) accumulates over the batch.
void likelihood_gaussian_backward(const float* x, const float* mean, const float* logvar, const float* dout,
                                  float* dmean, float* dlogvar, std::size_t batch, std::size_t dim);

}  // namespace flowvae
