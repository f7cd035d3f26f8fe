// Elementwise activations (see flowvae/elementwise.h). One algorithm per
// function, written once in elementwise_vec.inc and compiled for AVX2+FMA and
// for AVX-512F; the scalar path (CPUs without AVX2) uses libm. The AVX2 and
// AVX-512 paths do identical arithmetic, so they agree bit for bit.
#include "flowvae/elementwise.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "flowvae/parallel.h"
#include "flowvae/simd_ops.h"

namespace flowvae {
namespace {

// Elements per thread chunk: below two chunks the call stays on one thread,
// where thread wake-up would cost more than the work.
constexpr std::size_t kGrain = 65536;

namespace scalar {

// e^−|x| based sigmoid, as in the vector path.
inline float sigmoid(float x) {
  float e = std::exp(-std::fabs(x));
  return (x < 0.0f ? e : 1.0f) / (1.0f + e);
}

inline float softplus(float x) { return (x > 0.0f ? x : 0.0f) + std::log1p(std::exp(-std::fabs(x))); }

void forward(Activation kind, const float* x, float* y, std::size_t n, float alpha) {
  switch (kind) {
    case Activation::kIdentity:
      if (y != x) std::memmove(y, x, n * sizeof(float));
      break;
    case Activation::kRelu:
      for (std::size_t i = 0; i < n; ++i) y[i] = x[i] <= 0.0f ? 0.0f : x[i];
      break;
    case Activation::kLeakyRelu:
      for (std::size_t i = 0; i < n; ++i) y[i] = x[i] <= 0.0f ? alpha * x[i] : x[i];
      break;
    case Activation::kElu:
      for (std::size_t i = 0; i < n; ++i) y[i] = x[i] <= 0.0f ? alpha * std::expm1(x[i]) : x[i];
      break;
    case Activation::kTanh:
      for (std::size_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
      break;
    case Activation::kSigmoid:
      for (std::size_t i = 0; i < n; ++i) y[i] = sigmoid(x[i]);
      break;
    case Activation::kSoftplus:
      for (std::size_t i = 0; i < n; ++i) y[i] = softplus(x[i]);
      break;
  }
}

void backward(Activation kind, const float* x, const float* y, const float* dy, float* dx, std::size_t n, float alpha) {
  switch (kind) {
    case Activation::kIdentity:
      if (dx != dy) std::memmove(dx, dy, n * sizeof(float));
      break;
    case Activation::kRelu:
      for (std::size_t i = 0; i < n; ++i) dx[i] = x[i] <= 0.0f ? 0.0f : dy[i];
      break;
    case Activation::kLeakyRelu:
      for (std::size_t i = 0; i < n; ++i) dx[i] = x[i] <= 0.0f ? alpha * dy[i] : dy[i];
      break;
    case Activation::kElu:
      for (std::size_t i = 0; i < n; ++i) dx[i] = x[i] <= 0.0f ? dy[i] * (alpha * std::exp(x[i])) : dy[i];
      break;
    case Activation::kTanh:
      for (std::size_t i = 0; i < n; ++i) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
      break;
    case Activation::kSigmoid:
      for (std::size_t i = 0; i < n; ++i) dx[i] = dy[i] * (y[i] * (1.0f - y[i]));
      break;
    case Activation::kSoftplus:
      for (std::size_t i = 0; i < n; ++i) dx[i] = dy[i] * sigmoid(x[i]);
      break;
  }
}

void exp_range(const float* x, float* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

}  // namespace scalar

#if FLOWVAE_SIMD_X86
FLOWVAE_TARGET_AVX2
namespace avx2 {
using namespace simd::avx2;
#include "elementwise_vec.inc"
}  // namespace avx2
FLOWVAE_TARGET_END

FLOWVAE_TARGET_AVX512
namespace avx512 {
using namespace simd::avx512;
#include "elementwise_vec.inc"
}  // namespace avx512
FLOWVAE_TARGET_END
#endif  // FLOWVAE_SIMD_X86

struct ForwardArgs {
  Activation kind;
  const float* x;
  float* y;
  float alpha;
  SimdLevel level;
};

struct BackwardArgs {
  Activation kind;
  const float* x;
  const float* y;
  const float* dy;
  float* dx;
  float alpha;
  SimdLevel level;
};

}  // namespace

void elementwise_forward_serial(Activation kind, const float* x, float* y, std::size_t n, float alpha,
                                SimdLevel level) {
  if (n == 0) return;
  switch (simd::capped(level)) {
#if FLOWVAE_SIMD_X86
    case SimdLevel::kAvx512: return avx512::forward(kind, x, y, n, alpha);
    case SimdLevel::kAvx2: return avx2::forward(kind, x, y, n, alpha);
#endif
    default: return scalar::forward(kind, x, y, n, alpha);
  }
}

void elementwise_backward_serial(Activation kind, const float* x, const float* y, const float* dy, float* dx,
                                 std::size_t n, float alpha, SimdLevel level) {
  if (n == 0) return;
  switch (simd::capped(level)) {
#if FLOWVAE_SIMD_X86
    case SimdLevel::kAvx512: return avx512::backward(kind, x, y, dy, dx, n, alpha);
    case SimdLevel::kAvx2: return avx2::backward(kind, x, y, dy, dx, n, alpha);
#endif
    default: return scalar::backward(kind, x, y, dy, dx, n, alpha);
  }
}

void elementwise_forward(Activation kind, const float* x, float* y, std::size_t n, float alpha, SimdLevel level) {
  // Captured by one reference so the std::function in parallel_for needs no heap.
  const ForwardArgs args{kind, x, y, alpha, level};
  parallel_for(n, kGrain, [&args](std::size_t begin, std::size_t end) {
    elementwise_forward_serial(args.kind, args.x + begin, args.y + begin, end - begin, args.alpha, args.level);
  });
}

void elementwise_backward(Activation kind, const float* x, const float* y, const float* dy, float* dx, std::size_t n,
                          float alpha, SimdLevel level) {
  const BackwardArgs args{kind, x, y, dy, dx, alpha, level};
  parallel_for(n, kGrain, [&args](std::size_t begin, std::size_t end) {
    elementwise_backward_serial(args.kind, args.x + begin, args.y + begin, args.dy + begin, args.dx + begin,
                                end - begin, args.alpha, args.level);
  });
}

void exp_array(const float* x, float* y, std::size_t n, SimdLevel level) {
  if (n == 0) return;
  switch (simd::capped(level)) {
#if FLOWVAE_SIMD_X86
    case SimdLevel::kAvx512: return avx512::exp_range(x, y, n);
    case SimdLevel::kAvx2: return avx2::exp_range(x, y, n);
#endif
    default: return scalar::exp_range(x, y, n);
  }
}

}  // namespace flowvae
