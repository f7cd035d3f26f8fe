// A tiny check framework for the native kernel test driver (no Node, run
// under AddressSanitizer + UndefinedBehaviorSanitizer). Failures are counted
// and reported with file and line; the driver exits non-zero if any failed.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

namespace flowvae {
namespace test {

inline int& failures() {
  static int count = 0;
  return count;
}
inline int& checks() {
  static int count = 0;
  return count;
}

inline void report(bool ok, const char* expr, const char* file, int line) {
  ++checks();
  if (!ok) {
    ++failures();
    if (failures() <= 50) std::fprintf(stderr, "%s:%d: check failed: %s\n", file, line, expr);
  }
}

inline void report_close(double a, double b, double tol, const char* ea, const char* eb, const char* file, int line) {
  ++checks();
  const double err = std::fabs(a - b);
  if (!(err <= tol * (1.0 + std::fabs(b)))) {
    ++failures();
    if (failures() <= 50)
      std::fprintf(stderr, "%s:%d: %s = %.9g but %s = %.9g (tolerance %.3g)\n", file, line, ea, a, eb, b, tol);
  }
}

// Deterministic test data (xorshift64*), independent of the library RNG.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed * 2685821657736338717ull + 1) {}
  double uniform(double lo = -1, double hi = 1) {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    const uint64_t r = state_ * 2685821657736338717ull;
    return lo + (hi - lo) * static_cast<double>(r >> 11) * (1.0 / 9007199254740992.0);
  }
  std::vector<float> floats(std::size_t n, double lo = -1, double hi = 1) {
    std::vector<float> v(n);
    for (auto& x : v) x = static_cast<float>(uniform(lo, hi));
    return v;
  }

 private:
  uint64_t state_;
};

}  // namespace test
}  // namespace flowvae

#define CHECK(cond) ::flowvae::test::report(static_cast<bool>(cond), #cond, __FILE__, __LINE__)
// |a - b| <= tol * (1 + |b|)
#define CHECK_CLOSE(a, b, tol) ::flowvae::test::report_close((a), (b), (tol), #a, #b, __FILE__, __LINE__)
