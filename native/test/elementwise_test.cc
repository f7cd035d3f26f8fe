// Elementwise kernels against scalar double implementations written here, on
// every SIMD path this CPU has (the kernels cap the requested level), for the
// sanitizer test driver.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "check.h"
#include "flowvae/elementwise.h"
#include "flowvae/parallel.h"
#include "flowvae/simd_ops.h"

namespace {

using flowvae::Activation;
using flowvae::SimdLevel;

constexpr double kAlpha = 0.25;
constexpr Activation kKinds[] = {Activation::kIdentity, Activation::kRelu,    Activation::kLeakyRelu, Activation::kElu,
                                 Activation::kTanh,     Activation::kSigmoid, Activation::kSoftplus};
constexpr SimdLevel kLevels[] = {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512};

double exact_forward(Activation kind, double x) {
  switch (kind) {
    case Activation::kIdentity: return x;
    case Activation::kRelu: return x > 0 ? x : 0.0;
    case Activation::kLeakyRelu: return x > 0 ? x : kAlpha * x;
    case Activation::kElu: return x > 0 ? x : kAlpha * std::expm1(x);
    case Activation::kTanh: return std::tanh(x);
    case Activation::kSigmoid: return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x));
    case Activation::kSoftplus: return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x)));
  }
  return 0.0;
}

// f'(x) as the contract defines it: from y for tanh and sigmoid, from x otherwise.
double exact_derivative(Activation kind, double x, double y) {
  switch (kind) {
    case Activation::kIdentity: return 1.0;
    case Activation::kRelu: return x > 0 ? 1.0 : 0.0;
    case Activation::kLeakyRelu: return x > 0 ? 1.0 : kAlpha;
    case Activation::kElu: return x > 0 ? 1.0 : kAlpha * std::exp(x);
    case Activation::kTanh: return 1.0 - y * y;
    case Activation::kSigmoid: return y * (1.0 - y);
    case Activation::kSoftplus: return exact_forward(Activation::kSigmoid, x);
  }
  return 0.0;
}

// Largest forward error in float32 ulps allowed per kind and path, a little
// above the worst measured over every 257th float bit pattern plus a 1e-4 grid
// on [-30, 30]. Vector paths: elu 1.33, tanh 1.30, sigmoid 2.33, softplus 1.93,
// exp 1.01; libm (scalar path): elu 0.76, tanh 2.12, sigmoid 2.33, softplus
// 1.47, exp 0.50. identity and relu are exact; leaky_relu rounds alpha·x once.
double max_forward_ulps(Activation kind, SimdLevel level) {
  const bool vector = flowvae::simd::capped(level) != SimdLevel::kScalar;
  switch (kind) {
    case Activation::kIdentity:
    case Activation::kRelu: return 0.0;
    case Activation::kLeakyRelu: return 0.5;
    case Activation::kElu: return vector ? 1.5 : 1.0;
    case Activation::kTanh: return vector ? 1.5 : 2.25;
    case Activation::kSigmoid: return 2.5;
    case Activation::kSoftplus: return vector ? 2.25 : 1.75;
  }
  return 0.0;
}

double max_exp_ulps(SimdLevel level) { return flowvae::simd::capped(level) != SimdLevel::kScalar ? 1.25 : 0.75; }

// Spacing of float32 numbers at |r| (the subnormal spacing below the normal range).
double ulp32(double r) {
  double a = std::fabs(r);
  if (a < static_cast<double>(std::numeric_limits<float>::min())) return std::ldexp(1.0, -149);
  int e = 0;
  std::frexp(a, &e);
  return std::ldexp(1.0, e - 24);
}

// Error of y against the exact r in float32 ulps; an infinite y counts as
// exact when r lies beyond the largest float.
double ulps(float y, double r) {
  if (std::isinf(y)) return (std::fabs(r) >= std::numeric_limits<float>::max() && (y > 0) == (r > 0)) ? 0.0 : 1e30;
  return std::fabs(static_cast<double>(y) - r) / ulp32(r);
}

