// The flow-stack kernels (planar, radial) against float64 implementations
// written here from the formulas (flowvae/planar.h, flowvae/radial.h): one
// table-driven suite, run once per family, for shared and amortized
// parameters at small awkward shapes: forward values, log-dets, per-layer
// log-dets, gradients (against central differences of the float64 forward),
// the inverse, non-finite rows, gradient accumulation and chunked reductions.
#include <cmath>
#include <vector>

#include "check.h"
#include "flowvae/parallel.h"
#include "flowvae/planar.h"
#include "flowvae/radial.h"

namespace {

using flowvae::test::Random;

double SoftplusRef(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }

// y, per-layer log-dets [B, K] of a stack in float64 with P parameters per
// layer: layer(p, k, z) moves the row z through layer k of the parameter row
// p and returns its log-det.
template <class Layer>
void StackForwardRef(const std::vector<double>& x, const std::vector<double>& params, bool amortized, std::size_t B,
                     std::size_t D, std::size_t K, std::size_t P, std::vector<double>* y, std::vector<double>* layer_ld,
                     Layer layer) {
  y->assign(x.begin(), x.end());
  layer_ld->assign(B * K, 0.0);
  for (std::size_t r = 0; r < B; ++r) {
    const double* p = params.data() + (amortized ? r * K * P : 0);
    for (std::size_t k = 0; k < K; ++k) (*layer_ld)[r * K + k] = layer(p, k, y->data() + r * D);
  }
}

void PlanarForwardRef(const std::vector<double>& x, const std::vector<double>& params, bool amortized, std::size_t B,
                      std::size_t D, std::size_t K, std::vector<double>* y, std::vector<double>* layer_ld) {
  StackForwardRef(x, params, amortized, B, D, K, 2 * D + 1, y, layer_ld,
                  [&](const double* p, std::size_t k, double* z) {
                    const double* u = p + k * D;
                    const double* w = p + K * D + k * D;
                    const double b = p[2 * K * D + k];
                    double wu = 0, wn2 = 0, a = b;
                    for (std::size_t d = 0; d < D; ++d) {
                      wu += w[d] * u[d];
                      wn2 += w[d] * w[d];
                      a += w[d] * z[d];
                    }
                    const double m = -1 + SoftplusRef(wu);
                    const double t = std::tanh(a);
                    double uw = 0;  // ûᵀw
                    for (std::size_t d = 0; d < D; ++d) {
                      const double uh = u[d] + (m - wu) * w[d] / wn2;
                      uw += uh * w[d];
                      z[d] += uh * t;
                    }
                    return std::log(std::fabs(1 + (1 - t * t) * uw));
                  });
}

void RadialForwardRef(const std::vector<double>& x, const std::vector<double>& params, bool amortized, std::size_t B,
                      std::size_t D, std::size_t K, std::vector<double>* y, std::vector<double>* layer_ld) {
  StackForwardRef(x, params, amortized, B, D, K, D + 2, y, layer_ld, [&](const double* p, std::size_t k, double* z) {
    const double* z0 = p + k * D;
    const double alpha = SoftplusRef(p[K * D + k]);
    const double beta = -alpha + SoftplusRef(p[K * D + K + k]);
    double r2 = 0;
    for (std::size_t d = 0; d < D; ++d) r2 += (z[d] - z0[d]) * (z[d] - z0[d]);
    const double rad = std::sqrt(r2);
    const double h = 1 / (alpha + rad);
    const double dh = -h * h;
    for (std::size_t d = 0; d < D; ++d) z[d] += beta * h * (z[d] - z0[d]);
    return static_cast<double>(D - 1) * std::log(1 + beta * h) + std::log(1 + beta * h + beta * dh * rad);
  });
}

// Radial at z = z0 (r = 0): y = z0 and a zero radius in the stash.
void CheckRadialAtCenter(const std::vector<float>& x, const std::vector<float>& y, const std::vector<float>& stash) {
  CHECK(y[0] == x[0] && y[1] == x[1] && stash[0] == 0.0f);
}

// One row of the table: a family's kernels, its float64 reference and the
// inputs of its edge cases (dim 2, one layer).
struct StackFamily {
  std::size_t (*param_size)(std::size_t dim);
  decltype(&flowvae::planar_forward) forward;
  decltype(&flowvae::planar_backward) backward;
  decltype(&flowvae::planar_inverse) inverse;
  bool backward_from_output;  // planar rebuilds the layers from y, radial from x
  decltype(&PlanarForwardRef) forward_ref;
  uint64_t first_seed;
  float non_finite;                 // an input value whose row must be counted as bad
  std::vector<float> small_params;  // shared parameters at dim 2, one layer
  std::vector<float> accumulate_x;  // inputs [2, 2] of the accumulation check
  void (*check_accumulate_forward)(const std::vector<float>& x, const std::vector<float>& y,
                                   const std::vector<float>& stash);  // or null
};

const StackFamily kPlanar{flowvae::planar_param_size,
                          flowvae::planar_forward,
                          flowvae::planar_backward,
                          flowvae::planar_inverse,
                          true,
                          PlanarForwardRef,
                          1,
                          NAN,
                          std::vector<float>(5, 0.3f),
                          {0.1f, 0.2f, 0.3f, 0.4f},
                          nullptr};

// The radial accumulation check runs at z = z0, where r = 0.
const StackFamily kRadial{flowvae::radial_param_size,
                          flowvae::radial_forward,
                          flowvae::radial_backward,
                          flowvae::radial_inverse,
                          false,
                          RadialForwardRef,
                          101,
                          INFINITY,
                          {0.3f, -0.2f, 0.5f, 0.1f},
                          {0.3f, -0.2f, 0.3f, -0.2f},
                          CheckRadialAtCenter};

struct Case {
  std::size_t B, D, K;
  bool amortized;
};

void CheckCase(const StackFamily& f, const Case& c, uint64_t seed) {
  const std::size_t B = c.B, D = c.D, K = c.K, P = f.param_size(D);
  const std::size_t np = (c.amortized ? B : 1) * K * P;
  Random rng(seed);
  const std::vector<float> x = rng.floats(B * D, -1.5, 1.5);
  const std::vector<float> params = rng.floats(np, -0.8, 0.8);
  const std::vector<float> dy = rng.floats(B * D);
  const std::vector<float> dl = rng.floats(B);
  std::vector<float> y(B * D), ld(B), layer_ld(B * K), stash(B * K), dx(B * D), dp(np, 0.0f), xi(B * D), ldi(B);
  CHECK(f.forward(x.data(), params.data(), c.amortized, y.data(), ld.data(), layer_ld.data(), stash.data(), B, D, K) ==
        0);

  const std::vector<double> xd(x.begin(), x.end());
  std::vector<double> pd(params.begin(), params.end());
  std::vector<double> yd, ldd;
  f.forward_ref(xd, pd, c.amortized, B, D, K, &yd, &ldd);
  // float32 through K ≤ 4 layers of O(1) values: 1e-5 relative to (1 + |value|).
  for (std::size_t i = 0; i < B * D; ++i) CHECK_CLOSE(y[i], yd[i], 1e-5);
  for (std::size_t r = 0; r < B; ++r) {
    double sum = 0;
    for (std::size_t k = 0; k < K; ++k) {
      CHECK_CLOSE(layer_ld[r * K + k], ldd[r * K + k], 1e-5);
      sum += ldd[r * K + k];
    }
    CHECK_CLOSE(ld[r], sum, 1e-5);
  }

  // Gradients of L = Σ y·dy + Σ logdet·dl against central differences of the float64 forward.
  const float* saved = f.backward_from_output ? y.data() : x.data();
  CHECK(f.backward(saved, stash.data(), params.data(), c.amortized, dy.data(), dl.data(), dx.data(), dp.data(), B, D,
                   K) == 0);
  auto loss = [&](const std::vector<double>& xs, const std::vector<double>& ps) {
    std::vector<double> yy, ll;
    f.forward_ref(xs, ps, c.amortized, B, D, K, &yy, &ll);
    double l = 0;
    for (std::size_t i = 0; i < B * D; ++i) l += yy[i] * dy[i];
    for (std::size_t r = 0; r < B; ++r)
      for (std::size_t k = 0; k < K; ++k) l += ll[r * K + k] * dl[r];
    return l;
  };
  const double h = 1e-6;
  std::vector<double> xs = xd;
  for (std::size_t i = 0; i < B * D; ++i) {
    xs[i] = xd[i] + h;
    const double up = loss(xs, pd);
    xs[i] = xd[i] - h;
    const double down = loss(xs, pd);
    xs[i] = xd[i];
    CHECK_CLOSE(dx[i], (up - down) / (2 * h), 1e-4);  // float32 gradient vs float64 difference quotient
  }
  for (std::size_t i = 0; i < np; ++i) {
    const double v = pd[i];
    pd[i] = v + h;
    const double up = loss(xd, pd);
    pd[i] = v - h;
    const double down = loss(xd, pd);
    pd[i] = v;
    CHECK_CLOSE(dp[i], (up - down) / (2 * h), 1e-4);
  }

  // Inverse of the float32 output returns the input.
  CHECK(f.inverse(y.data(), params.data(), c.amortized, xi.data(), ldi.data(), B, D, K) == 0);
  for (std::size_t i = 0; i < B * D; ++i) CHECK_CLOSE(xi[i], x[i], 1e-4);
  for (std::size_t r = 0; r < B; ++r) CHECK_CLOSE(ldi[r], -ld[r], 1e-4);
}

void RunSuite(const StackFamily& f) {
  const Case cases[] = {{1, 1, 1, false},  {1, 1, 1, true},  {3, 2, 4, false},  {3, 2, 4, true},
                        {17, 7, 3, false}, {17, 7, 3, true}, {5, 33, 2, false}, {5, 33, 2, true}};
  uint64_t seed = f.first_seed;
  for (const Case& c : cases) CheckCase(f, c, seed++);

  const std::size_t small_p = f.small_params.size();
  CHECK(small_p == f.param_size(2));
  const float* params = f.small_params.data();

  // A non-finite input row is counted, the others are not affected.
  std::vector<float> x = {0.1f, 0.2f, f.non_finite, 0.4f}, y(4), ld(2), st(2);
  CHECK(f.forward(x.data(), params, false, y.data(), ld.data(), nullptr, st.data(), 2, 2, 1) == 1);
  CHECK(std::isfinite(y[0]) && std::isfinite(y[1]) && std::isfinite(ld[0]));

  // Shared parameter gradients are added to what d_params holds.
  x = f.accumulate_x;
  std::vector<float> dy = {1, 0, 0, 1}, dl = {0.5f, 0.5f}, dx(4), g1(small_p, 0.0f), g2(small_p, 1.0f);
  CHECK(f.forward(x.data(), params, false, y.data(), ld.data(), nullptr, st.data(), 2, 2, 1) == 0);
  if (f.check_accumulate_forward) f.check_accumulate_forward(x, y, st);
  const float* saved = f.backward_from_output ? y.data() : x.data();
  CHECK(f.backward(saved, st.data(), params, false, dy.data(), dl.data(), dx.data(), g1.data(), 2, 2, 1) == 0);
  CHECK(f.backward(saved, st.data(), params, false, dy.data(), dl.data(), dx.data(), g2.data(), 2, 2, 1) == 0);
  for (std::size_t i = 0; i < small_p; ++i) CHECK_CLOSE(g2[i], g1[i] + 1.0f, 1e-6);

  // Large enough for the shared backward to split into several tasks: the
  // per-task partial sums must combine to the single-task result.
  {
    const std::size_t B = 40000, D = 1, K = 2, P = f.param_size(D);
    Random rng(77);
    const std::vector<float> xb = rng.floats(B * D, -1.5, 1.5), pb = rng.floats(K * P, -0.8, 0.8);
    const std::vector<float> dyb = rng.floats(B * D), dlb = rng.floats(B);
    std::vector<float> yb(B * D), ldb(B), stb(B * K), dxb(B * D), one(K * P, 0.0f), two(K * P, 0.0f);
    const int threads = flowvae::num_threads();
    CHECK(f.forward(xb.data(), pb.data(), false, yb.data(), ldb.data(), nullptr, stb.data(), B, D, K) == 0);
    const float* savedb = f.backward_from_output ? yb.data() : xb.data();
    flowvae::set_num_threads(1);
    f.backward(savedb, stb.data(), pb.data(), false, dyb.data(), dlb.data(), dxb.data(), one.data(), B, D, K);
    flowvae::set_num_threads(4);
    f.backward(savedb, stb.data(), pb.data(), false, dyb.data(), dlb.data(), dxb.data(), two.data(), B, D, K);
    flowvae::set_num_threads(threads);
    // Different summation order only (float32 within blocks of 512 rows,
    // float64 across blocks and tasks).
    for (std::size_t i = 0; i < K * P; ++i) CHECK_CLOSE(two[i], one[i], 1e-5);
  }

  // batch = 0 touches nothing.
  CHECK(f.forward(nullptr, params, true, nullptr, nullptr, nullptr, nullptr, 0, 2, 1) == 0);
}

}  // namespace

void test_planar() { RunSuite(kPlanar); }
void test_radial() { RunSuite(kRadial); }
