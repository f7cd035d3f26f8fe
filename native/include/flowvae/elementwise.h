// Elementwise activations and their derivatives over float arrays.
//
//   relu(x) = max(x, 0)                      relu'(0) = 0
//   leaky_relu(x) = x > 0 ? x : alpha·x      derivative at 0 is alpha
//   elu(x) = x > 0 ? x : alpha·(eˣ − 1)      derivative at 0 is alpha
//   tanh, sigmoid(x) = 1 / (1 + e⁻ˣ)
//   softplus(x) = max(x, 0) + log1p(e^−|x|)
//
// NaN inputs give NaN outputs (and pass the incoming gradient through the
// piecewise-linear kinds, whose branch test is `x <= 0`). The AVX2/AVX-512
// paths use vector exp/log with range reduction and minimax polynomials,
// within a few float32 ulps of the exact function (native/test measures the
// bound); the scalar path calls libm.
//
// Arrays may coincide exactly (y == x, dx == dy) but must not partially overlap.
#pragma once
#include <cstddef>

#include "flowvae/cpu_features.h"

namespace flowvae {

// Same order as ACTIVATIONS in src/backend/kernels/elementwise.ts: the binding
// receives the index.
enum class Activation : int {
  kIdentity = 0,
  kRelu = 1,
  kLeakyRelu = 2,
  kElu = 3,
  kTanh = 4,
  kSigmoid = 5,
  kSoftplus = 6,
};
constexpr int kNumActivations = 7;

// y[i] = f(x[i]), threads over large n. `level` picks the SIMD path (capped at
// what this CPU supports); tests pass it explicitly to cover every path.
void elementwise_forward(Activation kind, const float* x, float* y, std::size_t n, float alpha,
                         SimdLevel level = simd_level());

// dx[i] = dy[i] · f'(x[i]); y is the forward output (tanh' = 1 − y², sigmoid' = y(1 − y)).
void elementwise_backward(Activation kind, const float* x, const float* y, const float* dy, float* dx, std::size_t n,
                          float alpha, SimdLevel level = simd_level());

// The same on the calling thread only, for kernels that already run inside
// parallel_for (e.g. a flow applying tanh to its rows).
void elementwise_forward_serial(Activation kind, const float* x, float* y, std::size_t n, float alpha,
                                SimdLevel level = simd_level());
void elementwise_backward_serial(Activation kind, const float* x, const float* y, const float* dy, float* dx,
                                 std::size_t n, float alpha, SimdLevel level = simd_level());

// Single-threaded array helpers for other kernels; y may equal x.
inline void tanh_array(const float* x, float* y, std::size_t n) {
  elementwise_forward_serial(Activation::kTanh, x, y, n, 0.0f);
}
inline void sigmoid_array(const float* x, float* y, std::size_t n) {
  elementwise_forward_serial(Activation::kSigmoid, x, y, n, 0.0f);
}
inline void softplus_array(const float* x, float* y, std::size_t n) {
  elementwise_forward_serial(Activation::kSoftplus, x, y, n, 0.0f);
}
// y[i] = e^x[i] (overflows to +inf above ~88.72, underflows through the subnormals to 0).
void exp_array(const float* x, float* y, std::size_t n, SimdLevel level = simd_level());

}  // namespace flowvae
