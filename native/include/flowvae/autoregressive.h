// Autoregressive flow kernels (MADE, IAF, MAF): Germain et al. 2015,
// Kingma et al. 2016, Papamakarios et al. 2017.
//
// The masked network's output per row is ms [2·dim]: m (shift) in the first
// dim entries, s (IAF gate pre-activation) or α (MAF log-scale) in the last.
//   IAF:  σ = sigmoid(s), y = σ ⊙ z + (1 − σ) ⊙ m, log|det| = −Σ softplus(−s)
//   MAF:  u = (x − m) ⊙ exp(−α),                   log|det| = −Σ α
// The masked dense layers of MADE run their products through sgemm
// (dense.h), skipping the terms the mask zeroes.
#pragma once
#include <cstddef>
#include <cstdint>

#include "flowvae/cpu_features.h"

namespace flowvae {

// out[o, i] = weight[o, i] if out_degrees[o] ≥ in_degrees[i] (> when strict), else 0.
// out may be weight (in-place masking of a gradient).
void mask_weights(const float* weight, const uint32_t* out_degrees, const uint32_t* in_degrees, bool strict, float* out,
                  std::size_t out_dim, std::size_t in_dim);

// A MADE layer forward: masked_weight = weight ⊙ mask (as mask_weights),
// y [batch, out] = x [batch, in] · masked_weightᵀ + bias (bias may be null).
void masked_dense_forward(const float* x, const float* weight, const float* bias, const uint32_t* out_degrees,
                          const uint32_t* in_degrees, bool strict, float* masked_weight, float* y, std::size_t batch,
                          std::size_t in_dim, std::size_t out_dim);
// Its backward, given dy [batch, out] and the masked weight of the forward:
//   d_weight += (dyᵀ x) ⊙ mask   (entries the mask cuts are set to exactly 0)
//   d_bias   += Σ_rows dy
//   dx        = dy · masked_weight   (added to when accumulate_dx)
// Each output may be null to skip it.
void masked_dense_backward(const float* x, const float* masked_weight, const float* dy, const uint32_t* out_degrees,
                           const uint32_t* in_degrees, bool strict, float* dx, float* d_weight, float* d_bias,
                           std::size_t batch, std::size_t in_dim, std::size_t out_dim, bool accumulate_dx);

// IAF step: y [batch, dim], log_det [batch] (overwritten). `level` picks
// the SIMD path of the gate (capped at what this CPU supports).
void iaf_forward(const float* z, const float* ms, float* y, float* log_det, std::size_t batch, std::size_t dim,
                 SimdLevel level = simd_level());
// Given dy and d_log_det: dz [batch, dim] and dms [batch, 2·dim] (overwritten).
void iaf_backward(const float* z, const float* ms, const float* dy, const float* d_log_det, float* dz, float* dms,
                  std::size_t batch, std::size_t dim, SimdLevel level = simd_level());
// z = (y − (1 − σ) ⊙ m) / σ, log_det = Σ softplus(−s) = log|det ∂z/∂y| for fixed ms.
void iaf_inverse(const float* y, const float* ms, float* z, float* log_det, std::size_t batch, std::size_t dim);

// MAF step (density direction x → u): u [batch, dim], log_det [batch] (overwritten).
void maf_forward(const float* x, const float* ms, float* u, float* log_det, std::size_t batch, std::size_t dim);
// Given du and d_log_det: dx [batch, dim] and dms [batch, 2·dim] (overwritten).
void maf_backward(const float* x, const float* ms, const float* du, const float* d_log_det, float* dx, float* dms,
                  std::size_t batch, std::size_t dim);
// x = u ⊙ exp(α) + m, log_det = Σ α = log|det ∂x/∂u| for fixed ms.
void maf_inverse(const float* u, const float* ms, float* x, float* log_det, std::size_t batch, std::size_t dim);

}  // namespace flowvae
