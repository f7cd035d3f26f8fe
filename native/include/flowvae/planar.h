// Planar flows (Rezende & Mohamed 2015): a stack of K layers
//   f_k(z) = z + û_k tanh(w_kᵀz + b_k),
//   û = u + (m(wᵀu) − wᵀu) w / ‖w‖²,  m(x) = −1 + softplus(x),
//   log|det J_k| = log(1 + (1 − tanh²(w_kᵀz + b_k)) · w_kᵀû_k),  w_kᵀû_k = m(w_kᵀu_k),
// run as one call over a batch [batch, dim]: each row stays in L1 across all
// K layers. When ‖w_k‖ = 0 the layer is z + u_k tanh(b_k) (û = u, log-det 0):
// the reparametrization is undefined there and not needed for invertibility.
//
// Parameter layout (P = 2·dim + 1 per layer), float32:
//   shared:    params [K·P] = u [K, dim] | w [K, dim] | b [K]
//   amortized: params [batch, K·P], every row laid out like the shared array.
// The stash [batch, K] holds the pre-activations w_kᵀz_k + b_k that backward
// reads; backward reconstructs the layer inputs from y, layer by layer.
#pragma once
#include <cstddef>

namespace flowvae {

inline std::size_t planar_param_size(std::size_t dim) { return 2 * dim + 1; }

// x, y [batch, dim] (y may be x); log_det [batch] (sum over layers);
// layer_log_det [batch, K] or null; stash [batch, K].
// Returns the number of rows whose y or log_det is not finite.
std::size_t planar_forward(const float* x, const float* params, bool amortized, float* y, float* log_det,
                           float* layer_log_det, float* stash, std::size_t batch, std::size_t dim, std::size_t layers);

// Backpropagates through the forward that produced y and stash. dy [batch, dim],
// d_log_det [batch] (∂L/∂log_det); writes dx [batch, dim] (may be dy).
// Shared: d_params [K·P] is accumulated into (+=), summed over the batch.
// Amortized: d_params [batch, K·P] is overwritten, one row per example.
// Returns the number of rows whose dx (or amortized d_params row) is not finite.
std::size_t planar_backward(const float* y, const float* stash, const float* params, bool amortized, const float* dy,
                            const float* d_log_det, float* dx, float* d_params, std::size_t batch, std::size_t dim,
                            std::size_t layers);

// Inverts the stack: x [batch, dim] from y, log_det [batch] = log|det ∂x/∂y|.
// Each layer solves the monotone scalar equation along w (safeguarded Newton,
// float64). Rows that do not converge get a NaN log_det; returns their count.
std::size_t planar_inverse(const float* y, const float* params, bool amortized, float* x, float* log_det,
                           std::size_t batch, std::size_t dim, std::size_t layers);

}  // namespace flowvae
