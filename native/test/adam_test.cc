// Fused Adam/AdamW against a double-precision transcription of PyTorch's
// clip_grad_norm_ + Adam/AdamW written here, on every SIMD path this CPU has,
// for the sanitizer test driver.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "check.h"
#include "flowvae/adam.h"
#include "flowvae/parallel.h"

namespace {

using flowvae::AdamOptions;
using flowvae::SimdLevel;

constexpr SimdLevel kLevels[] = {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512};

// torch.nn.utils.clip_grad_norm_ (when max_grad_norm > 0), then one step of
// torch.optim.Adam (L2) or AdamW (decoupled), in double. Returns the norm.
double reference_step(std::vector<double>& p, const std::vector<float>& g, std::vector<double>& m,
                      std::vector<double>& v, const AdamOptions& o) {
  double squares = 0.0;
  for (float gi : g) squares += static_cast<double>(gi) * gi;
  const double norm = std::sqrt(squares);
  const double scale = o.max_grad_norm > 0 ? std::min(1.0, o.max_grad_norm / (norm + 1e-6)) : 1.0;
  const double t = static_cast<double>(o.step);
  const double bias1 = 1.0 - std::pow(o.beta1, t);
  const double bias2 = 1.0 - std::pow(o.beta2, t);
  for (std::size_t i = 0; i < p.size(); ++i) {
    double grad = g[i] * scale;
    if (o.decoupled) {
      p[i] *= 1.0 - o.lr * o.weight_decay;
    } else {
      grad += o.weight_decay * p[i];
    }
    m[i] = o.beta1 * m[i] + (1.0 - o.beta1) * grad;
    v[i] = o.beta2 * v[i] + (1.0 - o.beta2) * grad * grad;
    const double denom = std::sqrt(v[i]) / std::sqrt(bias2) + o.eps;
    p[i] -= o.lr / bias1 * m[i] / denom;
  }
  return norm;
}

// Largest |a − b| / (|b| + floor) over the arrays.
double worst_relative(const std::vector<float>& a, const std::vector<double>& b, double floor) {
  double worst = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    double err = std::fabs(a[i] - b[i]) / (std::fabs(b[i]) + floor);
    if (!(err <= worst)) worst = err;  // NaN wins
  }
  return worst;
}

std::vector<AdamOptions> option_sets() {
  std::vector<AdamOptions> sets;
  AdamOptions plain;
  plain.lr = 1e-2;
  sets.push_back(plain);
  AdamOptions l2 = plain;
  l2.weight_decay = 0.1;
  sets.push_back(l2);
  AdamOptions adamw = plain;
  adamw.weight_decay = 0.5;
  adamw.decoupled = true;
  adamw.beta1 = 0.5;
  adamw.beta2 = 0.9;
  adamw.eps = 1e-3;
  sets.push_back(adamw);
  AdamOptions clipped = l2;
  clipped.max_grad_norm = 0.3;  // well below the gradient norms: clipping is active
  sets.push_back(clipped);
  AdamOptions loose = adamw;
  loose.max_grad_norm = 1e6;  // above them: the scale is 1 − ~1e-12
  sets.push_back(loose);
  return sets;
}

// Ten steps from the same float32 start. Each float32 operation rounds by up
// to 2⁻²⁴ ≈ 6e-8 relative; a step adds about two such roundings to p (|p| ~ 1,
// the update ≤ ~lr) and to m and v. After ten steps that is ≲ 1.2e-6 of the
// quantity's scale (measured worst: p 3.0e-7, m 1.4e-6, v 4.6e-7). The scale
// floors are the sizes of the terms added each step: 1 for p, 0.1 for m
// (|g| ≤ 2, so entries m ≈ 0 by cancellation carry absolute, not relative,
// error), 1e-4 for v ((1 − β₂)·g² with β₂ = 0.999).
void check_against_reference(SimdLevel level) {
  flowvae::test::Random random(11);
  for (const AdamOptions& base : option_sets()) {
    for (std::size_t n : {1u, 7u, 33u, 257u, 100003u}) {
      std::vector<float> p = random.floats(n, -1.5, 1.5), m(n, 0.0f), v(n, 0.0f);
      std::vector<double> pd(p.begin(), p.end()), md(n, 0.0), vd(n, 0.0);
      double worst_norm = 0;
      for (int step = 1; step <= 10; ++step) {
        std::vector<float> g = random.floats(n, -2.0, 2.0);
        AdamOptions o = base;
        o.step = static_cast<std::uint64_t>(step);
        const double norm = flowvae::adam_step(p.data(), g.data(), m.data(), v.data(), n, o, level);
        const double expected_norm = reference_step(pd, g, md, vd, o);
        worst_norm = std::max(worst_norm, std::fabs(norm - expected_norm) / expected_norm);
      }
      const double worst_p = worst_relative(p, pd, 1.0);
      const double worst_m = worst_relative(m, md, 0.1);
      const double worst_v = worst_relative(v, vd, 1e-4);
      CHECK(worst_p <= 1e-6);
      CHECK(worst_m <= 4e-6);
      CHECK(worst_v <= 2e-6);
      // Both sum exact squares in double, in different orders: n·2⁻⁵³ ≈ 1.1e-11
      // at most for n = 100003 (measured 4.4e-14).
      CHECK(worst_norm <= 1e-11);
    }
  }
}