// Every binade (a stride through the bit patterns of finite floats), a fine
// grid over [-30, 30], and the awkward points.
std::vector<float> test_inputs() {
  std::vector<float> xs;
  for (std::uint64_t bits = 0; bits < (1ull << 32); bits += 65537) {
    std::uint32_t b = static_cast<std::uint32_t>(bits);
    float f;
    std::memcpy(&f, &b, sizeof f);
    if (std::isfinite(f)) xs.push_back(f);
  }
  for (int i = -30000; i <= 30000; ++i) xs.push_back(static_cast<float>(i) * 1e-3f);
  const float special[] = {0.0f,    -0.0f,  1e-40f,  -1e-40f, 1.4e-45f, -1.4e-45f, 80.0f,   -80.0f,  88.72f,
                           -88.72f, 88.73f, -88.73f, 100.0f,  -100.0f,  103.9f,    -103.9f, 104.5f,  -104.5f,
                           1e4f,    -1e4f,  0.625f,  -0.625f, 0.3466f,  -0.3466f,  3.4e38f, -3.4e38f};
  xs.insert(xs.end(), std::begin(special), std::end(special));
  return xs;
}

void check_accuracy(SimdLevel level, const std::vector<float>& xs) {
  const std::size_t n = xs.size();
  std::vector<float> y(n), dy(n), dx(n);
  for (std::size_t i = 0; i < n; ++i) dy[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
  for (Activation kind : kKinds) {
    flowvae::elementwise_forward_serial(kind, xs.data(), y.data(), n, static_cast<float>(kAlpha), level);
    double worst = 0.0;
    for (std::size_t i = 0; i < n; ++i) worst = std::max(worst, ulps(y[i], exact_forward(kind, xs[i])));
    CHECK(worst <= max_forward_ulps(kind, level));

    // Backward against the contract's derivative at the same float inputs.
    // Three roundings (derivative, product, exp/sigmoid inside) give a few
    // ulps; the scalar path forms 1 − y² in two roundings, whose cancellation
    // near |y| = 1 costs up to 2⁻²⁴·|dy| absolute.
    flowvae::elementwise_backward_serial(kind, xs.data(), y.data(), dy.data(), dx.data(), n, static_cast<float>(kAlpha),
                                         level);
    bool all_close = true;
    for (std::size_t i = 0; i < n; ++i) {
      double expected = dy[i] * exact_derivative(kind, xs[i], y[i]);
      double tol = 4.0 * ulp32(expected) + std::ldexp(std::fabs(static_cast<double>(dy[i])), -23);
      if (!(std::fabs(dx[i] - expected) <= tol)) all_close = false;
    }
    CHECK(all_close);
  }

  std::vector<float> e(n);
  flowvae::exp_array(xs.data(), e.data(), n, level);
  double worst = 0.0;
  for (std::size_t i = 0; i < n; ++i) worst = std::max(worst, ulps(e[i], std::exp(static_cast<double>(xs[i]))));
  CHECK(worst <= max_exp_ulps(level));
}

float forward1(Activation kind, float x, SimdLevel level) {
  float y = 0.0f;
  flowvae::elementwise_forward_serial(kind, &x, &y, 1, static_cast<float>(kAlpha), level);
  return y;
}

float backward1(Activation kind, float x, float dy, SimdLevel level) {
  float y = forward1(kind, x, level), dx = 0.0f;
  flowvae::elementwise_backward_serial(kind, &x, &y, &dy, &dx, 1, static_cast<float>(kAlpha), level);
  return dx;
}

void check_special_values(SimdLevel level) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (Activation kind : kKinds) CHECK(std::isnan(forward1(kind, nan, level)));
  CHECK(forward1(Activation::kTanh, inf, level) == 1.0f);
  CHECK(forward1(Activation::kTanh, -inf, level) == -1.0f);
  CHECK(forward1(Activation::kSigmoid, inf, level) == 1.0f);
  CHECK(forward1(Activation::kSigmoid, -inf, level) == 0.0f);
  CHECK(forward1(Activation::kSoftplus, inf, level) == inf);
  CHECK(forward1(Activation::kSoftplus, -inf, level) == 0.0f);
  CHECK(forward1(Activation::kElu, -inf, level) == static_cast<float>(-kAlpha));
  CHECK(forward1(Activation::kRelu, -0.0f, level) == 0.0f && !std::signbit(forward1(Activation::kRelu, -0.0f, level)));
  float x = 89.0f, y = 0.0f;
  flowvae::exp_array(&x, &y, 1, level);
  CHECK(y == inf);
  x = -inf;
  flowvae::exp_array(&x, &y, 1, level);
  CHECK(y == 0.0f);
  // Derivatives at exactly 0, as the contract states.
  CHECK(backward1(Activation::kRelu, 0.0f, 3.0f, level) == 0.0f);
  CHECK(backward1(Activation::kLeakyRelu, 0.0f, 3.0f, level) == static_cast<float>(3.0 * kAlpha));
  CHECK(backward1(Activation::kElu, 0.0f, 3.0f, level) == static_cast<float>(3.0 * kAlpha));
  CHECK(backward1(Activation::kSigmoid, 0.0f, 3.0f, level) == 0.75f);
  CHECK(backward1(Activation::kSoftplus, 0.0f, 3.0f, level) == 1.5f);
  CHECK(backward1(Activation::kTanh, 0.0f, 3.0f, level) == 3.0f);
}

