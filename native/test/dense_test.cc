// Dense kernels against naive double-precision loops: every transpose
// combination, edge sizes around the micro-tile and cache-block sizes, leading
// dimensions larger than the rows (with guard values that must stay intact),
// alpha/beta special cases, 1 and 2 threads, and the dense layer forward and
// backward. Run under ASan/UBSan, this also checks that packing and the masked
// edge tiles never touch memory outside the matrices.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

#include "check.h"
#include "flowvae/dense.h"
#include "flowvae/parallel.h"

namespace {

using flowvae::test::Random;

constexpr double kU32 = 1.0 / 16777216.0;  // float32 unit roundoff, 2^-24
constexpr float kGuard = -12345.0f;        // fills the padding past each row

// |got - want| <= (terms + 3) u M, M = Σ|terms| (+ |beta c|): the float32
// bound for a sum of `terms` products in any order, plus alpha, beta and the
// final rounding.
bool within_bound(double got, double want, double magnitude, std::size_t terms) {
  double bound = (static_cast<double>(terms) + 3.0) * kU32 * magnitude + 1e-37;
  return std::fabs(got - want) <= bound;
}

// One sgemm call checked against the naive product. Stored matrices get
// leading dimensions with `pad` extra columns filled with kGuard.
void check_gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, float alpha, float beta, std::size_t pad,
                bool nan_c, Random& rng) {
  std::size_t a_rows = ta ? k : m, a_cols = ta ? m : k;
  std::size_t b_rows = tb ? n : k, b_cols = tb ? k : n;
  std::size_t lda = a_cols + pad, ldb = b_cols + pad, ldc = n + pad;
  std::vector<float> a(std::max<std::size_t>(1, a_rows * lda), kGuard),
      b(std::max<std::size_t>(1, b_rows * ldb), kGuard), c(std::max<std::size_t>(1, m * ldc), kGuard);
  for (std::size_t i = 0; i < a_rows; ++i)
    for (std::size_t j = 0; j < a_cols; ++j) a[i * lda + j] = static_cast<float>(rng.uniform());
  for (std::size_t i = 0; i < b_rows; ++i)
    for (std::size_t j = 0; j < b_cols; ++j) b[i * ldb + j] = static_cast<float>(rng.uniform());
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j)
      c[i * ldc + j] = nan_c ? std::numeric_limits<float>::quiet_NaN() : static_cast<float>(rng.uniform());
  std::vector<float> c0 = c;

  flowvae::sgemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);

  int bad = 0;
  for (std::size_t i = 0; i < m; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      double sum = 0, mag = 0;
      for (std::size_t p = 0; p < k; ++p) {
        double av = ta ? a[p * lda + i] : a[i * lda + p];
        double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
        sum += av * bv;
        mag += std::fabs(av * bv);
      }
      double old = beta == 0.0f ? 0.0 : static_cast<double>(beta) * c0[i * ldc + j];
      double want = (alpha == 0.0f ? 0.0 : alpha * sum) + old;
      double magnitude = std::fabs(alpha) * mag + std::fabs(old);
      if (!within_bound(c[i * ldc + j], want, magnitude, k) && bad++ == 0) {
        std::fprintf(stderr, "sgemm %c%c m=%zu n=%zu k=%zu alpha=%g beta=%g pad=%zu: C[%zu,%zu] = %.9g, want %.9g\n",
                     ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, beta, pad, i, j, c[i * ldc + j], want);
      }
    }
    for (std::size_t j = n; j < ldc; ++j) {
      if (c[i * ldc + j] != kGuard && bad++ == 0)
        std::fprintf(stderr, "sgemm m=%zu n=%zu k=%zu wrote padding C[%zu,%zu]\n", m, n, k, i, j);
    }
  }
  CHECK(bad == 0);
}