// Step 1 in closed form: m̂ = g·s and v̂ = (g·s)², so p₁ = p₀ − lr·g·s / (|g·s| + eps),
// with s the clipping scale. One float rounding of p₀ − u and a few in u: 1e-6.
void check_first_step_closed_form(SimdLevel level) {
  const std::size_t n = 37;
  flowvae::test::Random random(5);
  std::vector<float> p0 = random.floats(n), g = random.floats(n, -3.0, 3.0);
  for (double max_norm : {0.0, 0.5}) {
    std::vector<float> p(p0), m(n, 0.0f), v(n, 0.0f);
    AdamOptions o;
    o.lr = 0.05;
    o.max_grad_norm = max_norm;
    const double norm = flowvae::adam_step(p.data(), g.data(), m.data(), v.data(), n, o, level);
    const double s = max_norm > 0 ? max_norm / (norm + 1e-6) : 1.0;
    bool close = true;
    for (std::size_t i = 0; i < n; ++i) {
      const double gs = g[i] * s;
      const double expected = p0[i] - o.lr * gs / (std::fabs(gs) + o.eps);
      close = close && std::fabs(p[i] - expected) <= 1e-6 * (1.0 + std::fabs(expected));
    }
    CHECK(close);
  }
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The same bits at 1 and 2 threads and on every SIMD path, norm included.
void check_bit_identical() {
  const std::size_t n = 100003;  // seven blocks, so two threads split them
  flowvae::test::Random random(3);
  const std::vector<float> p0 = random.floats(n), g1 = random.floats(n), g2 = random.floats(n);
  const int saved_threads = flowvae::num_threads();
  for (double max_norm : {0.0, 50.0}) {
    std::vector<float> first_p, first_m, first_v;
    double first_norm = 0.0;
    bool first = true;
    for (int threads : {1, 2}) {
      flowvae::set_num_threads(threads);
      for (SimdLevel level : kLevels) {
        std::vector<float> p(p0), m(n, 0.0f), v(n, 0.0f);
        AdamOptions o;
        o.weight_decay = 0.01;
        o.decoupled = true;
        o.max_grad_norm = max_norm;
        flowvae::adam_step(p.data(), g1.data(), m.data(), v.data(), n, o, level);
        o.step = 2;
        const double norm = flowvae::adam_step(p.data(), g2.data(), m.data(), v.data(), n, o, level);
        if (first) {
          first_p = p, first_m = m, first_v = v, first_norm = norm;
          first = false;
        } else {
          CHECK(same_bits(p, first_p) && same_bits(m, first_m) && same_bits(v, first_v));
          CHECK(norm == first_norm);
        }
      }
    }
  }
  flowvae::set_num_threads(saved_threads);
}

void check_edge_cases(SimdLevel level) {
  AdamOptions o;
  CHECK(flowvae::adam_step(nullptr, nullptr, nullptr, nullptr, 0, o, level) == 0.0);
  // A NaN gradient gives a NaN norm; with clipping NaN reaches every parameter, as in PyTorch.
  std::vector<float> p(20, 1.0f), g(20, 0.5f), m(20, 0.0f), v(20, 0.0f);
  g[13] = std::numeric_limits<float>::quiet_NaN();
  o.max_grad_norm = 1.0;
  CHECK(std::isnan(flowvae::adam_step(p.data(), g.data(), m.data(), v.data(), 20, o, level)));
  CHECK(std::isnan(p[0]) && std::isnan(p[19]));
  // The gradient buffer is read only.
  std::vector<float> grads(33, 0.25f), params(33, 1.0f), m2(33, 0.0f), v2(33, 0.0f);
  o.max_grad_norm = 0.1;
  flowvae::adam_step(params.data(), grads.data(), m2.data(), v2.data(), 33, o, level);
  CHECK(std::all_of(grads.begin(), grads.end(), [](float x) { return x == 0.25f; }));
}

// adam_step_tensors over tensors cut from a flat buffer (sizes off every
// SIMD width, an empty one, one spanning several blocks) gives the flat
// step's bits without clipping (the element arithmetic is the same; only the
// norm's summation order differs), a norm within double rounding, and the
// same bits at 1 and 2 threads.
void check_tensors(SimdLevel level) {
  const std::vector<std::size_t> sizes{5, 0, 1, 17, 40, 33000, 300};
  std::size_t n = 0;
  for (std::size_t s : sizes) n += s;
  flowvae::test::Random random(21);
  const std::vector<float> p0 = random.floats(n), g = random.floats(n);
  const int saved_threads = flowvae::num_threads();
  for (double max_norm : {0.0, 20.0}) {
    AdamOptions o;
    o.max_grad_norm = max_norm;
    std::vector<float> flat_p(p0), flat_m(n, 0.0f), flat_v(n, 0.0f);
    const double flat_norm = flowvae::adam_step(flat_p.data(), g.data(), flat_m.data(), flat_v.data(), n, o, level);
    std::vector<float> first_p;
    double first_norm = 0.0;
    for (int threads : {1, 2}) {
      flowvae::set_num_threads(threads);
      std::vector<float> p(p0), m(n, 0.0f), v(n, 0.0f);
      std::vector<flowvae::AdamTensor> tensors;
      std::size_t offset = 0;
      for (std::size_t s : sizes) {
        tensors.push_back(flowvae::AdamTensor{p.data() + offset, g.data() + offset, s});
        offset += s;
      }
      const double norm = flowvae::adam_step_tensors(tensors.data(), tensors.size(), m.data(), v.data(), o, level);
      CHECK_CLOSE(norm, flat_norm, 1e-13);
      if (max_norm == 0.0) CHECK(same_bits(p, flat_p) && same_bits(m, flat_m) && same_bits(v, flat_v));
      if (threads == 1) {
        first_p = p;
        first_norm = norm;
      } else {
        CHECK(same_bits(p, first_p) && norm == first_norm);
      }
    }
  }
  flowvae::set_num_threads(saved_threads);
}

}  // namespace

void test_adam() {
  for (SimdLevel level : kLevels) {
    check_against_reference(level);
    check_first_step_closed_form(level);
    check_edge_cases(level);
    check_tensors(level);
  }
  check_bit_identical();
}
