// SIMD operations shared by the cpu kernels, one namespace per instruction
// set with the same names, so an algorithm written once against them compiles
// for each (see native/cpu/elementwise_vec.inc). The binary targets baseline
// x86-64: these functions carry their target attributes, and code using them
// must itself sit between FLOWVAE_TARGET_AVX2 / FLOWVAE_TARGET_AVX512 and
// FLOWVAE_TARGET_END, and run only when simd_level() says the CPU has it.
//
// Each namespace defines:
//   V, M, kWidth            float vector, lane mask, lanes per vector
//   set1 loadu storeu        broadcast, unaligned load/store
//   load_n store_n           first `count` < kWidth lanes (others read as 0,
//                            never touched in memory)
//   add sub mul div sqrt     correctly rounded, as their scalar counterparts
//   fmadd fnmadd             a·b + c and c − a·b with one rounding
//   clamp                    to [lo, hi]; NaN passes through
//   abs copysign round_nearest
//   lt le gt                 ordered comparisons (false on NaN)
//   select(m, a, b)          m ? a : b per lane
//   scale2(p, n)             p·2ⁿ for integral n in [−150, 129], one rounding
//   SquareSum16              Σ x² of float blocks in 16 double lanes (lane j
//                            takes elements ≡ j mod 16), the same on every ISA
#pragma once
#include <cstddef>

#include "flowvae/cpu_features.h"

namespace flowvae {
namespace simd {

// The requested level, capped at what this CPU can run.
inline SimdLevel capped(SimdLevel requested) {
  SimdLevel cpu = simd_level();
  return static_cast<int>(requested) < static_cast<int>(cpu) ? requested : cpu;
}

}  // namespace simd
}  // namespace flowvae

#if defined(__x86_64__) || defined(__i386__)
#define FLOWVAE_SIMD_X86 1
#include <immintrin.h>
#else
#define FLOWVAE_SIMD_X86 0
#endif

#if FLOWVAE_SIMD_X86

#if defined(__clang__)
#define FLOWVAE_TARGET_AVX2 _Pragma("clang attribute push(__attribute__((target(\"avx2,fma\"))), apply_to = function)")
#define FLOWVAE_TARGET_AVX512 _Pragma("clang attribute push(__attribute__((target(\"avx512f\"))), apply_to = function)")
#define FLOWVAE_TARGET_END _Pragma("clang attribute pop")
#else
// -Wpsabi: a captureless lambda in a target region gets a function-pointer
// thunk compiled without the region's target, hence an ABI note; the thunk
// is never called.
#define FLOWVAE_TARGET_AVX2                                                                      \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma\")") _Pragma("GCC diagnostic push") \
      _Pragma("GCC diagnostic ignored \"-Wpsabi\"")
#define FLOWVAE_TARGET_AVX512                                                                   \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f\")") _Pragma("GCC diagnostic push") \
      _Pragma("GCC diagnostic ignored \"-Wpsabi\"")
#define FLOWVAE_TARGET_END _Pragma("GCC diagnostic pop") _Pragma("GCC pop_options")
#endif

namespace flowvae {
namespace simd {

FLOWVAE_TARGET_AVX2
namespace avx2 {

using V = __m256;
using M = __m256;
constexpr std::size_t kWidth = 8;

inline V set1(float a) { return _mm256_set1_ps(a); }
inline V loadu(const float* p) { return _mm256_loadu_ps(p); }
inline void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
inline __m256i lanes_below(std::size_t count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline V load_n(const float* p, std::size_t count) { return _mm256_maskload_ps(p, lanes_below(count)); }
inline void store_n(float* p, V v, std::size_t count) { _mm256_maskstore_ps(p, lanes_below(count), v); }
inline V add(V a, V b) { return _mm256_add_ps(a, b); }
inline V sub(V a, V b) { return _mm256_sub_ps(a, b); }
inline V mul(V a, V b) { return _mm256_mul_ps(a, b); }
inline V div(V a, V b) { return _mm256_div_ps(a, b); }
inline V sqrt(V a) { return _mm256_sqrt_ps(a); }
inline V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
inline V fnmadd(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
// maxps/minps return their second operand when either is NaN: x goes second.
inline V clamp(V x, float lo, float hi) { return _mm256_min_ps(set1(hi), _mm256_max_ps(set1(lo), x)); }
inline V abs(V x) { return _mm256_andnot_ps(set1(-0.0f), x); }
inline V copysign(V magnitude, V sign) {
  const V sign_bit = set1(-0.0f);
  return _mm256_or_ps(_mm256_andnot_ps(sign_bit, magnitude), _mm256_and_ps(sign_bit, sign));
}
inline V round_nearest(V x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline M lt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
inline M le(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
inline M gt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
inline V select(M m, V a, V b) { return _mm256_blendv_ps(b, a, m); }
// Two power-of-two factors, each in the normal range, so only the last
// product rounds (into the subnormals, or to inf).
inline V scale2(V p, V n) {
  __m256i ni = _mm256_cvtps_epi32(n);
  __m256i half = _mm256_srai_epi32(ni, 1);
  __m256i rest = _mm256_sub_epi32(ni, half);
  __m256i bias = _mm256_set1_epi32(127);
  V s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, bias), 23));
  V s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(rest, bias), 23));
  return mul(mul(p, s1), s2);
}

struct SquareSum16 {
  __m256d acc[4];
  SquareSum16() {
    for (auto& a : acc) a = _mm256_setzero_pd();
  }
  // x² of floats is exact in double, so only the additions round.
  void add_block(const float* p) {
    V lo = loadu(p), hi = loadu(p + 8);
    __m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(lo));
    __m256d d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(lo, 1));
    __m256d d2 = _mm256_cvtps_pd(_mm256_castps256_ps128(hi));
    __m256d d3 = _mm256_cvtps_pd(_mm256_extractf128_ps(hi, 1));
    acc[0] = _mm256_add_pd(acc[0], _mm256_mul_pd(d0, d0));
    acc[1] = _mm256_add_pd(acc[1], _mm256_mul_pd(d1, d1));
    acc[2] = _mm256_add_pd(acc[2], _mm256_mul_pd(d2, d2));
    acc[3] = _mm256_add_pd(acc[3], _mm256_mul_pd(d3, d3));
  }
  void store(double* lanes) const {
    for (int k = 0; k < 4; ++k) _mm256_storeu_pd(lanes + 4 * k, acc[k]);
  }
};

}  // namespace avx2
FLOWVAE_TARGET_END

