// Spline kernels against a double-precision transcription of the definition
// (spline.h): forward, inverse and log-dets; backward against central
// differences of that transcription; exact tails and ends, untouched columns
// outside the window, monotonicity, batch 0 / width 0, K = 1 and large K, and
// the same bits at 1 and 2 threads. Widths 1 … 37 cover the 16-, 8- and 4-lane
// chunks and the padded tail of every SIMD path the build has.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "check.h"
#include "flowvae/parallel.h"
#include "flowvae/spline.h"

namespace {

using flowvae::kSplineMinBin;
using flowvae::kSplineMinDerivative;

// One element's spline in double, from its 3K − 1 raw parameters (θ_j at theta[j·stride]).
struct Spline {
  int bins;
  double bound;
  std::vector<double> xk, yk, d;

  Spline(const float* theta, std::size_t stride, int k, double b) : bins(k), bound(b), xk(k + 1), yk(k + 1), d(k + 1) {
    auto knots = [&](const float* t, std::vector<double>& out) {
      double mx = -1e300, sum = 0;
      for (int j = 0; j < k; ++j) mx = std::max(mx, static_cast<double>(t[j * stride]));
      std::vector<double> p(k);
      for (int j = 0; j < k; ++j) sum += p[j] = std::exp(t[j * stride] - mx);
      out[0] = -b;
      double cum = 0;
      for (int j = 1; j < k; ++j) {
        cum += kSplineMinBin + (1 - k * kSplineMinBin) * p[j - 1] / sum;
        out[j] = -b + 2 * b * cum;
      }
      out[k] = b;
    };
    knots(theta, xk);
    knots(theta + k * stride, yk);
    const double c = std::log(std::expm1(1 - kSplineMinDerivative));
    d[0] = d[k] = 1;
    for (int j = 1; j < k; ++j) d[j] = kSplineMinDerivative + std::log1p(std::exp(theta[(2 * k + j - 1) * stride] + c));
  }

  static int Bin(const std::vector<double>& knots, double v) {
    int j = 0;
    while (j + 1 < static_cast<int>(knots.size()) - 1 && knots[j + 1] <= v) ++j;
    return j;
  }

  // y and log dy/dx at x.
  void Forward(double x, double* y, double* log_slope) const {
    if (!(x >= -bound && x < bound)) {
      *y = x;
      *log_slope = 0;
      return;
    }
    const int j = Bin(xk, x);
    const double w = xk[j + 1] - xk[j], h = yk[j + 1] - yk[j], s = h / w, xi = (x - xk[j]) / w, t = xi * (1 - xi);
    const double den = s + (d[j] + d[j + 1] - 2 * s) * t;
    *y = yk[j] + h * (s * xi * xi + d[j] * t) / den;
    *log_slope = std::log(s * s * (d[j + 1] * xi * xi + 2 * s * t + d[j] * (1 - xi) * (1 - xi)) / (den * den));
  }

