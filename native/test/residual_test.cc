// Residual-flow kernels against finite differences and their own identities:
// spectral normalization (σ̂ against a float64 power iteration to
// convergence, out = W·c/σ̂, the gradient through it), the exact log-det
// against log|det| of the numerical Jacobian, the estimator's one-term
// series against the Jacobian's diagonal, the inverse round trip, backward
// against central differences of a float64-accumulated loss, batch 0, D = 1,
// widths off every SIMD width, and network gradients the same bits at 1, 2
// and 3 threads. Float32 kernels: every tolerance below is stated with its
// reason next to it.
#include <cmath>
#include <cstdint>
#include <vector>

#include "check.h"
#include "flowvae/parallel.h"
#include "flowvae/residual.h"

namespace {

using flowvae::test::Random;

struct Net {
  std::vector<uint32_t> sizes;
  std::vector<float> net;
  std::size_t layers() const { return sizes.size() - 1; }
  std::size_t dim() const { return sizes[0]; }
};

// Weights uniform on ±scale/√in (contractive enough for the fixed point), biases on ±0.3.
Net MakeNet(Random& rng, std::vector<uint32_t> sizes, double scale) {
  Net n{sizes, {}};
  for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
    const double bound = scale / std::sqrt(static_cast<double>(sizes[l]));
    for (std::size_t i = 0; i < sizes[l + 1] * sizes[l]; ++i)
      n.net.push_back(static_cast<float>(rng.uniform(-bound, bound)));
    for (std::size_t i = 0; i < sizes[l + 1]; ++i) n.net.push_back(static_cast<float>(rng.uniform(-0.3, 0.3)));
  }
  CHECK(n.net.size() == flowvae::residual_net_size(n.sizes.data(), n.layers()));
  return n;
}

double LogAbsDet(std::vector<double> a, std::size_t n) {
  double s = 0;
  for (std::size_t c = 0; c < n; ++c) {
    std::size_t p = c;
    for (std::size_t r = c + 1; r < n; ++r)
      if (std::fabs(a[r * n + c]) > std::fabs(a[p * n + c])) p = r;
    if (p != c)
      for (std::size_t k = 0; k < n; ++k) std::swap(a[c * n + k], a[p * n + k]);
    s += std::log(std::fabs(a[c * n + c]));
    for (std::size_t r = c + 1; r < n; ++r) {
      const double f = a[r * n + c] / a[c * n + c];
      for (std::size_t k = c; k < n; ++k) a[r * n + k] -= f * a[c * n + k];
    }
  }
  return s;
}

struct Output {
  std::vector<float> y, log_det, stash;
};

Output Forward(const Net& n, int act, const std::vector<float>& x, std::size_t batch, const float* noise = nullptr,
               const float* terms = nullptr, double p = 0.5, std::size_t exact_terms = 2) {
  const std::size_t d = n.dim();
  Output o{std::vector<float>(batch * d), std::vector<float>(batch),
           std::vector<float>(batch * flowvae::residual_stash_size(n.sizes.data(), n.layers(), noise == nullptr))};
  const std::size_t bad =
      flowvae::residual_forward(x.data(), n.net.data(), n.sizes.data(), n.layers(), act, noise, terms, p, exact_terms,
                                o.y.data(), o.log_det.data(), o.stash.data(), batch);
  CHECK(bad == 0);
  return o;
}

