// Monotone rational-quadratic spline kernels (neural spline flows, Durkan et
// al. 2019), elementwise over columns [start, start + width) of [batch, dim]
// arrays, with identity tails outside [−B, B).
//
// Parameters per row, blocked like MADE's outputs: params [batch, P, width],
// P = 3K − 1, entry (r, j, i) at (r·P + j)·width + i holds for element i
//   j in [0, K):       θw, unnormalized bin widths
//   j in [K, 2K):      θh, unnormalized bin heights
//   j in [2K, 3K − 1): θd, unnormalized derivatives at the K − 1 interior knots
// and they mean (min = 1e-3 for widths, heights and derivatives, as in the
// paper's code):
//   w = min + (1 − K·min)·softmax(θw),   x_k = −B + 2B·Σ_{j<k} w_j  (x_0 = −B, x_K = B)
//   h likewise from θh,                  y_k likewise
//   d_k = min + softplus(θd_{k−1} + c),  c = log(e^{1 − min} − 1), k = 1 … K − 1
//   d_0 = d_K = 1 (the slopes of the identity tails)
// so θ = 0 gives equal bins and unit slopes: the identity map.
// In bin k (x_k ≤ x < x_{k+1}), with W, H its width and height, s = H/W,
// ξ = (x − x_k)/W, t = ξ(1 − ξ):
//   y = y_k + H (s ξ² + d_k t) / (s + (d_k + d_{k+1} − 2s) t)
//   dy/dx = s² (d_{k+1} ξ² + 2 s t + d_k (1 − ξ)²) / (s + (d_k + d_{k+1} − 2s) t)²
// Outside [−B, B) the map is the identity with log-det 0 (continuous with
// continuous slope at ±B). Every knot maps exactly onto its height.
#pragma once
#include <cstddef>

namespace flowvae {

// Smallest normalized bin width, bin height and derivative.
constexpr double kSplineMinBin = 1e-3;
constexpr double kSplineMinDerivative = 1e-3;
// K·min must stay below 1.
constexpr std::size_t kSplineMaxBins = 999;

// y = spline(x) on columns [start, start + width) of x and y ([batch, dim]);
// the other columns of y are not written. log_det [batch] (overwritten) is the
// sum of log dy/dx over the row's transformed elements.
void spline_forward(const float* x, const float* params, float* y, float* log_det, std::size_t batch, std::size_t dim,
                    std::size_t width, std::size_t start, std::size_t bins, float bound);

// Backpropagates dy ([batch, dim], read on the window) and d_log_det [batch]:
// dx on the window columns (other columns not written) and d_params [batch, P,
// width] (overwritten).
void spline_backward(const float* x, const float* params, const float* dy, const float* d_log_det, float* dx,
                     float* d_params, std::size_t batch, std::size_t dim, std::size_t width, std::size_t start,
                     std::size_t bins, float bound);

// x = spline⁻¹(y) (analytic: the root of a quadratic, in its stable form);
// log_det = −Σ log dy/dx = log|det ∂x/∂y| for fixed params.
void spline_inverse(const float* y, const float* params, float* x, float* log_det, std::size_t batch, std::size_t dim,
                    std::size_t width, std::size_t start, std::size_t bins, float bound);

}  // namespace flowvae
