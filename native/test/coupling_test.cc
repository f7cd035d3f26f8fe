// Coupling kernels against double-precision formulas: gather/scatter of
// halves, affine (forward, inverse, backward with accumulated d_scale),
// additive and the NICE scaling layer; columns outside [offset, offset +
// width) left untouched; widths off every SIMD width (the zero-padded tail
// reads and writes only its own elements, which ASan checks); batch 0; sizes
// that split across threads, with parameter gradients the same bits at 1, 2
// and 3 threads.
#include <cmath>
#include <cstring>
#include <vector>

#include "check.h"
#include "flowvae/coupling.h"
#include "flowvae/parallel.h"

namespace {

constexpr float kSentinel = 7.25f;

struct Shape {
  std::size_t batch, dim, offset, width, context;
};

bool InColumns(const Shape& s, std::size_t i) {
  const std::size_t c = i % s.dim;
  return c >= s.offset && c < s.offset + s.width;
}

void TestGatherScatter(flowvae::test::Random& rng, const Shape& s) {
  const std::size_t cw = s.width + s.context;
  auto x = rng.floats(s.batch * s.dim), ctx = rng.floats(s.batch * s.context), g = rng.floats(s.batch * cw);
  std::vector<float> out(s.batch * cw, kSentinel);
  flowvae::coupling_gather(x.data(), s.context ? ctx.data() : nullptr, out.data(), s.batch, s.dim, s.offset, s.width,
                           s.context);
  auto dx = rng.floats(s.batch * s.dim), dctx = rng.floats(s.batch * s.context);
  const auto dx0 = dx, dctx0 = dctx;
  flowvae::coupling_scatter_add(g.data(), dx.data(), s.context ? dctx.data() : nullptr, s.batch, s.dim, s.offset,
                                s.width, s.context);
  for (std::size_t r = 0; r < s.batch; ++r) {
    for (std::size_t j = 0; j < s.width; ++j) {
      CHECK(out[r * cw + j] == x[r * s.dim + s.offset + j]);
      CHECK(dx[r * s.dim + s.offset + j] == dx0[r * s.dim + s.offset + j] + g[r * cw + j]);
    }
    for (std::size_t c = 0; c < s.context; ++c) {
      CHECK(out[r * cw + s.width + c] == ctx[r * s.context + c]);
      CHECK(dctx[r * s.context + c] == dctx0[r * s.context + c] + g[r * cw + s.width + c]);
    }
    for (std::size_t j = 0; j < s.dim; ++j) {
      if (!InColumns(s, r * s.dim + j)) CHECK(dx[r * s.dim + j] == dx0[r * s.dim + j]);
    }
  }
}

void TestAffine(flowvae::test::Random& rng, const Shape& s) {
  const std::size_t n = s.batch * s.dim, w = s.width;
  auto x = rng.floats(n, -2, 2), h = rng.floats(2 * s.batch * w, -3, 3), scale = rng.floats(w, -1.5, 1.5);
  auto dy = rng.floats(n), dl = rng.floats(s.batch);
  std::vector<float> y(n, kSentinel), back(n, kSentinel), ld(s.batch), ld_inv(s.batch);
  std::vector<float> dx(n, kSentinel), dh(2 * s.batch * w), d_scale(w, 0.5f);
  flowvae::coupling_affine_forward(x.data(), h.data(), scale.data(), y.data(), ld.data(), s.batch, s.dim, s.offset, w);
  // Inverse into a copy of y's pass-through columns: the round trip must give x everywhere.
  for (std::size_t i = 0; i < n; ++i) {
    if (!InColumns(s, i)) y[i] = x[i];
  }
  back = y;
  flowvae::coupling_affine_inverse(y.data(), h.data(), scale.data(), back.data(), ld_inv.data(), s.batch, s.dim,
                                   s.offset, w);
  flowvae::coupling_affine_backward(x.data(), h.data(), scale.data(), dy.data(), dl.data(), dx.data(), dh.data(),
                                    d_scale.data(), s.batch, s.dim, s.offset, w);
  std::vector<double> want_d_scale(w, 0.5);
  for (std::size_t r = 0; r < s.batch; ++r) {
    double sum = 0;
    for (std::size_t j = 0; j < w; ++j) {
      const std::size_t i = r * s.dim + s.offset + j;
      const double a = h[2 * r * w + j], t = h[2 * r * w + w + j], th = std::tanh(a), sv = scale[j] * th;
      const double e = std::exp(sv);
      // |y| ≤ 2e^1.5 + 1 ≈ 10; float32 tanh/exp within a few ulp.
      CHECK_CLOSE(y[i], x[i] * e + t, 2e-6);
      CHECK_CLOSE(back[i], x[i], 2e-6);
      CHECK_CLOSE(dx[i], dy[i] * e, 2e-6);
      const double ds = dy[i] * x[i] * e + dl[r];
      CHECK_CLOSE(dh[2 * r * w + j], ds * scale[j] * (1 - th * th), 2e-6);
      CHECK(dh[2 * r * w + w + j] == dy[i]);
      want_d_scale[j] += ds * th;
      sum += sv;
    }
    CHECK_CLOSE(ld[r], sum, 2e-6 * (1 + static_cast<double>(w)));
    CHECK_CLOSE(ld_inv[r], -sum, 2e-6 * (1 + static_cast<double>(w)));
    for (std::size_t j = 0; j < s.dim; ++j) {
      if (!InColumns(s, r * s.dim + j)) CHECK(dx[r * s.dim + j] == kSentinel);
    }
  }
  // Sums over up to ~1100 rows of terms ≤ ~20 in magnitude.
  for (std::size_t j = 0; j < w; ++j) CHECK_CLOSE(d_scale[j], want_d_scale[j], 1e-5 * (1 + std::sqrt(double(s.batch))));
}

void TestAdditive(flowvae::test::Random& rng, const Shape& s) {
  const std::size_t n = s.batch * s.dim, w = s.width;
  auto x = rng.floats(n), m = rng.floats(s.batch * w), dy = rng.floats(n);
  std::vector<float> y(n, kSentinel), back(n, kSentinel), dx(n, kSentinel), dh(s.batch * w);
  flowvae::coupling_additive_forward(x.data(), m.data(), y.data(), s.batch, s.dim, s.offset, w);
  flowvae::coupling_additive_inverse(y.data(), m.data(), back.data(), s.batch, s.dim, s.offset, w);
  flowvae::coupling_additive_backward(dy.data(), dx.data(), dh.data(), s.batch, s.dim, s.offset, w);
  for (std::size_t r = 0; r < s.batch; ++r) {
    for (std::size_t j = 0; j < s.dim; ++j) {
      const std::size_t i = r * s.dim + j;
      if (InColumns(s, i)) {
        const std::size_t k = r * w + j - s.offset;
        CHECK(y[i] == x[i] + m[k]);
        CHECK_CLOSE(back[i], x[i], 1e-7);
        CHECK(dx[i] == dy[i]);
        CHECK(dh[k] == dy[i]);
      } else {
        CHECK(y[i] == kSentinel);
        CHECK(back[i] == kSentinel);
        CHECK(dx[i] == kSentinel);
      }
    }
  }
}

void TestScale(flowvae::test::Random& rng, std::size_t b, std::size_t d) {
  const std::size_t n = b * d;
  auto x = rng.floats(n, -2, 2), ls = rng.floats(d), dy = rng.floats(n), dl = rng.floats(b);
  std::vector<float> y(n), back(n), ld(b), ld_inv(b), dx(n), dls(d, -0.25f);
  flowvae::coupling_scale_forward(x.data(), ls.data(), y.data(), ld.data(), b, d);
  flowvae::coupling_scale_inverse(y.data(), ls.data(), back.data(), ld_inv.data(), b, d);
  flowvae::coupling_scale_backward(x.data(), ls.data(), dy.data(), dl.data(), dx.data(), dls.data(), b, d);
  double sum_ls = 0, sum_dl = 0;
  for (std::size_t j = 0; j < d; ++j) sum_ls += ls[j];
  for (std::size_t r = 0; r < b; ++r) sum_dl += dl[r];
  std::vector<double> want(d, -0.25 + sum_dl);
  for (std::size_t r = 0; r < b; ++r) {
    CHECK_CLOSE(ld[r], sum_ls, 1e-6);
    CHECK_CLOSE(ld_inv[r], -sum_ls, 1e-6);
    for (std::size_t j = 0; j < d; ++j) {
      const std::size_t i = r * d + j;
      const double e = std::exp(static_cast<double>(ls[j]));
      CHECK_CLOSE(y[i], x[i] * e, 1e-6);
      CHECK_CLOSE(back[i], x[i], 1e-6);
      CHECK_CLOSE(dx[i], dy[i] * e, 1e-6);
      want[j] += dy[i] * e * x[i];
    }
  }
  for (std::size_t j = 0; j < d; ++j) CHECK_CLOSE(dls[j], want[j], 1e-5 * (1 + std::sqrt(double(b))));
}

// The parameter-gradient sums are per fixed row chunk: the same bits at any thread count.
void TestThreadInvariance(flowvae::test::Random& rng) {
  const Shape s{1100, 40, 20, 20, 0};
  const std::size_t n = s.batch * s.dim, w = s.width;
  auto x = rng.floats(n, -2, 2), h = rng.floats(2 * s.batch * w, -3, 3), scale = rng.floats(w, -1.5, 1.5);
  auto dy = rng.floats(n), dl = rng.floats(s.batch), ls = rng.floats(s.dim);
  const int saved = flowvae::num_threads();
  std::vector<float> first_scale, first_log_scale, first_dh;
  for (int threads : {1, 2, 3}) {
    flowvae::set_num_threads(threads);
    std::vector<float> dx(n), dh(2 * s.batch * w), d_scale(w, 0.0f), dx2(n), d_log_scale(s.dim, 0.0f);
    flowvae::coupling_affine_backward(x.data(), h.data(), scale.data(), dy.data(), dl.data(), dx.data(), dh.data(),
                                      d_scale.data(), s.batch, s.dim, s.offset, w);
    flowvae::coupling_scale_backward(x.data(), ls.data(), dy.data(), dl.data(), dx2.data(), d_log_scale.data(), s.batch,
                                     s.dim);
    if (threads == 1) {
      first_scale = d_scale;
      first_log_scale = d_log_scale;
      first_dh = dh;
    } else {
      CHECK(std::memcmp(first_scale.data(), d_scale.data(), w * sizeof(float)) == 0);
      CHECK(std::memcmp(first_log_scale.data(), d_log_scale.data(), s.dim * sizeof(float)) == 0);
      CHECK(std::memcmp(first_dh.data(), dh.data(), dh.size() * sizeof(float)) == 0);
    }
  }
  flowvae::set_num_threads(saved);
}

// Extremes: e^s overflows to +inf and underflows to 0; NaN in ŝ propagates.
void TestExtremes() {
  const float x[4] = {1, 1, 1, 1};
  const float h[8] = {20, -20, NAN, 0, 0, 0, 0, 0};
  const float scale[4] = {100, 100, 1, 1};
  float y[4], ld[1];
  flowvae::coupling_affine_forward(x, h, scale, y, ld, 1, 4, 0, 4);
  CHECK(std::isinf(y[0]) && y[0] > 0);
  CHECK(y[1] == 0.0f);
  CHECK(std::isnan(y[2]));
  CHECK(y[3] == 1.0f);
  CHECK(std::isnan(ld[0]));
}

}  // namespace

void test_coupling() {
  flowvae::test::Random rng(23);
  // Widths 1..21 cover every tail length of the 4-, 8- and 16-lane paths;
  // 1100 rows split across threads; batch 0 touches nothing.
  const Shape shapes[] = {
      {1, 2, 1, 1, 0},    {1, 2, 0, 1, 2},   {3, 3, 1, 2, 1},    {4, 5, 0, 2, 0},       {5, 17, 8, 9, 3},
      {7, 37, 18, 19, 5}, {2, 32, 0, 16, 0}, {3, 41, 20, 21, 0}, {1100, 40, 20, 20, 2}, {0, 6, 3, 3, 2},
      {2, 9, 1, 7, 0},    {2, 30, 5, 13, 0}, {2, 12, 1, 11, 0},
  };
  for (const Shape& s : shapes) {
    TestGatherScatter(rng, s);
    TestAffine(rng, s);
    TestAdditive(rng, s);
    TestScale(rng, s.batch, s.dim);
  }
  TestThreadInvariance(rng);
  TestExtremes();
}