void TestNormalize(Random& rng) {
  for (auto [rows, cols] : {std::pair<std::size_t, std::size_t>{1, 1}, {5, 3}, {17, 33}}) {
    std::vector<float> w(rows * cols), u(rows), v(cols), out(rows * cols), sigma(1);
    for (auto& a : w) a = static_cast<float>(rng.uniform(-2, 2));
    for (auto& a : u) a = static_cast<float>(rng.uniform(0.1, 1));
    for (auto& a : v) a = static_cast<float>(rng.uniform(0.1, 1));
    flowvae::residual_normalize(w.data(), u.data(), v.data(), out.data(), sigma.data(), rows, cols, 0.9f, 500);
    // σ_max by 2000 float64 power steps on WᵀW.
    std::vector<double> x(cols, 1.0), y(rows);
    double s = 0;
    for (int it = 0; it < 2000; ++it) {
      for (std::size_t i = 0; i < rows; ++i) {
        y[i] = 0;
        for (std::size_t j = 0; j < cols; ++j) y[i] += w[i * cols + j] * x[j];
      }
      double nx = 0;
      for (std::size_t j = 0; j < cols; ++j) {
        x[j] = 0;
        for (std::size_t i = 0; i < rows; ++i) x[j] += w[i * cols + j] * y[i];
        nx += x[j] * x[j];
      }
      nx = std::sqrt(nx);
      s = std::sqrt(nx);
      for (auto& a : x) a /= nx;
    }
    // The float32 vectors hold σ̂ to ~1e-6 relative (a converged Rayleigh quotient is second-order accurate).
    CHECK_CLOSE(sigma[0], s, 1e-5);
    const double scale = sigma[0] > 0.9f ? 0.9 / sigma[0] : 1.0;
    for (std::size_t i = 0; i < rows * cols; ++i) CHECK_CLOSE(out[i], w[i] * scale, 1e-6);
    // Gradient through the normalization against central differences of ⟨G, out(W)⟩ with u, v fixed (0 steps).
    std::vector<float> g(rows * cols), dw(rows * cols, 0.0f);
    for (auto& a : g) a = static_cast<float>(rng.uniform(-1, 1));
    flowvae::residual_normalize_backward(w.data(), u.data(), v.data(), sigma[0], g.data(), dw.data(), rows, cols, 0.9f);
    for (std::size_t k = 0; k < rows * cols; k += 7) {
      auto loss = [&](float delta) {
        std::vector<float> ww = w, o(rows * cols), sg(1), uu = u, vv = v;
        ww[k] += delta;
        flowvae::residual_normalize(ww.data(), uu.data(), vv.data(), o.data(), sg.data(), rows, cols, 0.9f, 0);
        double l = 0;
        for (std::size_t i = 0; i < rows * cols; ++i) l += static_cast<double>(g[i]) * o[i];
        return l;
      };
      const float h = 1e-2f;
      // ⟨G, out⟩ is smooth in W here (σ̂ far from c); float32 outputs over h = 1e-2: ~1e-4 absolute.
      CHECK_CLOSE(dw[k], (loss(h) - loss(-h)) / (2 * h), 2e-3);
    }
  }
}

void TestLogDetAndInverse(Random& rng, std::vector<uint32_t> sizes, int act) {
  const Net n = MakeNet(rng, sizes, 0.6);
  const std::size_t d = n.dim(), batch = 5;
  const auto x = rng.floats(batch * d, -1.5, 1.5);
  const Output o = Forward(n, act, x, batch);
  for (std::size_t r = 0; r < batch; ++r) {
    std::vector<double> jac(d * d);
    const double h = 1e-2;
    for (std::size_t j = 0; j < d; ++j) {
      auto up = x, down = x;
      up[r * d + j] += static_cast<float>(h);
      down[r * d + j] -= static_cast<float>(h);
      const Output ou = Forward(n, act, up, batch), od = Forward(n, act, down, batch);
      for (std::size_t i = 0; i < d; ++i)
        jac[i * d + j] = (static_cast<double>(ou.y[r * d + i]) - od.y[r * d + i]) /
                         (static_cast<double>(up[r * d + j]) - down[r * d + j]);
    }
    // Float32 y differenced over 2h = 2e-2: entries to ~1e-5 (rounding) + h²·g''' (~1e-4 for these nets).
    CHECK_CLOSE(o.log_det[r], LogAbsDet(jac, d), 2e-3);
    // One series term with v = e_i estimates J_ii exactly: Σ_i is tr(J).
    if (r == 0) {
      double trace = 0, diag = 0;
      std::vector<float> e(d), one(1, 1.0f);
      for (std::size_t i = 0; i < d; ++i) {
        std::fill(e.begin(), e.end(), 0.0f);
        e[i] = 1;
        const std::vector<float> row(x.begin(), x.begin() + d);
        diag += Forward(n, act, row, 1, e.data(), one.data(), 1.0, 1).log_det[0];
        trace += jac[i * d + i] - 1.0;
      }
      CHECK_CLOSE(diag, trace, 2e-3);
    }
  }
  // Inverse (float64 iteration to 1e-9, bound 1e-9·c/(1 − c)): float32 round trip to a few ulp.
  std::vector<float> back(batch * d), ld(batch);
  const std::size_t bad = flowvae::residual_inverse(o.y.data(), n.net.data(), n.sizes.data(), n.layers(), act, nullptr,
                                                    nullptr, 0.5, 2, 1e-9, 2000, back.data(), ld.data(), batch);
  CHECK(bad == 0);
  for (std::size_t i = 0; i < batch * d; ++i) CHECK_CLOSE(back[i], x[i], 1e-5);
  for (std::size_t r = 0; r < batch; ++r) CHECK_CLOSE(ld[r], -o.log_det[r], 1e-4);
  // A budget of 1 step cannot converge: every row is counted, with a NaN log-det.
  const std::size_t unconverged =
      flowvae::residual_inverse(o.y.data(), n.net.data(), n.sizes.data(), n.layers(), act, nullptr, nullptr, 0.5, 2,
                                1e-9, 1, back.data(), ld.data(), batch);
  CHECK(unconverged == batch);
  CHECK(std::isnan(ld[0]));
}

