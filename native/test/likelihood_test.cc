// Observation log-likelihoods against double-precision formulas, including
// logits far beyond float's exp range, on every SIMD path this CPU has.
#include <cmath>
#include <vector>

#include "check.h"
#include "flowvae/likelihood.h"

void test_likelihood() {
  flowvae::test::Random rng(4);
  using flowvae::SimdLevel;
  for (auto shape : {std::pair<std::size_t, std::size_t>{1, 1}, {5, 784}, {33, 3}, {2, 257}}) {
    const std::size_t b = shape.first, d = shape.second, n = b * d;
    auto x = rng.floats(n, 0, 1), l = rng.floats(n, -200, 200), lv = rng.floats(d, -1, 1);
    // Small logits too, where softplus and the sigmoid are not saturated.
    for (std::size_t j = 0; j < n; j += 2) l[j] *= 0.02f;
    std::vector<float> out(b), dl(n), g(b, 1.0f), dm(n), dlv(d, 0.0f);
    for (SimdLevel level : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512}) {
      flowvae::likelihood_bernoulli(x.data(), l.data(), out.data(), b, d, level);
      flowvae::likelihood_bernoulli_backward(x.data(), l.data(), g.data(), dl.data(), b, d, level);
      for (std::size_t r = 0; r < b; ++r) {
        double s = 0;
        for (std::size_t j = r * d; j < (r + 1) * d; ++j) {
          const double lj = l[j];
          s += x[j] * lj - (std::fmax(lj, 0.0) + std::log1p(std::exp(-std::fabs(lj))));
          CHECK_CLOSE(dl[j], x[j] - 1 / (1 + std::exp(-lj)), 1e-6);
        }
        CHECK_CLOSE(out[r], s, 1e-5);
      }
    }
    flowvae::likelihood_gaussian(x.data(), l.data(), lv.data(), out.data(), b, d);
    flowvae::likelihood_gaussian_backward(x.data(), l.data(), lv.data(), g.data(), dm.data(), dlv.data(), b, d);
    flowvae::likelihood_gaussian_backward(x.data(), l.data(), lv.data(), g.data(), dm.data(), nullptr, b, d);
    CHECK(std::isfinite(out[0]) && std::isfinite(dlv[0]));
  }
}