void test_gemm_shapes() {
  Random rng(7);
  const std::size_t ms[] = {1, 3, 14, 15, 29, 141};
  const std::size_t ns[] = {1, 5, 16, 17, 32, 33, 70};
  const std::size_t ks[] = {0, 1, 7, 64};
  for (int t = 0; t < 4; ++t) {
    bool ta = (t & 1) != 0, tb = (t & 2) != 0;
    for (std::size_t m : ms)
      for (std::size_t n : ns)
        for (std::size_t k : ks) check_gemm(ta, tb, m, n, k, 1.0f, 0.0f, 0, false, rng);
    // Every row count and column count around the micro-tiles (MR 14/6/4,
    // NR 32/16/8 and the 8/16-lane vectors), so each edge kernel and mask runs.
    for (std::size_t n = 1; n <= 40; ++n) check_gemm(ta, tb, 3, n, 5, 1.0f, 0.5f, 2, false, rng);
    for (std::size_t m = 1; m <= 30; ++m) check_gemm(ta, tb, m, 19, 5, 1.0f, 0.5f, 2, false, rng);
    // Deeper than one k block (KC is 384 for AVX-512), wider than NC (2048),
    // taller than MC (140), with padded leading dimensions.
    check_gemm(ta, tb, 37, 45, 385, 1.0f, 0.0f, 3, false, rng);
    check_gemm(ta, tb, 2, 2100, 3, 1.0f, 0.0f, 1, false, rng);
    check_gemm(ta, tb, 300, 20, 9, 1.0f, 0.0f, 5, false, rng);
  }
}

void test_gemm_scalars() {
  Random rng(11);
  for (int t = 0; t < 4; ++t) {
    bool ta = (t & 1) != 0, tb = (t & 2) != 0;
    check_gemm(ta, tb, 23, 41, 19, -0.75f, 1.5f, 2, false, rng);
    check_gemm(ta, tb, 23, 41, 19, 2.0f, 1.0f, 0, false, rng);
    // beta == 0 must overwrite NaN.
    check_gemm(ta, tb, 23, 41, 19, 1.0f, 0.0f, 1, true, rng);
    check_gemm(ta, tb, 23, 41, 0, 1.0f, 0.0f, 1, true, rng);
    // alpha == 0 scales C only.
    check_gemm(ta, tb, 9, 10, 11, 0.0f, -2.0f, 1, false, rng);
  }
  // alpha == 0 must not read A or B (BLAS semantics): NaN there stays out of C.
  std::vector<float> nan_ab(6, std::numeric_limits<float>::quiet_NaN()), c = {1, 2, 3, 4};
  flowvae::sgemm(false, false, 2, 2, 3, 0.0f, nan_ab.data(), nan_ab.data(), 2.0f, c.data());
  CHECK(c[0] == 2 && c[1] == 4 && c[2] == 6 && c[3] == 8);
  // Empty products leave everything alone.
  flowvae::sgemm(false, false, 0, 2, 3, 1.0f, nullptr, nan_ab.data(), 0.0f, nullptr);
  flowvae::sgemm(false, false, 2, 0, 3, 1.0f, nan_ab.data(), nullptr, 0.0f, nullptr);
}

// Products large enough to be split across threads (over 2^20 FMAs); more
// threads than cores too, for grids split along both m and n.
void test_gemm_threads() {
  int saved = flowvae::num_threads();
  Random rng(13);
  for (int threads : {1, 2, 7, 16}) {
    flowvae::set_num_threads(threads);
    check_gemm(false, true, 100, 300, 200, 1.0f, 0.0f, 0, false, rng);
    check_gemm(true, false, 160, 90, 150, 0.5f, 1.0f, 1, false, rng);
    check_gemm(false, false, 31, 600, 80, 1.0f, 0.0f, 0, false, rng);
  }
  flowvae::set_num_threads(saved);
}

