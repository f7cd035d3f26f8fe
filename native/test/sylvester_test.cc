// Sylvester kernels against a plain double implementation written here:
// forward and log-det directly, every gradient by central differences of the
// double forward, on each SIMD path the machine has (scalar, AVX2, AVX-512),
// shared and amortized, all three variants, sizes off every SIMD width.
#include "flowvae/sylvester.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "check.h"

namespace {

using flowvae::SimdLevel;
using flowvae::SylvesterLayout;
using flowvae::SylvesterShape;
using flowvae::SylvesterVariant;
using Vec = std::vector<double>;

// A fixed number of Björck steps (the tolerance is never met) keeps the map
// smooth, so central differences see what backward differentiates.
constexpr std::size_t kSteps = 20;
constexpr double kNeverMet = 1e-300;

double clamp_tanh(double raw) { return std::tanh(std::min(std::max(raw, -8.0), 8.0)); }

// Q (D x M) of layer k of one parameter set, in double.
Vec layer_q(const SylvesterShape& s, const SylvesterLayout& lay, const Vec& p, std::size_t set, std::size_t k) {
  const std::size_t d = s.dim, m = s.m;
  Vec q(d * m, 0.0);
  const double* raw = p.data() + set * lay.size + lay.q + k * lay.q_raw_per_layer;
  if (s.variant == SylvesterVariant::kTriangular) {
    for (std::size_t i = 0; i < d; ++i) q[(k % 2 == 0 ? i : d - 1 - i) * m + i] = 1;
  } else if (s.variant == SylvesterVariant::kOrthogonal) {
    double n2 = 0;
    for (std::size_t i = 0; i < d * m; ++i) n2 += raw[i] * raw[i];
    for (std::size_t i = 0; i < d * m; ++i) q[i] = raw[i] / std::sqrt(n2);
    for (std::size_t step = 0; step < kSteps; ++step) {
      Vec g(m * m, 0.0), next(d * m, 0.0);
      for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < m; ++j)
          for (std::size_t r = 0; r < d; ++r) g[i * m + j] += q[r * m + i] * q[r * m + j];
      for (std::size_t r = 0; r < d; ++r)
        for (std::size_t j = 0; j < m; ++j)
          for (std::size_t i = 0; i < m; ++i)
            next[r * m + j] += q[r * m + i] * ((i == j ? 1.5 : 0.0) - 0.5 * g[i * m + j]);
      q = next;
    }
  } else {
    for (std::size_t i = 0; i < d; ++i) q[i * d + i] = 1;
    for (std::size_t h = 0; h < s.householders; ++h) {
      const double* v = raw + h * d;
      double n2 = 0;
      for (std::size_t i = 0; i < d; ++i) n2 += v[i] * v[i];
      Vec w(d, 0.0);  // w = Q^T v / |v|^2 ... Q <- (I - 2 v v^T/|v|^2) Q
      for (std::size_t c = 0; c < d; ++c)
        for (std::size_t r = 0; r < d; ++r) w[c] += v[r] * q[r * d + c];
      for (std::size_t r = 0; r < d; ++r)
        for (std::size_t c = 0; c < d; ++c) q[r * d + c] -= 2 * v[r] * w[c] / n2;
    }
  }
  return q;
}

// y and log-det of every row; returns sum(y .* gy) + sum(ld .* gl).
double forward(const SylvesterShape& s, const SylvesterLayout& lay, std::size_t batch, bool amortized, const Vec& x,
               const Vec& p, const Vec& gy, const Vec& gl, Vec* y_out, Vec* ld_out) {
  const std::size_t d = s.dim, m = s.m;
  double loss = 0;
  std::vector<Vec> qs;
  for (std::size_t row = 0; row < batch; ++row) {
    const std::size_t set = amortized ? row : 0;
    if (amortized || row == 0) {
      qs.clear();
      for (std::size_t k = 0; k < s.layers; ++k) qs.push_back(layer_q(s, lay, p, set, k));
    }
    const double* ps = p.data() + set * lay.size;
    Vec z(x.begin() + row * d, x.begin() + (row + 1) * d);
    double ld = 0;
    for (std::size_t k = 0; k < s.layers; ++k) {
      const Vec& q = qs[k];
      const double* sm = ps + lay.off_diagonal + k * m * m;
      Vec u(m, 0.0), t(m), v(m);
      for (std::size_t j = 0; j < m; ++j)
        for (std::size_t r = 0; r < d; ++r) u[j] += q[r * m + j] * z[r];
      for (std::size_t i = 0; i < m; ++i) {
        const double rii = clamp_tanh(ps[lay.diagonal + k * m + i]);
        const double rtii = clamp_tanh(ps[lay.diagonal_tilde + k * m + i]);
        double a = ps[lay.bias + k * m + i] + rtii * u[i];
        for (std::size_t j = i + 1; j < m; ++j) a += sm[j * m + i] * u[j];
        t[i] = std::tanh(a);
        ld += std::log1p((1 - t[i] * t[i]) * rii * rtii);
      }
      for (std::size_t i = 0; i < m; ++i) {
        v[i] = clamp_tanh(ps[lay.diagonal + k * m + i]) * t[i];
        for (std::size_t j = i + 1; j < m; ++j) v[i] += sm[i * m + j] * t[j];
      }
      for (std::size_t r = 0; r < d; ++r)
        for (std::size_t j = 0; j < m; ++j) z[r] += q[r * m + j] * v[j];
    }
    for (std::size_t r = 0; r < d; ++r) loss += z[r] * gy[row * d + r];
    loss += ld * gl[row];
    if (y_out) std::copy(z.begin(), z.end(), y_out->begin() + row * d);
    if (ld_out) (*ld_out)[row] = ld;
  }
  return loss;
}