// Backward (exact log-det) against central differences of L = Σ dy·y + Σ dl·logDet.
void TestBackward(Random& rng, std::vector<uint32_t> sizes, int act) {
  Net n = MakeNet(rng, sizes, 0.6);
  const std::size_t d = n.dim(), batch = 3;
  auto x = rng.floats(batch * d, -1.5, 1.5);
  const auto dy = rng.floats(batch * d), dl = rng.floats(batch);
  auto loss = [&]() {
    const Output o = Forward(n, act, x, batch);
    double l = 0;
    for (std::size_t i = 0; i < batch * d; ++i) l += static_cast<double>(dy[i]) * o.y[i];
    for (std::size_t r = 0; r < batch; ++r) l += static_cast<double>(dl[r]) * o.log_det[r];
    return l;
  };
  const Output o = Forward(n, act, x, batch);
  std::vector<float> dx(batch * d), d_net(n.net.size(), 0.25f);
  CHECK(flowvae::residual_backward(x.data(), n.net.data(), n.sizes.data(), n.layers(), act, true, o.stash.data(),
                                   dy.data(), dl.data(), dx.data(), d_net.data(), batch) == 0);
  auto numeric = [&](float* target) {
    const float s = *target, h = 1e-2f;
    *target = s + h;
    const double up = loss();
    *target = s - h;
    const double down = loss();
    *target = s;
    return (up - down) / (2.0 * h);
  };
  // Float32 outputs over 2h = 2e-2 (~1e-4) plus h²·L''' for these nets: 1e-2 relative to the gradient's size.
  for (std::size_t i = 0; i < batch * d; ++i) CHECK_CLOSE(dx[i], numeric(&x[i]), 1e-2);
  for (std::size_t k = 0; k < n.net.size(); k += 3) CHECK_CLOSE(d_net[k] - 0.25f, numeric(&n.net[k]), 1e-2);
}

void TestThreads(Random& rng) {
  const Net n = MakeNet(rng, {4, 33, 17, 4}, 0.6);
  const std::size_t d = 4, batch = 301;
  const auto x = rng.floats(batch * d, -1, 1), dy = rng.floats(batch * d), dl = rng.floats(batch);
  const auto noise = rng.floats(batch * d);
  std::vector<float> terms(batch);
  for (std::size_t r = 0; r < batch; ++r) terms[r] = static_cast<float>(2 + r % 5);
  const int before = flowvae::num_threads();
  for (const bool exact : {true, false}) {
    std::vector<float> first;
    for (int threads : {1, 2, 3}) {
      flowvae::set_num_threads(threads);
      const Output o = exact ? Forward(n, 0, x, batch) : Forward(n, 0, x, batch, noise.data(), terms.data());
      std::vector<float> dx(batch * d), d_net(n.net.size(), 0.0f);
      flowvae::residual_backward(x.data(), n.net.data(), n.sizes.data(), n.layers(), 0, exact, o.stash.data(),
                                 dy.data(), dl.data(), dx.data(), d_net.data(), batch);
      if (first.empty()) {
        first = d_net;
      } else {
        bool same = true;
        for (std::size_t k = 0; k < d_net.size(); ++k) same = same && d_net[k] == first[k];
        CHECK(same);
      }
    }
  }
  flowvae::set_num_threads(before);
}

}  // namespace

void test_residual() {
  Random rng(1919);
  TestNormalize(rng);
  for (int act : {0, 1}) {
    TestLogDetAndInverse(rng, {1, 1, 1}, act);
    TestLogDetAndInverse(rng, {3, 9, 3}, act);
    TestLogDetAndInverse(rng, {7, 17, 5, 7}, act);
    TestBackward(rng, {1, 4, 1}, act);
    TestBackward(rng, {3, 5, 6, 3}, act);
  }
  TestThreads(rng);
  // Batch 0 touches nothing.
  const Net n = MakeNet(rng, {2, 3, 2}, 0.5);
  CHECK(flowvae::residual_forward(nullptr, n.net.data(), n.sizes.data(), 2, 0, nullptr, nullptr, 0.5, 2, nullptr,
                                  nullptr, nullptr, 0) == 0);
  CHECK(flowvae::residual_backward(nullptr, n.net.data(), n.sizes.data(), 2, 0, true, nullptr, nullptr, nullptr,
                                   nullptr, nullptr, 0) == 0);
}
