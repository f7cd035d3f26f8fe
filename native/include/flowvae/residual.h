// Residual flows (Behrmann et al. 2019; Chen et al. 2019): f(x) = x + g(x),
// g an MLP with spectrally normalized linear maps (Lip(g) ≤ c < 1), so f is
// invertible by the fixed-point iteration x ← y − g(x).
//
// The network: sizes [L + 1] = [D, H_1, …, H_{L−1}, D]; net = W_0 [H_1, D] |
// b_0 [H_1] | W_1 | b_1 | … (weights [out, in], already normalized); per row
//   a_0 = W_0 x + b_0,  a_l = W_l φ(a_{l−1}) + b_l,  g(x) = a_{L−1},  y = x + g(x),
// φ after every layer but the last: activation 0 = LipSwish a·sigmoid(a)/1.1,
// 1 = ELU (α = 1).
//
// log|det(I + J_g)|: exact (noise null: D tangents, LU with partial pivoting,
// D ≤ kResidualExactMaxDim; the stash keeps (I + J_g)⁻¹) or the estimator of
// Chen et al. (noise [batch, D] Hutchinson vectors, terms [batch] series
// lengths n, term k weighted by 1/P(N ≥ k) = 1 for k ≤ exact_terms, else
// (1 − p)^−(k − exact_terms)); its gradient is the Neumann-series estimate
// wᵀ(∂J)v, w = Σ_{k=0}^{n} (−1)^k (Jᵀ)^k v / P(N ≥ k), stashed with v.
// A terms value is floored and clamped to [0, kResidualMaxTerms] (NaN: 0).
// The stash row: the hidden pre-activations, then D² (exact) or 2D values.
// See src/backend/kernels/residual.ts for the full contract.
//
// Rows run in parallel; the network gradient is summed in float64 partials per
// fixed chunk of rows, combined in chunk order: the same bits at any thread count.
#pragma once
#include <cstddef>
#include <cstdint>

namespace flowvae {

constexpr std::size_t kResidualExactMaxDim = 64;
constexpr std::size_t kResidualMaxTerms = 1000000;

// Sizes are valid when layers ≥ 1, every width ≥ 1 and sizes[layers] == sizes[0].
std::size_t residual_net_size(const uint32_t* sizes, std::size_t layers);
std::size_t residual_stash_size(const uint32_t* sizes, std::size_t layers, bool exact);

// Power iteration (iterations steps, u [rows] and v [cols] updated in place),
// sigma[0] = uᵀWv, out = W·min(1, c/σ̂).
void residual_normalize(const float* weight, float* u, float* v, float* out, float* sigma, std::size_t rows,
                        std::size_t cols, float c, std::size_t iterations);
// d_weight += d_out (σ̂ ≤ c) or (c/σ̂)·d_out − (c/σ̂²)⟨d_out, W⟩ u vᵀ.
void residual_normalize_backward(const float* weight, const float* u, const float* v, float sigma, const float* d_out,
                                 float* d_weight, std::size_t rows, std::size_t cols, float c);

// Returns the number of rows whose y or log_det is not finite. noise and terms
// are both null (exact) or both given (estimator).
std::size_t residual_forward(const float* x, const float* net, const uint32_t* sizes, std::size_t layers,
                             int activation, const float* noise, const float* terms, double p, std::size_t exact_terms,
                             float* y, float* log_det, float* stash, std::size_t batch);
// dx overwritten, d_net accumulated. Returns the number of rows whose dx is not finite.
std::size_t residual_backward(const float* x, const float* net, const uint32_t* sizes, std::size_t layers,
                              int activation, bool exact, const float* stash, const float* dy, const float* d_log_det,
                              float* dx, float* d_net, std::size_t batch);
// Fixed point x ← y − g(x) in float64 until ‖Δx‖∞ ≤ tol; log_det = −log|det(I + J_g(x))|.
// Rows not converged within max_iterations (or not finite) get a NaN log_det; returns their count.
std::size_t residual_inverse(const float* y, const float* net, const uint32_t* sizes, std::size_t layers,
                             int activation, const float* noise, const float* terms, double p, std::size_t exact_terms,
                             double tol, std::size_t max_iterations, float* x, float* log_det, std::size_t batch);

}  // namespace flowvae
