// Diagonal Gaussian kernels against double-precision formulas.
#include <cmath>
#include <vector>

#include "check.h"
#include "flowvae/gaussian.h"

void test_gaussian() {
  flowvae::test::Random rng(3);
  for (auto shape : {std::pair<std::size_t, std::size_t>{1, 1}, {3, 7}, {65, 40}, {0, 5}}) {
    const std::size_t b = shape.first, d = shape.second, n = b * d;
    auto mu = rng.floats(n, -2, 2), lv = rng.floats(n, -3, 3), eps = rng.floats(n, -3, 3);
    std::vector<float> z(n), logq(b), kl(b), dmu(n), dlv(n), g(b, 0.5f);
    flowvae::gaussian_sample_diag(mu.data(), lv.data(), eps.data(), z.data(), logq.data(), b, d);
    flowvae::gaussian_kl_standard(mu.data(), lv.data(), kl.data(), b, d);
    flowvae::gaussian_kl_standard_backward(mu.data(), lv.data(), g.data(), dmu.data(), dlv.data(), b, d);
    for (std::size_t r = 0; r < b; ++r) {
      double q = 0, k = 0;
      for (std::size_t j = r * d; j < (r + 1) * d; ++j) {
        CHECK_CLOSE(z[j], mu[j] + std::exp(0.5 * lv[j]) * eps[j], 1e-5);
        CHECK_CLOSE(dlv[j], 0.25 * (std::exp(static_cast<double>(lv[j])) - 1), 1e-5);
        q += -0.5 * (std::log(2 * M_PI) + lv[j] + static_cast<double>(eps[j]) * eps[j]);
        k += 0.5 * (static_cast<double>(mu[j]) * mu[j] + std::exp(static_cast<double>(lv[j])) - 1 - lv[j]);
      }
      CHECK_CLOSE(logq[r], q, 1e-5);
      CHECK_CLOSE(kl[r], k, 1e-5);
    }
  }
}
