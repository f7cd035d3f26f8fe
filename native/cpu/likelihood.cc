// Observation log-likelihoods. Row sums accumulate in double (784 terms per
// MNIST row); per-element math stays in float. The Bernoulli terms (a
// softplus and a sigmoid per pixel, the decoder's whole output) go through
// the vector functions of vec_math.inc on AVX2/AVX-512, libm otherwise.
#include "flowvae/likelihood.h"

#include <algorithm>
#include <cmath>

#include "flowvae/parallel.h"
#include "flowvae/simd_ops.h"

namespace flowvae {
namespace {

// Terms are computed this many at a time into a stack buffer, then summed.
constexpr std::size_t kChunk = 256;

#if FLOWVAE_SIMD_X86
FLOWVAE_TARGET_AVX2
namespace avx2 {
using namespace simd::avx2;
#include "likelihood_vec.inc"
}  // namespace avx2
FLOWVAE_TARGET_END

FLOWVAE_TARGET_AVX512
namespace avx512 {
using namespace simd::avx512;
#include "likelihood_vec.inc"
}  // namespace avx512
FLOWVAE_TARGET_END
#endif  // FLOWVAE_SIMD_X86

constexpr double kLog2Pi = 1.8378770664093453;
inline std::size_t RowGrain(std::size_t dim) { return dim == 0 ? 1 : 1 + 16384 / dim; }

// log(1 + e^l) = max(l, 0) + log1p(e^-|l|): no overflow, no cancellation.
inline float Softplus(float l) { return std::fmax(l, 0.0f) + std::log1p(std::exp(-std::fabs(l))); }

inline float Sigmoid(float l) {
  if (l >= 0) return 1.0f / (1.0f + std::exp(-l));
  const float e = std::exp(l);
  return e / (1.0f + e);
}

void bernoulli_terms_scalar(const float* x, const float* l, float* t, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) t[i] = x[i] * l[i] - Softplus(l[i]);
}

void bernoulli_grad_scalar(const float* x, const float* l, float g, float* d, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) d[i] = g * (x[i] - Sigmoid(l[i]));
}

using TermsFn = void (*)(const float*, const float*, float*, std::size_t);
using GradFn = void (*)(const float*, const float*, float, float*, std::size_t);

TermsFn bernoulli_terms_for(SimdLevel level) {
  switch (simd::capped(level)) {
#if FLOWVAE_SIMD_X86
    case SimdLevel::kAvx512: return avx512::bernoulli_terms;
    case SimdLevel::kAvx2: return avx2::bernoulli_terms;
#endif
    default: return bernoulli_terms_scalar;
  }
}

GradFn bernoulli_grad_for(SimdLevel level) {
  switch (simd::capped(level)) {
#if FLOWVAE_SIMD_X86
    case SimdLevel::kAvx512: return avx512::bernoulli_grad;
    case SimdLevel::kAvx2: return avx2::bernoulli_grad;
#endif
    default: return bernoulli_grad_scalar;
  }
}

}  // namespace

void likelihood_bernoulli(const float* x, const float* logits, float* out, std::size_t batch, std::size_t dim,
                          SimdLevel level) {
  const TermsFn terms = bernoulli_terms_for(level);
  parallel_for(batch, RowGrain(dim), [&](std::size_t r0, std::size_t r1) {
    float t[kChunk];
    for (std::size_t r = r0; r < r1; ++r) {
      // Four double accumulators: the sum is exact enough and not one long dependency chain.
      double s[4] = {0, 0, 0, 0};
      for (std::size_t j0 = 0; j0 < dim; j0 += kChunk) {
        const std::size_t n = std::min(kChunk, dim - j0);
        terms(x + r * dim + j0, logits + r * dim + j0, t, n);
        for (std::size_t j = 0; j < n; ++j) s[j & 3] += t[j];
      }
      out[r] = static_cast<float>((s[0] + s[1]) + (s[2] + s[3]));
    }
  });
}

void likelihood_bernoulli_backward(const float* x, const float* logits, const float* dout, float* dlogits,
                                   std::size_t batch, std::size_t dim, SimdLevel level) {
  const GradFn grad = bernoulli_grad_for(level);
  parallel_for(batch, RowGrain(dim), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) grad(x + r * dim, logits + r * dim, dout[r], dlogits + r * dim, dim);
  });
}

void likelihood_gaussian(const float* x, const float* mean, const float* logvar, float* out, std::size_t batch,
                         std::size_t dim) {
  double logvar_sum = 0;
  for (std::size_t j = 0; j < dim; ++j) logvar_sum += logvar[j];
  parallel_for(batch, RowGrain(dim), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      double s = 0;
      for (std::size_t j = 0; j < dim; ++j) {
        const float d = x[r * dim + j] - mean[r * dim + j];
        s += d * d * std::exp(-logvar[j]);
      }
      out[r] = static_cast<float>(-0.5 * (s + logvar_sum + kLog2Pi * static_cast<double>(dim)));
    }
  });
}

void likelihood_gaussian_backward(const float* x, const float* mean, const float* logvar, const float* dout,
                                  float* dmean, float* dlogvar, std::size_t batch, std::size_t dim) {
  // dMean is row-parallel; the dLogvar reduction over rows runs in a fixed
  // order on one thread so the result does not depend on the thread count.
  parallel_for(batch, RowGrain(dim), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      for (std::size_t j = 0; j < dim; ++j) {
        const float d = x[r * dim + j] - mean[r * dim + j];
        dmean[r * dim + j] = dout[r] * d * std::exp(-logvar[j]);
      }
    }
  });
  if (!dlogvar) return;
  for (std::size_t j = 0; j < dim; ++j) {
    const float precision = std::exp(-logvar[j]);
    double s = 0;
    for (std::size_t r = 0; r < batch; ++r) {
      const float d = x[r * dim + j] - mean[r * dim + j];
      s += dout[r] * 0.5 * (d * d * precision - 1.0);
    }
    dlogvar[j] += static_cast<float>(s);
  }
}

}  // namespace flowvae
