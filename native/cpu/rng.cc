// Philox4x32-10 streams. The float64 math below repeats, operation for
// operation, src/backend/reference/rng.ts (the file is compiled with
// -ffp-contract=off, so no FMA contraction changes the rounding); that is
// what makes the streams bit-identical across backends.
#include "flowvae/rng.h"

#include <cmath>

#include "flowvae/parallel.h"

namespace flowvae {
namespace {

constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;

constexpr double kLn2 = 0.6931471805599453;
constexpr double kSqrt2 = 1.4142135623730951;
constexpr double kHalfPi = 1.5707963267948966;
constexpr double kTwoPowM32 = 1.0 / 4294967296.0;
constexpr double kTwoPowM24 = 1.0 / 16777216.0;

inline double LogReduced(double f) {
  const double s = (f - 1) / (f + 1);
  const double s2 = s * s;
  double p = 2.0 / 21.0;
  p = p * s2 + 2.0 / 19.0;
  p = p * s2 + 2.0 / 17.0;
  p = p * s2 + 2.0 / 15.0;
  p = p * s2 + 2.0 / 13.0;
  p = p * s2 + 2.0 / 11.0;
  p = p * s2 + 2.0 / 9.0;
  p = p * s2 + 2.0 / 7.0;
  p = p * s2 + 2.0 / 5.0;
  p = p * s2 + 2.0 / 3.0;
  p = p * s2 + 2.0;
  return s * p;
}

// log((r + 0.5) * 2^-32): m = 2r + 1 scaled into [1, 2) by a power of two.
inline double LogUnit(uint32_t r) {
  const double m = 2.0 * static_cast<double>(r) + 1.0;
  int e = r == 0 ? 0 : 32 - __builtin_clz(r);
  double f = std::ldexp(m, -e);  // exact
  if (f > kSqrt2) {
    f = f / 2;
    e = e + 1;
  }
  return static_cast<double>(e - 33) * kLn2 + LogReduced(f);
}

struct InvFactorial {
  double c[19];
  InvFactorial() {
    c[0] = 1;
    for (int n = 1; n <= 18; ++n) c[n] = c[n - 1] / n;
  }
};
const InvFactorial kInvFact;

inline void SinCosReduced(double a, double* sin_out, double* cos_out) {
  const double* k = kInvFact.c;
  const double a2 = a * a;
  double s = k[17];
  s = s * -a2 + k[15];
  s = s * -a2 + k[13];
  s = s * -a2 + k[11];
  s = s * -a2 + k[9];
  s = s * -a2 + k[7];
  s = s * -a2 + k[5];
  s = s * -a2 + k[3];
  s = s * -a2 + k[1];
  double c = k[18];
  c = c * -a2 + k[16];
  c = c * -a2 + k[14];
  c = c * -a2 + k[12];
  c = c * -a2 + k[10];
  c = c * -a2 + k[8];
  c = c * -a2 + k[6];
  c = c * -a2 + k[4];
  c = c * -a2 + k[2];
  c = c * -a2 + k[0];
  *sin_out = s * a;
  *cos_out = c;
}

// sin and cos of 2*pi*(r + 0.5)*2^-32.
inline void SinCosTurn(uint32_t r, double* sin_out, double* cos_out) {
  const double x = (static_cast<double>(r) + 0.5) * (4 * kTwoPowM32);
  const double quadrant = std::floor(x + 0.5);
  const double a = (x - quadrant) * kHalfPi;
  double s, c;
  SinCosReduced(a, &s, &c);
  switch (static_cast<int>(quadrant) & 3) {
    case 0: *sin_out = s; *cos_out = c; break;
    case 1: *sin_out = c; *cos_out = -s; break;
    case 2: *sin_out = -s; *cos_out = -c; break;
    default: *sin_out = -c; *cos_out = s; break;
  }
}

inline void Block(uint64_t block, const uint32_t key[2], uint32_t words[4]) {
  const uint32_t counter[4] = {static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0, 0};
  philox4x32_10(counter, key, words);
}

inline void NormalBlock(const uint32_t w[4], double out[4]) {
  for (int pair = 0; pair < 4; pair += 2) {
    const double radius = std::sqrt(-2 * LogUnit(w[pair]));
    double s, c;
    SinCosTurn(w[pair + 1], &s, &c);
    out[pair] = radius * c;
    out[pair + 1] = radius * s;
  }
}

inline void UniformBlock(const uint32_t w[4], double out[4]) {
  for (int l = 0; l < 4; ++l) out[l] = (2.0 * static_cast<double>(w[l] >> 9) + 1.0) * kTwoPowM24;
}

// Fills out[0, n) with elements offset.. of the stream, block by block,
// in parallel over ranges of blocks (the values do not depend on the split).
template <typename T, void (*Lanes)(const uint32_t*, double*)>
void Fill(uint64_t seed, uint64_t offset, T* out, std::size_t n) {
  if (n == 0) return;
  const uint32_t key[2] = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  const uint64_t first_block = offset / 4;
  const uint64_t last_block = (offset + n - 1) / 4;
  const std::size_t blocks = static_cast<std::size_t>(last_block - first_block + 1);
  parallel_for(blocks, 4096, [&](std::size_t begin, std::size_t end) {
    uint32_t words[4];
    double values[4];
    for (std::size_t b = begin; b < end; ++b) {
      const uint64_t block = first_block + b;
      Block(block, key, words);
      Lanes(words, values);
      for (int lane = 0; lane < 4; ++lane) {
        const uint64_t j = block * 4 + static_cast<uint64_t>(lane);
        if (j < offset || j >= offset + n) continue;
        out[j - offset] = static_cast<T>(values[lane]);
      }
    }
  });
}

}  // namespace

void philox4x32_10(const uint32_t c_in[4], const uint32_t k_in[2], uint32_t out[4]) {
  uint32_t c0 = c_in[0], c1 = c_in[1], c2 = c_in[2], c3 = c_in[3];
  uint32_t k0 = k_in[0], k1 = k_in[1];
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    const uint64_t p0 = static_cast<uint64_t>(kM0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(kM1) * c2;
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

void rng_normal(uint64_t seed, uint64_t offset, float* out, std::size_t n) {
  Fill<float, NormalBlock>(seed, offset, out, n);
}
void rng_normal(uint64_t seed, uint64_t offset, double* out, std::size_t n) {
  Fill<double, NormalBlock>(seed, offset, out, n);
}
void rng_uniform(uint64_t seed, uint64_t offset, float* out, std::size_t n) {
  Fill<float, UniformBlock>(seed, offset, out, n);
}
void rng_uniform(uint64_t seed, uint64_t offset, double* out, std::size_t n) {
  Fill<double, UniformBlock>(seed, offset, out, n);
}

}  // namespace flowvae