Vec to_double(const std::vector<float>& f) { return Vec(f.begin(), f.end()); }

double max_abs(const Vec& a) {
  double m = 0;
  for (double v : a) m = std::max(m, std::fabs(v));
  return m;
}

void check_case(SimdLevel level, SylvesterVariant variant, bool amortized, std::size_t d, std::size_t m_orth,
                std::size_t layers, std::size_t batch, uint64_t seed) {
  SylvesterShape s{variant, d, variant == SylvesterVariant::kOrthogonal ? m_orth : d, layers,
                   variant == SylvesterVariant::kHouseholder ? 3u : 0u};
  const SylvesterLayout lay = flowvae::sylvester_layout(s);
  const std::size_t sets = amortized ? batch : 1;
  flowvae::test::Random rng(seed);
  std::vector<float> params = rng.floats(sets * lay.size, -0.5, 0.5);
  for (std::size_t set = 0; set < sets; ++set)
    for (std::size_t i = lay.q; i < lay.size; ++i)
      params[set * lay.size + i] = static_cast<float>(rng.uniform(-1.7, 1.7));
  const std::vector<float> x = rng.floats(batch * d, -2, 2), gy = rng.floats(batch * d), gl = rng.floats(batch);
  std::vector<float> q(sets * layers * lay.q_per_layer), y(batch * d), ld(batch), saved(batch * lay.saved_per_row);
  std::vector<float> gx(batch * d), gp(sets * lay.size, 0.0f), gq(q.size());

  flowvae::sylvester_orthogonalize(level, s, sets, params.data(), q.data(), kSteps, kNeverMet);
  flowvae::sylvester_forward(level, s, batch, amortized, x.data(), params.data(), q.data(), y.data(), ld.data(),
                             saved.data());
  flowvae::sylvester_backward(level, s, batch, amortized, params.data(), q.data(), saved.data(), gy.data(), gl.data(),
                              gx.data(), gp.data(), gq.data());
  flowvae::sylvester_orthogonalize_backward(level, s, sets, params.data(), gq.data(), gp.data(), kSteps, kNeverMet);

  Vec xd = to_double(x), pd = to_double(params), gyd = to_double(gy), gld = to_double(gl);
  Vec yd(batch * d), ldd(batch);
  forward(s, lay, batch, amortized, xd, pd, gyd, gld, &yd, &ldd);
  // float32 through K layers: ~1e-6 of the largest value per layer.
  const double ys = 1 + max_abs(yd), ls = 1 + max_abs(ldd);
  for (std::size_t i = 0; i < y.size(); ++i) CHECK_CLOSE(y[i] / ys, yd[i] / ys, 2e-6 * layers);
  for (std::size_t i = 0; i < ld.size(); ++i) CHECK_CLOSE(ld[i] / ls, ldd[i] / ls, 2e-6 * layers);

  // Central differences of the double forward (h = 1e-6: error ~1e-10) at up to 40 inputs and 60 parameters.
  auto fd = [&](Vec& target, std::size_t i) {
    const double saved_value = target[i];
    target[i] = saved_value + 1e-6;
    const double up = forward(s, lay, batch, amortized, xd, pd, gyd, gld, nullptr, nullptr);
    target[i] = saved_value - 1e-6;
    const double down = forward(s, lay, batch, amortized, xd, pd, gyd, gld, nullptr, nullptr);
    target[i] = saved_value;
    return (up - down) / 2e-6;
  };
  Vec gxd = to_double(gx), gpd = to_double(gp);
  const double gxs = 1 + max_abs(gxd), gps = 1 + max_abs(gpd);
  // Gradients carry float32 error summed over rows and, for orthogonal Q, through 20 Björck steps.
  const double gtol = variant == SylvesterVariant::kOrthogonal ? 2e-4 : 5e-5;
  for (std::size_t n = 0; n < std::min<std::size_t>(40, xd.size()); ++n) {
    const std::size_t i = xd.size() <= 40 ? n : static_cast<std::size_t>(rng.uniform(0, 1) * xd.size()) % xd.size();
    CHECK_CLOSE(gxd[i] / gxs, fd(xd, i) / gxs, gtol);
  }
  for (std::size_t n = 0; n < std::min<std::size_t>(60, pd.size()); ++n) {
    const std::size_t i = pd.size() <= 60 ? n : static_cast<std::size_t>(rng.uniform(0, 1) * pd.size()) % pd.size();
    CHECK_CLOSE(gpd[i] / gps, fd(pd, i) / gps, gtol);
  }

  // inverse(forward(x)) = x
  std::vector<float> xi(batch * d), ldi(batch);
  const std::size_t failed = flowvae::sylvester_inverse(s, batch, amortized, y.data(), params.data(), q.data(),
                                                        xi.data(), ldi.data(), 100, 1e-6);
  CHECK(failed == 0);
  for (std::size_t i = 0; i < xi.size(); ++i) CHECK_CLOSE(xi[i], x[i], 1e-5);
  for (std::size_t i = 0; i < ldi.size(); ++i) CHECK_CLOSE(ldi[i], -ld[i], 1e-5);
}