  // x with forward(x) = y, by bisection (independent of the kernel's quadratic formula).
  double Inverse(double y) const {
    if (!(y >= -bound && y < bound)) return y;
    double lo = -bound, hi = bound, fy, ls;
    for (int it = 0; it < 200; ++it) {
      const double mid = 0.5 * (lo + hi);
      Forward(mid, &fy, &ls);
      (fy < y ? lo : hi) = mid;
    }
    return 0.5 * (lo + hi);
  }
};

struct Shape {
  std::size_t batch, dim, width, start, bins;
  float bound;
};

struct Data {
  std::vector<float> x, params, dy, dl;
};

Data MakeData(flowvae::test::Random& rng, const Shape& s) {
  const std::size_t P = 3 * s.bins - 1;
  Data d;
  d.x = rng.floats(s.batch * s.dim, -1.2 * s.bound, 1.2 * s.bound);
  d.params = rng.floats(s.batch * P * s.width, -1.5, 1.5);
  d.dy = rng.floats(s.batch * s.dim, -1, 1);
  d.dl = rng.floats(s.batch, -1, 1);
  // The ends, a value just below B and tails, at the first elements.
  const float special[] = {-s.bound, s.bound, std::nextafter(s.bound, 0.0f), -2 * s.bound, 3 * s.bound};
  for (std::size_t k = 0; k < 5 && k < s.batch * s.width; ++k)
    d.x[(k % s.batch) * s.dim + s.start + (k / s.batch) % s.width] = special[k];
  return d;
}

void TestAgainstDefinition(flowvae::test::Random& rng, const Shape& s) {
  const std::size_t P = 3 * s.bins - 1, n = s.batch * s.dim;
  const Data d = MakeData(rng, s);
  const float fill = 7.5f;
  std::vector<float> y(n, fill), ld(s.batch), dx(n, fill), dp(s.batch * P * s.width), xi(n, fill), ldi(s.batch);
  flowvae::spline_forward(d.x.data(), d.params.data(), y.data(), ld.data(), s.batch, s.dim, s.width, s.start, s.bins,
                          s.bound);
  flowvae::spline_backward(d.x.data(), d.params.data(), d.dy.data(), d.dl.data(), dx.data(), dp.data(), s.batch, s.dim,
                           s.width, s.start, s.bins, s.bound);
  flowvae::spline_inverse(y.data(), d.params.data(), xi.data(), ldi.data(), s.batch, s.dim, s.width, s.start, s.bins,
                          s.bound);
  for (std::size_t r = 0; r < s.batch; ++r) {
    double ld_sum = 0;
    for (std::size_t c = 0; c < s.dim; ++c) {
      const std::size_t at = r * s.dim + c;
      if (c < s.start || c >= s.start + s.width) {
        CHECK(y[at] == fill && dx[at] == fill && xi[at] == fill);  // outside the window: untouched
        continue;
      }
      const std::size_t i = c - s.start;
      const float* theta = d.params.data() + r * P * s.width + i;
      const Spline sp(theta, s.width, static_cast<int>(s.bins), s.bound);
      double y_ref, ls;
      sp.Forward(d.x[at], &y_ref, &ls);
      ld_sum += ls;
      const bool inside = d.x[at] >= -s.bound && d.x[at] < s.bound;
      if (!inside) {
        CHECK(y[at] == d.x[at] && dx[at] == d.dy[at] && xi[at] == y[at]);  // tails: exactly the identity
      } else {
        // float32 knots are within ~K·ε·2B of these (see test/spline-cases.ts): 3e-5·B/3 on y.
        CHECK(std::fabs(y[at] - y_ref) <= 3e-5 * s.bound / 3);
        // Round trip through float32 y: its rounding (~ε·B) is divided by the slope (≥ ~0.05 here).
        CHECK(std::fabs(xi[at] - d.x[at]) <= 2e-4 * s.bound / 3);
      }
      if (d.x[at] == -s.bound || d.x[at] == s.bound) CHECK(y[at] == d.x[at]);  // ends map exactly
      // Backward vs central differences of the double transcription (h = 1e-4 of B: truncation
      // ≲ 1e-7·|f'''|, plus the float32 kernel's own ~1e-4 relative error in gradients).
      const double h = 1e-4 * s.bound;
      auto loss = [&](double xv, const float* th) {
        const Spline q(th, s.width, static_cast<int>(s.bins), s.bound);
        double yv, lv;
        q.Forward(xv, &yv, &lv);
        return d.dy[at] * yv + d.dl[r] * lv;
      };
      // Skip stencils that cross a knot or an end (derivatives jump there).
      bool near_edge = false;
      for (double k : sp.xk) near_edge |= std::fabs(d.x[at] - k) <= 2e-3 * s.bound;
      if (near_edge) continue;
      const double g_num = (loss(d.x[at] + h, theta) - loss(d.x[at] - h, theta)) / (2 * h);
      CHECK_CLOSE(dx[at], g_num, 2e-3);
      std::vector<float> th(theta, theta + (P - 1) * s.width + 1);  // a private copy to perturb (stride width)
      for (std::size_t j = 0; j < P; ++j) {
        float& v = th[j * s.width];
        const float saved = v;
        // θ in float32: a step of 2^-10 is exact; the FD error is O(step²·f''') ≲ 1e-5.
        const float step = 1.0f / 1024;
        v = saved + step;
        const double up = loss(d.x[at], th.data());
        v = saved - step;
        const double down = loss(d.x[at], th.data());
        v = saved;
        CHECK_CLOSE(dp[r * P * s.width + j * s.width + i], (up - down) / (2 * step), 3e-3);
      }
    }
    CHECK_CLOSE(ld[r], ld_sum, 2e-5 * std::max<std::size_t>(1, s.width));
    CHECK_CLOSE(ldi[r], -ld[r], 1e-4 * std::max<std::size_t>(1, s.width));
  }
}

void TestInverseAgainstBisection(flowvae::test::Random& rng) {
  const std::size_t bins = 6, P = 3 * bins - 1, batch = 64;
  const float bound = 2.5f;
  auto u = rng.floats(batch, -1.2 * bound, 1.2 * bound);
  auto params = rng.floats(batch * P, -1.5, 1.5);
  std::vector<float> x(batch), ld(batch);
  flowvae::spline_inverse(u.data(), params.data(), x.data(), ld.data(), batch, 1, 1, 0, bins, bound);
  for (std::size_t r = 0; r < batch; ++r) {
    const Spline sp(params.data() + r * P, 1, static_cast<int>(bins), bound);
    const double x_ref = sp.Inverse(u[r]);
    CHECK(std::fabs(x[r] - x_ref) <= 2e-4 * bound / 3);
    double y, ls;
    sp.Forward(x_ref, &y, &ls);
    CHECK(std::fabs(ld[r] + ls) <= 1e-4);
  }
}

void TestMonotone(flowvae::test::Random& rng) {
  const std::size_t bins = 8, P = 3 * bins - 1, n = 3001;
  const float bound = 3;
  auto theta = rng.floats(P, -2.5, 2.5);
  std::vector<float> x(n), params(n * P), y(n), ld(n);
  for (std::size_t r = 0; r < n; ++r) {
    x[r] = static_cast<float>(-1.2 * bound + 2.4 * bound * r / (n - 1));
    std::copy(theta.begin(), theta.end(), params.begin() + r * P);
  }
  flowvae::spline_forward(x.data(), params.data(), y.data(), ld.data(), n, 1, 1, 0, bins, bound);
  int bad = 0;
  for (std::size_t r = 1; r < n; ++r) bad += !(y[r] >= y[r - 1]);
  CHECK(bad == 0);
}

void TestEmptyAndThreads(flowvae::test::Random& rng) {
  // batch 0 and width 0: nothing read, log-det 0.
  flowvae::spline_forward(nullptr, nullptr, nullptr, nullptr, 0, 3, 2, 0, 4, 1.0f);
  std::vector<float> x(6, 1.0f), y(6, 2.0f), ld(2, 5.0f);
  flowvae::spline_forward(x.data(), nullptr, y.data(), ld.data(), 2, 3, 0, 3, 4, 1.0f);
  CHECK(ld[0] == 0 && ld[1] == 0 && y[0] == 2.0f);
  // The same bits at 1 and 2 threads (rows split across tasks).
  const Shape s{700, 40, 20, 20, 8, 3};
  const std::size_t P = 3 * s.bins - 1, n = s.batch * s.dim;
  const Data d = MakeData(rng, s);
  std::vector<float> out[2][4];
  const int before = flowvae::num_threads();
  for (int t = 0; t < 2; ++t) {
    flowvae::set_num_threads(t + 1);
    out[t][0].assign(n, 0);
    out[t][1].assign(s.batch, 0);
    out[t][2].assign(n, 0);
    out[t][3].assign(s.batch * P * s.width, 0);
    flowvae::spline_forward(d.x.data(), d.params.data(), out[t][0].data(), out[t][1].data(), s.batch, s.dim, s.width,
                            s.start, s.bins, s.bound);
    flowvae::spline_backward(d.x.data(), d.params.data(), d.dy.data(), d.dl.data(), out[t][2].data(), out[t][3].data(),
                             s.batch, s.dim, s.width, s.start, s.bins, s.bound);
  }
  flowvae::set_num_threads(before);
  for (int k = 0; k < 4; ++k)
    CHECK(std::memcmp(out[0][k].data(), out[1][k].data(), out[0][k].size() * sizeof(float)) == 0);
}

}  // namespace

void test_spline() {
  flowvae::test::Random rng(2019);
  const Shape shapes[] = {
      {1, 1, 1, 0, 8, 3},   {1, 1, 1, 0, 1, 3},   {3, 2, 1, 1, 2, 1.5f}, {2, 17, 17, 0, 8, 3}, {2, 40, 20, 20, 8, 3},
      {2, 37, 33, 3, 5, 2}, {3, 20, 15, 1, 3, 5}, {1, 64, 64, 0, 2, 3},  {2, 9, 7, 2, 40, 3},  // many bins
  };
  for (const Shape& s : shapes) TestAgainstDefinition(rng, s);
  TestInverseAgainstBisection(rng);
  TestMonotone(rng);
  TestEmptyAndThreads(rng);
}