FLOWVAE_TARGET_AVX512
namespace avx512 {

using V = __m512;
using M = __mmask16;
constexpr std::size_t kWidth = 16;
// GCC 12 reports a false -Wmaybe-uninitialized inside the unmasked forms of
// several intrinsics (their _mm512_undefined_*() pass-through); the
// zero-masked forms with every lane selected are the same instructions.
constexpr __mmask16 kAll = 0xFFFF;
constexpr __mmask8 kAll8 = 0xFF;

inline V set1(float a) { return _mm512_set1_ps(a); }
inline V loadu(const float* p) { return _mm512_loadu_ps(p); }
inline void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
inline M lanes_below(std::size_t count) { return static_cast<M>((1u << count) - 1u); }
inline V load_n(const float* p, std::size_t count) { return _mm512_maskz_loadu_ps(lanes_below(count), p); }
inline void store_n(float* p, V v, std::size_t count) { _mm512_mask_storeu_ps(p, lanes_below(count), v); }
inline V add(V a, V b) { return _mm512_add_ps(a, b); }
inline V sub(V a, V b) { return _mm512_sub_ps(a, b); }
inline V mul(V a, V b) { return _mm512_mul_ps(a, b); }
inline V div(V a, V b) { return _mm512_div_ps(a, b); }
inline V sqrt(V a) { return _mm512_maskz_sqrt_ps(kAll, a); }
inline V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
inline V fnmadd(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }
inline V clamp(V x, float lo, float hi) {
  return _mm512_maskz_min_ps(kAll, set1(hi), _mm512_maskz_max_ps(kAll, set1(lo), x));
}
inline V abs(V x) { return _mm512_abs_ps(x); }
inline V copysign(V magnitude, V sign) {
  const __m512i sign_bit = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_maskz_andnot_epi32(kAll, sign_bit, _mm512_castps_si512(magnitude)),
                                             _mm512_and_si512(sign_bit, _mm512_castps_si512(sign))));
}
inline V round_nearest(V x) {
  return _mm512_maskz_roundscale_ps(kAll, x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
inline M lt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
inline M le(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
inline M gt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
inline V select(M m, V a, V b) { return _mm512_mask_blend_ps(m, b, a); }
// vscalefps: p·2ⁿ with one rounding, as the AVX2 version.
inline V scale2(V p, V n) { return _mm512_maskz_scalef_ps(kAll, p, n); }

struct SquareSum16 {
  __m512d acc[2];
  SquareSum16() {
    for (auto& a : acc) a = _mm512_setzero_pd();
  }
  void add_block(const float* p) {
    const __m512d x = _mm512_castps_pd(loadu(p));
    __m512d d0 = _mm512_maskz_cvtps_pd(kAll8, _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, x, 0)));
    __m512d d1 = _mm512_maskz_cvtps_pd(kAll8, _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, x, 1)));
    acc[0] = _mm512_add_pd(acc[0], _mm512_mul_pd(d0, d0));
    acc[1] = _mm512_add_pd(acc[1], _mm512_mul_pd(d1, d1));
  }
  void store(double* lanes) const {
    _mm512_storeu_pd(lanes, acc[0]);
    _mm512_storeu_pd(lanes + 8, acc[1]);
  }
};

}  // namespace avx512
FLOWVAE_TARGET_END

}  // namespace simd
}  // namespace flowvae

#endif  // FLOWVAE_SIMD_X86
