// Radial flows (Rezende & Mohamed 2015): a stack of K layers
//   f_k(z) = z + β h(α, r)(z − z0),  r = ‖z − z0‖,  h = 1/(α + r),
//   α = softplus(α̃),  β = −α + softplus(β̃)   (so 1 + βh > 0: invertible),
//   log|det J_k| = (D − 1) log(1 + βh) + log(1 + βh + βh'r),  h' = −1/(α + r)²,
// run as one call over a batch [batch, dim].
//
// Parameter layout (P = dim + 2 per layer), float32:
//   shared:    params [K·P] = z0 [K, dim] | α̃ [K] | β̃ [K]
//   amortized: params [batch, K·P], every row laid out like the shared array.
// The stash [batch, K] holds the radius r_k of each layer; backward rebuilds
// the layer inputs from x with it (no square roots or reductions repeated).
#pragma once
#include <cstddef>

namespace flowvae {

inline std::size_t radial_param_size(std::size_t dim) { return dim + 2; }

// x, y [batch, dim]; log_det [batch] (sum over layers); layer_log_det
// [batch, K] or null; stash [batch, K]. Returns the number of rows whose y
// or log_det is not finite.
std::size_t radial_forward(const float* x, const float* params, bool amortized, float* y, float* log_det,
                           float* layer_log_det, float* stash, std::size_t batch, std::size_t dim, std::size_t layers);

// Backpropagates through the forward of x that produced stash. dy [batch,
// dim], d_log_det [batch]; writes dx [batch, dim]. Shared: d_params [K·P] is
// accumulated into (+=). Amortized: d_params [batch, K·P] is overwritten.
// Returns the number of rows whose dx (or amortized d_params row) is not finite.
std::size_t radial_backward(const float* x, const float* stash, const float* params, bool amortized, const float* dy,
                            const float* d_log_det, float* dx, float* d_params, std::size_t batch, std::size_t dim,
                            std::size_t layers);

// Inverts the stack in float64 (closed form: the radius solves a quadratic).
// x [batch, dim], log_det [batch] = log|det ∂x/∂y|. Rows with a non-finite
// result get a NaN log_det; returns their count.
std::size_t radial_inverse(const float* y, const float* params, bool amortized, float* x, float* log_det,
                           std::size_t batch, std::size_t dim, std::size_t layers);

}  // namespace flowvae
