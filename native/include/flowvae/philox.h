// Philox4x32-10 and the portable float64 Box–Muller of the rng family, written
// once as inline functions usable from host C++ and CUDA device code:
// native/cpu/rng.cc runs them on the cpu and native/cuda/rng.cu on the GPU.
// They repeat src/backend/reference/rng.ts operation for operation; with no
// fused multiply-add contraction (g++ -ffp-contract=off, nvcc -fmad=false) and
// IEEE float64 arithmetic on every side, the streams are bit-identical.
#pragma once
#include <cmath>
#include <cstdint>

// Callable from host code and, under nvcc, from device code too.
#if defined(__CUDACC__)
#define FLOWVAE_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FLOWVAE_HOST_DEVICE inline
#endif

namespace flowvae {
namespace philox {

constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;

constexpr double kLn2 = 0.6931471805599453;
constexpr double kSqrt2 = 1.4142135623730951;
constexpr double kHalfPi = 1.5707963267948966;
constexpr double kTwoPowM32 = 1.0 / 4294967296.0;
constexpr double kTwoPowM24 = 1.0 / 16777216.0;

// 1/n! for n = 1..18 as the reference builds them (rng.ts): c[n] = c[n−1] / n,
// each division correctly rounded (constant-folded in IEEE double, the same
// values on host and device).
#define FLOWVAE_IF1 1.0
#define FLOWVAE_IF2 (FLOWVAE_IF1 / 2)
#define FLOWVAE_IF3 (FLOWVAE_IF2 / 3)
#define FLOWVAE_IF4 (FLOWVAE_IF3 / 4)
#define FLOWVAE_IF5 (FLOWVAE_IF4 / 5)
#define FLOWVAE_IF6 (FLOWVAE_IF5 / 6)
#define FLOWVAE_IF7 (FLOWVAE_IF6 / 7)
#define FLOWVAE_IF8 (FLOWVAE_IF7 / 8)
#define FLOWVAE_IF9 (FLOWVAE_IF8 / 9)
#define FLOWVAE_IF10 (FLOWVAE_IF9 / 10)
#define FLOWVAE_IF11 (FLOWVAE_IF10 / 11)
#define FLOWVAE_IF12 (FLOWVAE_IF11 / 12)
#define FLOWVAE_IF13 (FLOWVAE_IF12 / 13)
#define FLOWVAE_IF14 (FLOWVAE_IF13 / 14)
#define FLOWVAE_IF15 (FLOWVAE_IF14 / 15)
#define FLOWVAE_IF16 (FLOWVAE_IF15 / 16)
#define FLOWVAE_IF17 (FLOWVAE_IF16 / 17)
#define FLOWVAE_IF18 (FLOWVAE_IF17 / 18)

// One block: counter (c0, c1, c2, c3), key (k0, k1) -> out[4].
FLOWVAE_HOST_DEVICE void Block(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1,
                               uint32_t out[4]) {
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

// Words of block `block` of the stream with key (seed low, seed high).
FLOWVAE_HOST_DEVICE void StreamBlock(uint64_t block, uint64_t seed, uint32_t out[4]) {
  Block(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0, 0, static_cast<uint32_t>(seed),
        static_cast<uint32_t>(seed >> 32), out);
}

FLOWVAE_HOST_DEVICE int CountLeadingZeros(uint32_t r) {
#if defined(__CUDA_ARCH__)
  return __clz(static_cast<int>(r));
#else
  return __builtin_clz(r);
#endif
}

FLOWVAE_HOST_DEVICE double LogReduced(double f) {
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
FLOWVAE_HOST_DEVICE double LogUnit(uint32_t r) {
  const double m = 2.0 * static_cast<double>(r) + 1.0;
  int e = r == 0 ? 0 : 32 - CountLeadingZeros(r);
  double f = ldexp(m, -e);  // exact
  if (f > kSqrt2) {
    f = f / 2;
    e = e + 1;
  }
  return static_cast<double>(e - 33) * kLn2 + LogReduced(f);
}

FLOWVAE_HOST_DEVICE void SinCosReduced(double a, double* sin_out, double* cos_out) {
  const double a2 = a * a;
  double s = FLOWVAE_IF17;
  s = s * -a2 + FLOWVAE_IF15;
  s = s * -a2 + FLOWVAE_IF13;
  s = s * -a2 + FLOWVAE_IF11;
  s = s * -a2 + FLOWVAE_IF9;
  s = s * -a2 + FLOWVAE_IF7;
  s = s * -a2 + FLOWVAE_IF5;
  s = s * -a2 + FLOWVAE_IF3;
  s = s * -a2 + FLOWVAE_IF1;
  double c = FLOWVAE_IF18;
  c = c * -a2 + FLOWVAE_IF16;
  c = c * -a2 + FLOWVAE_IF14;
  c = c * -a2 + FLOWVAE_IF12;
  c = c * -a2 + FLOWVAE_IF10;
  c = c * -a2 + FLOWVAE_IF8;
  c = c * -a2 + FLOWVAE_IF6;
  c = c * -a2 + FLOWVAE_IF4;
  c = c * -a2 + FLOWVAE_IF2;
  c = c * -a2 + 1.0;
  *sin_out = s * a;
  *cos_out = c;
}

// sin and cos of 2*pi*(r + 0.5)*2^-32.
FLOWVAE_HOST_DEVICE void SinCosTurn(uint32_t r, double* sin_out, double* cos_out) {
  const double x = (static_cast<double>(r) + 0.5) * (4 * kTwoPowM32);
  const double quadrant = floor(x + 0.5);
  const double a = (x - quadrant) * kHalfPi;
  double s, c;
  SinCosReduced(a, &s, &c);
  switch (static_cast<int>(quadrant) & 3) {
    case 0:
      *sin_out = s;
      *cos_out = c;
      break;
    case 1:
      *sin_out = c;
      *cos_out = -s;
      break;
    case 2:
      *sin_out = -s;
      *cos_out = -c;
      break;
    default:
      *sin_out = -c;
      *cos_out = s;
      break;
  }
}

// The four normals of one block of words.
FLOWVAE_HOST_DEVICE void NormalLanes(const uint32_t w[4], double out[4]) {
  for (int pair = 0; pair < 4; pair += 2) {
    const double radius = sqrt(-2 * LogUnit(w[pair]));
    double s, c;
    SinCosTurn(w[pair + 1], &s, &c);
    out[pair] = radius * c;
    out[pair + 1] = radius * s;
  }
}

// The four uniforms in (0, 1) of one block of words.
FLOWVAE_HOST_DEVICE void UniformLanes(const uint32_t w[4], double out[4]) {
  for (int l = 0; l < 4; ++l) out[l] = (2.0 * static_cast<double>(w[l] >> 9) + 1.0) * kTwoPowM24;
}

#undef FLOWVAE_IF1
#undef FLOWVAE_IF2
#undef FLOWVAE_IF3
#undef FLOWVAE_IF4
#undef FLOWVAE_IF5
#undef FLOWVAE_IF6
#undef FLOWVAE_IF7
#undef FLOWVAE_IF8
#undef FLOWVAE_IF9
#undef FLOWVAE_IF10
#undef FLOWVAE_IF11
#undef FLOWVAE_IF12
#undef FLOWVAE_IF13
#undef FLOWVAE_IF14
#undef FLOWVAE_IF15
#undef FLOWVAE_IF16
#undef FLOWVAE_IF17
#undef FLOWVAE_IF18

}  // namespace philox
}  // namespace flowvae