void test_dense_layer() {
  Random rng(17);
  // {64, 300, 100}: over 2^20 multiply-adds, so split across threads.
  const std::size_t shapes[][3] = {{1, 1, 1}, {7, 33, 5}, {20, 17, 40}, {3, 0, 4}, {0, 3, 4}, {64, 300, 100}};
  for (const auto& s : shapes) {
    std::size_t batch = s[0], in = s[1], out = s[2];
    std::vector<float> x = rng.floats(batch * in), w = rng.floats(out * in), bias = rng.floats(out),
                       dy = rng.floats(batch * out);
    std::vector<float> y(batch * out + 1, kGuard);
    flowvae::dense_forward(x.data(), w.data(), bias.data(), y.data(), batch, in, out);
    for (std::size_t r = 0; r < batch; ++r) {
      for (std::size_t o = 0; o < out; ++o) {
        double sum = bias[o], mag = std::fabs(bias[o]);
        for (std::size_t i = 0; i < in; ++i) {
          sum += static_cast<double>(x[r * in + i]) * w[o * in + i];
          mag += std::fabs(static_cast<double>(x[r * in + i]) * w[o * in + i]);
        }
        CHECK(within_bound(y[r * out + o], sum, mag, in));
      }
    }
    CHECK(y[batch * out] == kGuard);

    for (bool accumulate : {false, true}) {
      std::vector<float> dx(batch * in + 1, kGuard), dw = rng.floats(out * in), db = rng.floats(out);
      dw.push_back(kGuard);
      db.push_back(kGuard);
      std::vector<float> dw0 = dw, db0 = db;
      flowvae::dense_backward(x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data(), batch, in, out,
                              accumulate);
      for (std::size_t r = 0; r < batch; ++r) {
        for (std::size_t i = 0; i < in; ++i) {
          double sum = 0, mag = 0;
          for (std::size_t o = 0; o < out; ++o) {
            sum += static_cast<double>(dy[r * out + o]) * w[o * in + i];
            mag += std::fabs(static_cast<double>(dy[r * out + o]) * w[o * in + i]);
          }
          CHECK(within_bound(dx[r * in + i], sum, mag, out));
        }
      }
      for (std::size_t o = 0; o < out; ++o) {
        for (std::size_t i = 0; i < in; ++i) {
          double sum = accumulate ? dw0[o * in + i] : 0.0, mag = std::fabs(sum);
          for (std::size_t r = 0; r < batch; ++r) {
            sum += static_cast<double>(dy[r * out + o]) * x[r * in + i];
            mag += std::fabs(static_cast<double>(dy[r * out + o]) * x[r * in + i]);
          }
          CHECK(within_bound(dw[o * in + i], sum, mag, batch));
        }
        double sum = accumulate ? db0[o] : 0.0, mag = std::fabs(sum);
        for (std::size_t r = 0; r < batch; ++r) {
          sum += dy[r * out + o];
          mag += std::fabs(dy[r * out + o]);
        }
        CHECK(within_bound(db[o], sum, mag, batch));
      }
      CHECK(dx[batch * in] == kGuard && dw[out * in] == kGuard && db[out] == kGuard);
    }
  }
  // Null outputs are skipped.
  std::vector<float> x = rng.floats(6), w = rng.floats(12), dy = rng.floats(8), db(4, kGuard);
  flowvae::dense_backward(x.data(), w.data(), dy.data(), nullptr, nullptr, db.data(), 2, 3, 4, false);
  for (std::size_t o = 0; o < 4; ++o) CHECK_CLOSE(db[o], static_cast<double>(dy[o]) + dy[4 + o], 1e-6);
  // Without bias the output is the bare product.
  std::vector<float> y(8, kGuard);
  flowvae::dense_forward(x.data(), w.data(), nullptr, y.data(), 2, 3, 4);
  CHECK_CLOSE(y[5],
              static_cast<double>(x[3]) * w[3] + static_cast<double>(x[4]) * w[4] + static_cast<double>(x[5]) * w[5],
              1e-6);
}

}  // namespace

void test_dense() {
  test_gemm_shapes();
  test_gemm_scalars();
  test_gemm_threads();
  test_dense_layer();
}