bool same_bits(const float* a, const float* b, std::size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

// Tails, aliasing and threads change nothing: every element goes through the
// same arithmetic wherever it sits.
void check_layout_independence(SimdLevel level) {
  const std::size_t n = 200003;  // four 64k chunks: two threads split it
  std::vector<float> x(n), dy(n), y(n), dx(n);
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = static_cast<float>(8.0 * std::sin(0.001 * static_cast<double>(i) * static_cast<double>(i % 97)));
    dy[i] = static_cast<float>(std::cos(0.3 * static_cast<double>(i)));
  }
  const int saved_threads = flowvae::num_threads();
  for (Activation kind : kKinds) {
    flowvae::elementwise_forward_serial(kind, x.data(), y.data(), n, 0.5f, level);
    flowvae::elementwise_backward_serial(kind, x.data(), y.data(), dy.data(), dx.data(), n, 0.5f, level);

    flowvae::set_num_threads(2);
    std::vector<float> y2(n), dx2(n);
    flowvae::elementwise_forward(kind, x.data(), y2.data(), n, 0.5f, level);
    flowvae::elementwise_backward(kind, x.data(), y2.data(), dy.data(), dx2.data(), n, 0.5f, level);
    CHECK(same_bits(y.data(), y2.data(), n));
    CHECK(same_bits(dx.data(), dx2.data(), n));

    // In place: y over x, dx over dy.
    std::vector<float> inout(x), grad(dy);
    flowvae::elementwise_forward(kind, inout.data(), inout.data(), n, 0.5f, level);
    CHECK(same_bits(inout.data(), y.data(), n));
    flowvae::elementwise_backward(kind, x.data(), y.data(), grad.data(), grad.data(), n, 0.5f, level);
    CHECK(same_bits(grad.data(), dx.data(), n));

    // Short arrays at odd offsets, each an exact-size heap block so an
    // overrun shows under AddressSanitizer.
    bool tails_match = true;
    for (std::size_t len = 1; len <= 40; ++len) {
      const std::size_t offset = 1000 + 7 * len;
      std::vector<float> xs(x.begin() + offset, x.begin() + offset + len), ys(len);
      std::vector<float> dys(dy.begin() + offset, dy.begin() + offset + len), dxs(len);
      flowvae::elementwise_forward(kind, xs.data(), ys.data(), len, 0.5f, level);
      flowvae::elementwise_backward(kind, xs.data(), ys.data(), dys.data(), dxs.data(), len, 0.5f, level);
      tails_match =
          tails_match && same_bits(ys.data(), y.data() + offset, len) && same_bits(dxs.data(), dx.data() + offset, len);
    }
    CHECK(tails_match);
    flowvae::set_num_threads(saved_threads);
  }
  // n = 0 touches nothing.
  flowvae::elementwise_forward(Activation::kTanh, nullptr, nullptr, 0, 0.0f, level);
  flowvae::elementwise_backward(Activation::kTanh, nullptr, nullptr, nullptr, nullptr, 0, 0.0f, level);
}

// AVX2 and AVX-512 do identical arithmetic (capped to AVX2 on a CPU without AVX-512).
void check_vector_paths_agree(const std::vector<float>& xs) {
  const std::size_t n = xs.size();
  std::vector<float> a(n), b(n);
  for (Activation kind : kKinds) {
    flowvae::elementwise_forward_serial(kind, xs.data(), a.data(), n, 0.5f, SimdLevel::kAvx2);
    flowvae::elementwise_forward_serial(kind, xs.data(), b.data(), n, 0.5f, SimdLevel::kAvx512);
    CHECK(same_bits(a.data(), b.data(), n));
  }
}

}  // namespace

void test_elementwise() {
  const std::vector<float> xs = test_inputs();
  for (SimdLevel level : kLevels) {
    check_accuracy(level, xs);
    check_special_values(level);
    check_layout_independence(level);
  }
  check_vector_paths_agree(xs);
}
