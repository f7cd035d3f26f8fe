// Glow kernels against double-precision formulas: the per-column affine map
// (forward, inverse, backward with accumulated parameter gradients), column
// permutations and their round trip, batch 0 / dim 1 / sizes off the SIMD
// width, sizes that split across threads, and gradients that are the same
// bits at 1 and 3 threads.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "check.h"
#include "flowvae/glow.h"
#include "flowvae/parallel.h"

namespace {

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

void TestAffine(flowvae::test::Random& rng, std::size_t b, std::size_t d) {
  const std::size_t n = b * d;
  auto x = rng.floats(n, -2, 2), dy = rng.floats(n, -1, 1), dl = rng.floats(b, -1, 1);
  auto ls = rng.floats(d, -1.5, 1.5), shift = rng.floats(d, -1, 1);
  auto dls0 = rng.floats(d, -1, 1), dshift0 = rng.floats(d, -1, 1);
  std::vector<float> y(n), ld(b), back(n), ld_inv(b), dx(n), dls = dls0, dshift = dshift0;
  flowvae::glow_affine_forward(x.data(), ls.data(), shift.data(), y.data(), ld.data(), b, d);
  flowvae::glow_affine_inverse(y.data(), ls.data(), shift.data(), back.data(), ld_inv.data(), b, d);
  flowvae::glow_affine_backward(x.data(), ls.data(), dy.data(), dl.data(), dx.data(), dls.data(), dshift.data(), b, d);
  double ls_sum = 0, dl_sum = 0;
  for (std::size_t j = 0; j < d; ++j) ls_sum += ls[j];
  for (std::size_t r = 0; r < b; ++r) dl_sum += dl[r];
  for (std::size_t r = 0; r < b; ++r) {
    // Two roundings (scale, then x·scale + shift): relative 1e-6 of |x·e^ls| + |shift| covers them.
    for (std::size_t j = 0; j < d; ++j) {
      const std::size_t i = r * d + j;
      const double s = std::exp(static_cast<double>(ls[j]));
      CHECK_CLOSE(y[i], x[i] * s + shift[j], 1e-6 * (1 + s));
      CHECK_CLOSE(back[i], x[i], 1e-5 * (1 + s) / s);
      CHECK_CLOSE(dx[i], dy[i] * s, 1e-6);
    }
    CHECK_CLOSE(ld[r], ls_sum, 1e-6);
    CHECK_CLOSE(ld_inv[r], -ls_sum, 1e-6);
  }
  for (std::size_t j = 0; j < d; ++j) {
    double sx = 0, sy = 0;
    for (std::size_t r = 0; r < b; ++r) {
      sx += static_cast<double>(dy[r * d + j]) * x[r * d + j];
      sy += dy[r * d + j];
    }
    // Sums of b float products accumulated in double, rounded once: float32 rounding only.
    const double scale = 1e-6 * (1 + static_cast<double>(b));
    CHECK_CLOSE(dls[j], dls0[j] + sx * std::exp(static_cast<double>(ls[j])) + dl_sum, scale);
    CHECK_CLOSE(dshift[j], dshift0[j] + sy, scale);
  }
}

void TestPermute(flowvae::test::Random& rng, std::size_t b, std::size_t d) {
  const std::size_t n = b * d;
  auto x = rng.floats(n, -2, 2);
  std::vector<uint32_t> perm(d);
  for (std::size_t j = 0; j < d; ++j) perm[j] = static_cast<uint32_t>(j);
  for (std::size_t j = d; j > 1; --j) {
    const std::size_t k = static_cast<std::size_t>(rng.uniform(0, 1) * static_cast<double>(j)) % j;
    std::swap(perm[j - 1], perm[k]);
  }
  std::vector<float> y(n), back(n, -7.0f);
  flowvae::glow_permute_columns(x.data(), perm.data(), y.data(), b, d);
  flowvae::glow_unpermute_columns(y.data(), perm.data(), back.data(), b, d);
  for (std::size_t r = 0; r < b; ++r)
    for (std::size_t j = 0; j < d; ++j) CHECK(y[r * d + j] == x[r * d + perm[j]]);
  CHECK(SameBits(back, x));
}

// The parameter-gradient sums are fixed row chunks combined in order: the
// same bits whatever the thread count.
void TestThreadIndependence(flowvae::test::Random& rng) {
  const std::size_t b = 4099, d = 19;
  auto x = rng.floats(b * d, -2, 2), dy = rng.floats(b * d, -1, 1), dl = rng.floats(b, -1, 1);
  auto ls = rng.floats(d, -1, 1);
  std::vector<std::vector<float>> results;
  const int before = flowvae::num_threads();
  for (int threads : {1, 3}) {
    flowvae::set_num_threads(threads);
    std::vector<float> dx(b * d), dls(d, 0.0f), dshift(d, 0.0f);
    flowvae::glow_affine_backward(x.data(), ls.data(), dy.data(), dl.data(), dx.data(), dls.data(), dshift.data(), b,
                                  d);
    results.push_back(dls);
    results.push_back(dshift);
    results.push_back(dx);
  }
  flowvae::set_num_threads(before);
  CHECK(SameBits(results[0], results[3]));
  CHECK(SameBits(results[1], results[4]));
  CHECK(SameBits(results[2], results[5]));
}

}  // namespace

void test_glow() {
  flowvae::test::Random rng(31);
  const std::size_t shapes[][2] = {{0, 3}, {3, 0}, {1, 1}, {1, 2}, {2, 7}, {5, 9}, {17, 33}, {64, 40}, {3000, 19}};
  for (const auto& s : shapes) {
    TestAffine(rng, s[0], s[1]);
    TestPermute(rng, s[0], s[1]);
  }
  TestThreadIndependence(rng);
}
