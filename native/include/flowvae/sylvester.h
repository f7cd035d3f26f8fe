// Sylvester flows (van den Berg et al. 2018): f(z) = z + Q R tanh(R~ Q^T z + b),
// log|det J| = sum_i log|1 + tanh'(a_i) R_ii R~_ii|, a stack of K layers per
// call. The mathematics, the parameter layout and the meaning of every
// argument are defined in src/backend/kernels/sylvester.ts; this header
// repeats only what the C++ caller needs. All arrays are row-major float32.
#pragma once
#include <cstddef>

#include "flowvae/cpu_features.h"

namespace flowvae {

enum class SylvesterVariant : int { kOrthogonal = 0, kHouseholder = 1, kTriangular = 2 };

struct SylvesterShape {
  SylvesterVariant variant;
  std::size_t dim;           // D
  std::size_t m;             // M (orthogonal: 1..D; otherwise D)
  std::size_t layers;        // K
  std::size_t householders;  // reflections per layer (householder), else 0
};

// Offsets of each parameter kind inside one parameter set (kind-major).
struct SylvesterLayout {
  std::size_t off_diagonal, diagonal, diagonal_tilde, bias, q;
  std::size_t q_raw_per_layer;  // D*M, H*D or 0
  std::size_t size;             // values per parameter set
  std::size_t q_per_layer;      // orthogonalized Q values per layer: D*M or 0
  std::size_t saved_per_row;    // K*(D+M)
};

SylvesterLayout sylvester_layout(const SylvesterShape& shape);

// Raw diagonal values are clamped to [-8, 8] before tanh (see the TS contract).
constexpr float kSylvesterDiagonalClamp = 8.0f;

// Most Björck steps or inverse iterations a call accepts: a budget, not a
// size, so an absurd value is refused instead of running for hours.
constexpr std::size_t kSylvesterMaxIterations = 10000;

// Builds Q [sets, K, q_per_layer]. Returns the worst max|Q^T Q - I| (orthogonal),
// 0 (other variants), NaN when some raw matrix/vector is zero or not finite.
double sylvester_orthogonalize(const SylvesterShape& shape, std::size_t sets, const float* params, float* q,
                               std::size_t max_steps, double tolerance);

// Writes the q section of grad_params [sets, size] from grad_q [sets, K, q_per_layer].
void sylvester_orthogonalize_backward(const SylvesterShape& shape, std::size_t sets, const float* params,
                                      const float* grad_q, float* grad_params, std::size_t max_steps, double tolerance);

// saved may be null (nothing kept for backward).
void sylvester_forward(const SylvesterShape& shape, std::size_t batch, bool amortized, const float* x,
                       const float* params, const float* q, float* y, float* log_det, float* saved);

// grad_params: [size] (shared, summed over rows) or [batch, size]; its q section is left as is.
// grad_q: [sets, K, q_per_layer] (null allowed for the triangular variant).
void sylvester_backward(const SylvesterShape& shape, std::size_t batch, bool amortized, const float* params,
                        const float* q, const float* saved, const float* grad_y, const float* grad_log_det,
                        float* grad_x, float* grad_params, float* grad_q);

// Returns the number of rows that did not converge (their x and log_det are NaN).
std::size_t sylvester_inverse(const SylvesterShape& shape, std::size_t batch, bool amortized, const float* y,
                              const float* params, const float* q, float* x, float* log_det, std::size_t max_iterations,
                              double tolerance);

// The same kernels on an explicit SIMD path (levels above simd_level() fall
// back to it). Used by the native tests to cover every path on one machine.
double sylvester_orthogonalize(SimdLevel level, const SylvesterShape& shape, std::size_t sets, const float* params,
                               float* q, std::size_t max_steps, double tolerance);
void sylvester_orthogonalize_backward(SimdLevel level, const SylvesterShape& shape, std::size_t sets,
                                      const float* params, const float* grad_q, float* grad_params,
                                      std::size_t max_steps, double tolerance);
void sylvester_forward(SimdLevel level, const SylvesterShape& shape, std::size_t batch, bool amortized, const float* x,
                       const float* params, const float* q, float* y, float* log_det, float* saved);
void sylvester_backward(SimdLevel level, const SylvesterShape& shape, std::size_t batch, bool amortized,
                        const float* params, const float* q, const float* saved, const float* grad_y,
                        const float* grad_log_det, float* grad_x, float* grad_params, float* grad_q);

}  // namespace flowvae