void check_bjorck_converges(SimdLevel level) {
  // Gaussian-like raw matrices: max|Q^T Q - I| must reach the float32-safe tolerance.
  for (std::size_t d : {6u, 40u, 33u}) {
    const std::size_t m = d == 33 ? 7 : d;
    SylvesterShape s{SylvesterVariant::kOrthogonal, d, m, 2, 0};
    const SylvesterLayout lay = flowvae::sylvester_layout(s);
    flowvae::test::Random rng(d);
    std::vector<float> p = rng.floats(lay.size, -1, 1), q(2 * d * m);
    const double residual = flowvae::sylvester_orthogonalize(level, s, 1, p.data(), q.data(), 100, 1e-5);
    CHECK(residual <= 1e-5);
    for (std::size_t k = 0; k < 2; ++k)
      for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < m; ++j) {
          double sum = 0;
          for (std::size_t r = 0; r < d; ++r) sum += double(q[k * d * m + r * m + i]) * q[k * d * m + r * m + j];
          CHECK(std::fabs(sum - (i == j ? 1 : 0)) <= 2e-5);
        }
    // A zero raw matrix makes Q undefined: NaN, not garbage.
    std::fill(p.begin() + lay.q, p.begin() + lay.q + d * m, 0.0f);
    CHECK(std::isnan(flowvae::sylvester_orthogonalize(level, s, 1, p.data(), q.data(), 100, 1e-5)));
  }
}

void check_extreme_diagonals(SimdLevel level) {
  // Raw diagonals of +-1e30 and infinity: R_ii R~_ii = -tanh(8)^2 > -1, finite log-det at a = 0.
  SylvesterShape s{SylvesterVariant::kTriangular, 5, 5, 2, 0};
  const SylvesterLayout lay = flowvae::sylvester_layout(s);
  std::vector<float> p(lay.size, 0.0f);
  for (std::size_t i = 0; i < 10; ++i) {
    p[lay.diagonal + i] = i % 2 ? 1e30f : INFINITY;
    p[lay.diagonal_tilde + i] = i % 2 ? -1e30f : -INFINITY;
  }
  std::vector<float> x(5, 0.0f), y(5), ld(1);
  flowvae::sylvester_forward(level, s, 1, false, x.data(), p.data(), nullptr, y.data(), ld.data(), nullptr);
  // Each of the 10 terms is log(1 - tanh(8)^2) = -14.6; float32 rounds tanh(8) by up to
  // 3e-8, which moves 1 - t^2 = 4.5e-7 by up to 13% (the term by 0.13).
  const double exact = 10 * std::log1p(-std::pow(std::tanh(8.0), 2));
  CHECK(std::isfinite(ld[0]));
  CHECK(ld[0] >= 1.05 * exact && ld[0] <= 0.95 * exact);
  for (float v : y) CHECK(std::isfinite(v));
}

}  // namespace

void test_sylvester() {
  const SimdLevel best = flowvae::simd_level();
  for (SimdLevel level : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512}) {
    if (static_cast<int>(level) > static_cast<int>(best)) continue;
    uint64_t seed = 100;
    for (SylvesterVariant v :
         {SylvesterVariant::kOrthogonal, SylvesterVariant::kHouseholder, SylvesterVariant::kTriangular}) {
      for (bool amortized : {false, true}) {
        check_case(level, v, amortized, 1, 1, 1, 1, ++seed);
        check_case(level, v, amortized, 7, 5, 3, 5, ++seed);
        check_case(level, v, amortized, 17, 9, 2, 3, ++seed);
        check_case(level, v, amortized, 5, 3, 2, 70, ++seed);
      }
    }
    check_bjorck_converges(level);
    check_extreme_diagonals(level);
  }
}
