// Autoregressive kernels against double-precision formulas: masks, masked
// dense layers (staircase, reversed and shuffled degrees, empty ranges), IAF
// gate and MAF affine steps (forward, backward, inverse), saturated gates,
// batch 0, and sizes that split across threads.
#include <array>
#include <cmath>
#include <cstdint>
#include <utility>
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

  for (flowvae::SimdLevel level :
       {flowvae::SimdLevel::kScalar, flowvae::SimdLevel::kAvx2, flowvae::SimdLevel::kAvx512}) {
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

// Masked dense forward and backward against double loops over the full mask.
// order 0: sorted degrees (a staircase), 1: reversed inputs, 2: shuffled
// outputs, 3: the staircase with degrees above the kernels' per-degree tables.
void TestMaskedDense(flowvae::test::Random& rng, std::size_t batch, std::size_t out_dim, std::size_t in_dim,
                     int order) {
  std::vector<uint32_t> out_deg(out_dim), in_deg(in_dim);
  for (std::size_t i = 0; i < in_dim; ++i) in_deg[i] = static_cast<uint32_t>(order == 1 ? in_dim - i : i + 1);
  // 0 … in_dim: degree 0 keeps nothing under strict (an empty range).
  for (std::size_t o = 0; o < out_dim; ++o) out_deg[o] = static_cast<uint32_t>(o * (in_dim + 1) / out_dim);
  if (order == 3) {
    for (auto& d : in_deg) d *= 70000;
    for (auto& d : out_deg) d *= 70000;
  }
  if (order == 2) {
    for (std::size_t o = out_dim; o > 1; --o) {
      const auto j = static_cast<std::size_t>(rng.uniform(0, 1) * static_cast<double>(o)) % o;
      std::swap(out_deg[o - 1], out_deg[j]);
    }
  }
  const auto x = rng.floats(batch * in_dim), w = rng.floats(out_dim * in_dim), bias = rng.floats(out_dim);
  const auto dy = rng.floats(batch * out_dim), dx0 = rng.floats(batch * in_dim), dw0 = rng.floats(out_dim * in_dim);
  for (bool strict : {false, true}) {
    auto keep = [&](std::size_t o, std::size_t i) { return strict ? out_deg[o] > in_deg[i] : out_deg[o] >= in_deg[i]; };
    std::vector<float> masked(out_dim * in_dim), y(batch * out_dim);
    flowvae::masked_dense_forward(x.data(), w.data(), bias.data(), out_deg.data(), in_deg.data(), strict, masked.data(),
                                  y.data(), batch, in_dim, out_dim);
    for (std::size_t o = 0; o < out_dim; ++o)
      for (std::size_t i = 0; i < in_dim; ++i) CHECK(masked[o * in_dim + i] == (keep(o, i) ? w[o * in_dim + i] : 0.0f));
    for (std::size_t r = 0; r < batch; ++r)
      for (std::size_t o = 0; o < out_dim; ++o) {
        double sum = bias[o];
        for (std::size_t i = 0; i < in_dim; ++i)
          sum += keep(o, i) ? double(x[r * in_dim + i]) * w[o * in_dim + i] : 0.0;
        CHECK_CLOSE(y[r * out_dim + o], sum, 1e-5 * (1 + in_dim));
      }
    for (bool accumulate : {false, true}) {
      std::vector<float> dx = dx0, dw = dw0, db(out_dim, 0.25f);
      flowvae::masked_dense_backward(x.data(), masked.data(), dy.data(), out_deg.data(), in_deg.data(), strict,
                                     dx.data(), dw.data(), db.data(), batch, in_dim, out_dim, accumulate);
      for (std::size_t o = 0; o < out_dim; ++o) {
        double sb = 0.25;
        for (std::size_t r = 0; r < batch; ++r) sb += dy[r * out_dim + o];
        CHECK_CLOSE(db[o], sb, 1e-5 * (1 + batch));
        for (std::size_t i = 0; i < in_dim; ++i) {
          double sw = dw0[o * in_dim + i];
          for (std::size_t r = 0; r < batch; ++r) sw += double(dy[r * out_dim + o]) * x[r * in_dim + i];
          if (keep(o, i))
            CHECK_CLOSE(dw[o * in_dim + i], sw, 1e-5 * (1 + batch));
          else
            CHECK(dw[o * in_dim + i] == 0.0f);
        }
      }
      for (std::size_t r = 0; r < batch; ++r)
        for (std::size_t i = 0; i < in_dim; ++i) {
          double sx = accumulate ? dx0[r * in_dim + i] : 0.0;
          for (std::size_t o = 0; o < out_dim; ++o)
            sx += keep(o, i) ? double(dy[r * out_dim + o]) * w[o * in_dim + i] : 0.0;
          CHECK_CLOSE(dx[r * in_dim + i], sx, 1e-5 * (1 + out_dim));
        }
    }
  }
}

}  // namespace

void test_autoregressive() {
  flowvae::test::Random rng(11);
  TestMask(rng);
  // Off the 8/16-column pieces, a MADE's own shapes, one element, batch 0, and
  // 600 rows (products split over the thread pool).
  for (int order : {0, 1, 2, 3})
    for (auto shape : {std::array<std::size_t, 3>{1, 1, 1},
                       {3, 5, 3},
                       {7, 17, 40},
                       {0, 9, 4},
                       {33, 80, 33},
                       {20, 320, 40},
                       {5, 80, 320},
                       {600, 48, 40}})
      TestMaskedDense(rng, shape[0], shape[1], shape[2], order);
  // Batch 0 touches nothing; 1000 × 40 splits over the thread pool.
  for (auto shape : {std::pair<std::size_t, std::size_t>{1, 1}, {3, 7}, {17, 33}, {0, 5}, {1000, 40}})
    TestSteps(rng, shape.first, shape.second);
}
