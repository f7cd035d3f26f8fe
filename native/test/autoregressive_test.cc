// Autoregressive kernels against double-precision formulas: masks, IAF gate
// and MAF affine steps (forward, backward, inverse), saturated gates, batch 0,
// and sizes that split across threads.
#include <cmath>
#include <cstdint>
#include <vector>

#include "check.h"
#include "flowvae/autoregressive.h"

namespace {

double Sigmoid(double s) { return 1.0 / (1.0 + std::exp(-s)); }

void TestMask(flowvae::test::Random& rng) {
  const std::size_t out_dim = 37, in_dim = 11;
  auto w = rng.floats(out_dim * in_dim, 0.5, 1.5);
  std::vector<uint32_t> out_deg(out_dim), in_deg(in_dim);
  for (std::size_t o = 0; o < out_dim; ++o) out_deg[o] = static_cast<uint32_t>(o % (in_dim + 1));
  for (std::size_t i = 0; i < in_dim; ++i) in_deg[i] = static_cast<uint32_t>(in_dim - i);
  for (bool strict : {false, true}) {
    std::vector<float> out(w.size()), in_place = w;
    flowvae::mask_weights(w.data(), out_deg.data(), in_deg.data(), strict, out.data(), out_dim, in_dim);
    flowvae::mask_weights(in_place.data(), out_deg.data(), in_deg.data(), strict, in_place.data(), out_dim, in_dim);
    for (std::size_t o = 0; o < out_dim; ++o) {
      for (std::size_t i = 0; i < in_dim; ++i) {
        const bool keep = strict ? out_deg[o] > in_deg[i] : out_deg[o] >= in_deg[i];
        CHECK(out[o * in_dim + i] == (keep ? w[o * in_dim + i] : 0.0f));
        CHECK(in_place[o * in_dim + i] == out[o * in_dim + i]);
      }
    }
  }
}

void TestSteps(flowvae::test::Random& rng, std::size_t b, std::size_t d) {
  const std::size_t n = b * d;
  auto x = rng.floats(n, -2, 2), dy = rng.floats(n, -1, 1), dl = rng.floats(b, -1, 1);
  auto ms = rng.floats(2 * n, -2, 2);
  // Spread s over [−30, 30] so some gates saturate.
  for (std::size_t r = 0; r < b; ++r)
    for (std::size_t i = 0; i < d; ++i) ms[(2 * r + 1) * d + i] = static_cast<float>(rng.uniform(-30, 30));
  std::vector<float> y(n), ld(b), dx(n), dms(2 * n), inv(n), ld_inv(b);

  for (flowvae::SimdLevel level : {flowvae::SimdLevel::kScalar, flowvae::SimdLevel::kAvx2, flowvae::SimdLevel::kAvx512}) {
    flowvae::iaf_forward(x.data(), ms.data(), y.data(), ld.data(), b, d, level);
    flowvae::iaf_backward(x.data(), ms.data(), dy.data(), dl.data(), dx.data(), dms.data(), b, d, level);
    for (std::size_t r = 0; r < b; ++r) {
      double sum = 0;
      for (std::size_t i = 0; i < d; ++i) {
        const double m = ms[2 * r * d + i], s = ms[(2 * r + 1) * d + i], z = x[r * d + i], g = Sigmoid(s);
        CHECK_CLOSE(y[r * d + i], g * z + (1 - g) * m, 1e-6);
        CHECK_CLOSE(dx[r * d + i], dy[r * d + i] * g, 1e-6);
        CHECK_CLOSE(dms[2 * r * d + i], dy[r * d + i] * (1 - g), 1e-6);
        CHECK_CLOSE(dms[(2 * r + 1) * d + i], (dy[r * d + i] * (z - m) * g + dl[r]) * (1 - g), 1e-6);
        sum += std::log(g);
        CHECK(std::isfinite(y[r * d + i]));
      }
      CHECK_CLOSE(ld[r], sum, 1e-6);
    }
  }
  // The inverse for fixed ms returns x where the gate is not saturated
  // (σ ≥ 9e-4: the error is about ulp(y)/σ ≤ 3e-4; below that float32
  // cannot recover z from y at all).
  flowvae::iaf_inverse(y.data(), ms.data(), inv.data(), ld_inv.data(), b, d);
  for (std::size_t r = 0; r < b; ++r) {
    CHECK_CLOSE(ld_inv[r], -ld[r], 1e-6);
    for (std::size_t i = 0; i < d; ++i)
      if (ms[(2 * r + 1) * d + i] > -7) CHECK_CLOSE(inv[r * d + i], x[r * d + i], 1e-3);
  }

  // MAF with α in [−3, 3].
  for (std::size_t r = 0; r < b; ++r)
    for (std::size_t i = 0; i < d; ++i) ms[(2 * r + 1) * d + i] = static_cast<float>(rng.uniform(-3, 3));
  flowvae::maf_forward(x.data(), ms.data(), y.data(), ld.data(), b, d);
  flowvae::maf_backward(x.data(), ms.data(), dy.data(), dl.data(), dx.data(), dms.data(), b, d);
  flowvae::maf_inverse(y.data(), ms.data(), inv.data(), ld_inv.data(), b, d);
  for (std::size_t r = 0; r < b; ++r) {
    double sum = 0;
    for (std::size_t i = 0; i < d; ++i) {
      const double m = ms[2 * r * d + i], a = ms[(2 * r + 1) * d + i], e = std::exp(-a);
      const double u = (x[r * d + i] - m) * e;
      CHECK_CLOSE(y[r * d + i], u, 1e-5);
      CHECK_CLOSE(dx[r * d + i], dy[r * d + i] * e, 1e-5);
      CHECK_CLOSE(dms[2 * r * d + i], -dy[r * d + i] * e, 1e-5);
      CHECK_CLOSE(dms[(2 * r + 1) * d + i], -dy[r * d + i] * u - dl[r], 1e-5);
      CHECK_CLOSE(inv[r * d + i], x[r * d + i], 1e-5);
      sum += a;
    }
    CHECK_CLOSE(ld[r], -sum, 1e-5);
    CHECK_CLOSE(ld_inv[r], sum, 1e-5);
  }
}

}  // namespace

void test_autoregressive() {
  flowvae::test::Random rng(11);
  TestMask(rng);
  // Batch 0 touches nothing; 1000 × 40 splits over the thread pool.
  for (auto shape : {std::pair<std::size_t, std::size_t>{1, 1}, {3, 7}, {17, 33}, {0, 5}, {1000, 40}})
    TestSteps(rng, shape.first, shape.second);
}
