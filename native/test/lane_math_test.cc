// lane_math.h helpers that kernels rely on for more than speed: LogProduct
// (a stack's log-det with one Log per row group) must equal the per-factor
// sum of logs, including lanes where a factor leaves the normal range, and
// StreamCopy must copy exactly whatever the alignment of its destination.
#include <cfloat>
#include <cmath>
#include <limits>
#include <vector>

#include "../cpu/lane_math.h"
#include "check.h"
#include "flowvae/cpu_features.h"

namespace flowvae {
namespace {

using test::Random;

// Σ_k log factors[k·W + l] per lane l, by LogProduct and by one Log per factor.
template <int W>
FLOWVAE_LANE_INLINE void SumBoth(const float* factors, std::size_t count, float* product_sum, float* log_sum) {
  using F = typename lanes::Vec<W>::F;
  lanes::LogProduct<F> det;
  F direct = F{};
  for (std::size_t k = 0; k < count; ++k) {
    const F f = lanes::Load<F>(factors + k * W);
    det.Multiply(f);
    direct += lanes::Log(f);
  }
  lanes::Store(product_sum, det.Sum(count, factors));
  lanes::Store(log_sum, direct);
}

void SumBaseline(const float* f, std::size_t n, float* a, float* b) { SumBoth<4>(f, n, a, b); }
FLOWVAE_TARGET_AVX2 void SumAvx2(const float* f, std::size_t n, float* a, float* b) { SumBoth<8>(f, n, a, b); }
FLOWVAE_TARGET_AVX512 void SumAvx512(const float* f, std::size_t n, float* a, float* b) { SumBoth<16>(f, n, a, b); }

template <int W>
void CheckLogProduct(void (*sum)(const float*, std::size_t, float*, float*), uint64_t seed) {
  Random rng(seed);
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // Lanes 0 and 1 stay normal (factors from e^-40 to e^40, and from one
  // binade); the others each get one factor at or beyond the normal range.
  const float specials[] = {0.0f, 1e-40f, FLT_MIN, 3e38f, inf, nan, -2.0f, FLT_TRUE_MIN};
  for (std::size_t count : {std::size_t{1}, std::size_t{5}, std::size_t{32}}) {
    std::vector<float> factors(count * W);
    for (auto& f : factors) f = static_cast<float>(std::exp(rng.uniform(-40, 40)));
    for (std::size_t k = 0; k < count; ++k) factors[k * W + 1] = static_cast<float>(rng.uniform(1, 2));
    for (int l = 2; l < W; ++l) factors[(count / 2) * W + l] = specials[(l - 2) % 8];
    alignas(64) float product[W], logs[W];
    sum(factors.data(), count, product, logs);
    for (int l = 0; l < W; ++l) {
      if (l < 2) {
        double exact = 0;
        for (std::size_t k = 0; k < count; ++k) exact += std::log(static_cast<double>(factors[k * W + l]));
        // Each renormalized product rounds once (≤ count·2^-24 relative) and
        // the final Log and the float32 sum add a few ulps of the total.
        CHECK_CLOSE(product[l], exact, 1e-6 * count);
        CHECK_CLOSE(logs[l], exact, 1e-6 * count);
      } else if (std::isfinite(logs[l])) {
        // FLT_MIN and 3e38 may stay in the normal range (then the product
        // carries them); subnormal factors are summed factor by factor.
        CHECK_CLOSE(product[l], logs[l], 1e-6 * count);
      } else if (std::isnan(logs[l])) {
        CHECK(std::isnan(product[l]));  // NaN and negative factors: the product alone would lose them
      } else {
        CHECK(product[l] == logs[l]);  // 0 → −inf, inf → inf
      }
    }
  }
}

void StreamBaseline(float* d, const float* s, std::size_t n) { lanes::StreamCopy<lanes::Vec<4>::F>(d, s, n); }
FLOWVAE_TARGET_AVX2 void StreamAvx2(float* d, const float* s, std::size_t n) {
  lanes::StreamCopy<lanes::Vec<8>::F>(d, s, n);
}
FLOWVAE_TARGET_AVX512 void StreamAvx512(float* d, const float* s, std::size_t n) {
  lanes::StreamCopy<lanes::Vec<16>::F>(d, s, n);
}

void CheckStreamCopy(void (*copy)(float*, const float*, std::size_t)) {
  Random rng(9);
  const std::vector<float> src = rng.floats(1100);
  for (std::size_t offset = 0; offset < 16; ++offset) {
    for (std::size_t n : {0, 1, 3, 15, 16, 17, 33, 100, 1000}) {
      AlignedFloats dst(n + 32, -7.0f);
      copy(dst.data() + offset, src.data() + 1, n);
      bool ok = true;
      for (std::size_t i = 0; i < dst.size(); ++i) {
        const bool inside = i >= offset && i < offset + n;
        ok &= dst[i] == (inside ? src[1 + i - offset] : -7.0f);
      }
      CHECK(ok);
    }
  }
}

}  // namespace
}  // namespace flowvae

void test_lane_math() {
  using namespace flowvae;
  CheckLogProduct<4>(SumBaseline, 1);
  if (simd_level() >= SimdLevel::kAvx2) CheckLogProduct<8>(SumAvx2, 2);
  if (simd_level() >= SimdLevel::kAvx512) CheckLogProduct<16>(SumAvx512, 3);
  CheckStreamCopy(StreamBaseline);
  if (simd_level() >= SimdLevel::kAvx2) CheckStreamCopy(StreamAvx2);
  if (simd_level() >= SimdLevel::kAvx512) CheckStreamCopy(StreamAvx512);
}
