// Portable SIMD building blocks for the row-group flow kernels (planar,
// radial): GCC/Clang generic vectors, so one template body compiles to
// AVX-512, AVX2 or SSE2 code depending on the target attribute of the entry
// point it is inlined into (the binary targets baseline x86-64; see
// cpu_features.h for the run-time choice).
//
// Rules that keep the generated code good:
//  - Use a vector width the target has natively (16 floats for AVX-512, 8 for
//    AVX2, 4 for SSE2). Wider generic vectors are lowered element by element.
//  - Everything here is always_inline, so it takes the target of its caller.
//
// The float32 transcendental functions follow Cephes (expf, logf, tanhf):
// about 2 ulp on their documented ranges.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "aligned_vector.h"

#if defined(__GNUC__) && !defined(__clang__)
// Vector arguments of the inlined helpers would change the ABI only for calls
// that are never emitted (everything is inlined into target-attributed entry
// points). The warning fires where templates are instantiated, so it stays
// off for the rest of the including file (only the flow kernels include this).
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#define FLOWVAE_LANE_INLINE inline __attribute__((always_inline))

// Entry-point attributes. fp-contract=fast lets these kernels use FMA (the
// addon is built with -ffp-contract=off for bit-exact kernels such as rng).
#define FLOWVAE_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,bmi,bmi2"), optimize("fp-contract=fast")))
#define FLOWVAE_TARGET_AVX2 __attribute__((target("avx2,fma,bmi,bmi2"), optimize("fp-contract=fast")))

namespace flowvae {
namespace lanes {

template <int W>
struct Vec {
  typedef float F __attribute__((vector_size(4 * W)));
  typedef int32_t I __attribute__((vector_size(4 * W)));
  static constexpr int kWidth = W;
};

template <class F>
FLOWVAE_LANE_INLINE F Load(const float* p) {
  F v;
  std::memcpy(&v, p, sizeof(F));
  return v;
}

template <class F>
FLOWVAE_LANE_INLINE void Store(float* p, const F& v) {
  std::memcpy(p, &v, sizeof(F));
}

template <class F>
FLOWVAE_LANE_INLINE F Splat(float x) {
  return F{} + x;
}

template <class F>
FLOWVAE_LANE_INLINE constexpr int Width() {
  return static_cast<int>(sizeof(F) / sizeof(float));
}

template <class F, class I>
FLOWVAE_LANE_INLINE F Select(const I& mask, const F& a, const F& b) {
  return mask ? a : b;
}

template <class F>
FLOWVAE_LANE_INLINE F Abs(const F& x) {
  using I = decltype(x < x);
  return (F)((I)x & 0x7fffffff);
}

template <class F>
FLOWVAE_LANE_INLINE F Max(const F& a, const F& b) {
  return a > b ? a : b;
}

template <class F>
FLOWVAE_LANE_INLINE F Min(const F& a, const F& b) {
  return a < b ? a : b;
}

template <class F>
FLOWVAE_LANE_INLINE F Sqrt(const F& x) {
  F r;
  for (int i = 0; i < Width<F>(); ++i) r[i] = __builtin_sqrtf(x[i]);
  return r;
}

// Horizontal sum of all lanes.
template <class F>
FLOWVAE_LANE_INLINE float HorizontalSum(const F& value) {
  F v = value;
  using I = decltype(v < v);
  constexpr int W = Width<F>();
  if constexpr (W == 16) {
    v += __builtin_shuffle(v, I{8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7});
    v += __builtin_shuffle(v, I{4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11});
    v += __builtin_shuffle(v, I{2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13});
    v += __builtin_shuffle(v, I{1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14});
  } else if constexpr (W == 8) {
    v += __builtin_shuffle(v, I{4, 5, 6, 7, 0, 1, 2, 3});
    v += __builtin_shuffle(v, I{2, 3, 0, 1, 6, 7, 4, 5});
    v += __builtin_shuffle(v, I{1, 0, 3, 2, 5, 4, 7, 6});
  } else {
    static_assert(W == 4, "unsupported width");
    v += __builtin_shuffle(v, I{2, 3, 0, 1});
    v += __builtin_shuffle(v, I{1, 0, 3, 2});
  }
  return v[0];
}

// e^x for x <= 0 (Cephes expf). Arguments below -87.3 return 0 (the true
// value is subnormal or zero in float32).
template <class F>
FLOWVAE_LANE_INLINE F ExpNonPositive(const F& arg) {
  F x = arg;
  using I = decltype(x < x);
  const I underflow = x < -87.33654f;
  x = Max(x, Splat<F>(-87.33654f));
  x = Min(x, Splat<F>(0.0f));
  // n = round(x / ln 2) by the 1.5 * 2^23 trick; |n| <= 126.
  const F shifted = x * 1.44269504088896341f + 12582912.0f;
  const F n = shifted - 12582912.0f;
  const F r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  const F r2 = r * r;
  F p = Splat<F>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  const I ni = __builtin_convertvector(n, I);
  const F scale = (F)((ni + 127) << 23);
  return Select(underflow, F{}, p * scale);
}

// Natural log for x > 0 (Cephes logf), with subnormals, 0 (-inf), +inf and
// NaN/negative (NaN) handled.
template <class F>
FLOWVAE_LANE_INLINE F Log(const F& x) {
  using I = decltype(x < x);
  const I subnormal = x < 1.17549435e-38f;
  const F xs = Select(subnormal, x * 8388608.0f, x);  // 2^23
  const I bits = (I)xs;
  F e = __builtin_convertvector(((bits >> 23) & 0xff) - 126, F);
  e = Select(subnormal, e - 23.0f, e);
  F m = (F)((bits & 0x007fffff) | 0x3f000000);  // mantissa in [0.5, 1)
  const I small = m < 0.707106781186547524f;
  e = Select(small, e - 1.0f, e);
  m = Select(small, m + m, m) - 1.0f;
  const F z = m * m;
  F y = Splat<F>(7.0376836292e-2f);
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  y = y + e * -2.12194440e-4f;
  y = y - 0.5f * z;
  F result = m + y + e * 0.693359375f;
  const float inf = __builtin_inff();
  result = Select(x == 0.0f, Splat<F>(-inf), result);
  result = Select(x == inf, Splat<F>(inf), result);
  result = Select(x < 0.0f || x != x, Splat<F>(__builtin_nanf("")), result);
  return result;
}

// Σ_k log x_k over a stack's layers with one Log at the end instead of one per
// layer (the Log is most of a shared planar layer's scalar work). The running
// product is renormalized to a mantissa in [1, 2) after every factor and the
// binary exponents are summed as integers, so it never over- or underflows.
// This is exact up to float rounding while every partial product is a normal
// float, i.e. for factors in [2^-126, 2^127); lanes where a factor was not
// (0, subnormal, huge, inf, NaN or negative) fail Normal(), and Sum() redoes
// them factor by factor with Log, which gives such factors their usual meaning
// (−inf, inf, NaN). The caller keeps the factors ([count, W]) for that case.
template <class F>
struct LogProduct {
  using I = decltype(F{} < F{});
  F mantissa = Splat<F>(1.0f);
  I exponents = I{};                        // Σ biased exponents of the partial products
  I lowest = I{} + 1, highest = I{} + 254;  // their range: normal floats have [1, 254]

  FLOWVAE_LANE_INLINE void Multiply(const F& x) {
    const I bits = (I)(mantissa * x);
    const I biased = bits >> 23;  // arithmetic: a negative product gives a negative exponent
    exponents += biased;
    lowest = lowest < biased ? lowest : biased;
    highest = highest > biased ? highest : biased;
    mantissa = (F)((bits & 0x007fffff) | 0x3f800000);
  }

  // Lanes whose partial products were all normal floats.
  FLOWVAE_LANE_INLINE I Normal() const { return (lowest >= 1) & (highest <= 254); }

  // Σ log of the `count` factors multiplied in; `factors` [count, W] are the
  // same factors, read only for lanes that are not Normal().
  FLOWVAE_LANE_INLINE F Sum(std::size_t count, const float* factors) const {
    // Π x = mantissa · 2^(exponents − 127·count); ln 2 split as in Log.
    const F e = __builtin_convertvector(exponents - static_cast<int32_t>(127 * count), F);
    const F fast = Log(mantissa) + e * -2.12194440e-4f + e * 0.693359375f;
    const I normal = Normal();
    constexpr int W = Width<F>();
    bool all_normal = true;
    for (int l = 0; l < W; ++l) all_normal &= normal[l] != 0;
    if (all_normal) return fast;
    F slow = F{};
    for (std::size_t k = 0; k < count; ++k) slow += Log(Load<F>(factors + k * W));
    return Select(normal, fast, slow);
  }
};

// log(1 + e) for e in [0, 1], accurate for tiny e (log(u)·e/(u − 1), u = 1 + e).
template <class F>
FLOWVAE_LANE_INLINE F Log1pUnit(const F& e) {
  const F u = e + 1.0f;
  const F d = u - 1.0f;
  const F ratio = Select(d == 0.0f, Splat<F>(1.0f), e / Select(d == 0.0f, Splat<F>(1.0f), d));
  return Select(d == 0.0f, e, Log(u) * ratio);
}

// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|); also returns
// e = e^-|x| for callers that need the matching sigmoid.
template <class F>
FLOWVAE_LANE_INLINE F Softplus(const F& x, F* exp_neg_abs = nullptr) {
  const F e = ExpNonPositive(-Abs(x));
  if (exp_neg_abs) *exp_neg_abs = e;
  return Max(x, F{}) + Log1pUnit(e);
}

// sigmoid(x) from e = e^-|x| (as returned by Softplus).
template <class F>
FLOWVAE_LANE_INLINE F SigmoidFromExp(const F& x, const F& e) {
  const F inv = 1.0f / (e + 1.0f);
  return Select(x >= 0.0f, inv, e * inv);
}

// t = tanh(a) and s = 1 − tanh²(a), both to full relative precision (s does
// not cancel for large |a|).
template <class F>
FLOWVAE_LANE_INLINE void TanhSech2(const F& a, F* t_out, F* s_out) {
  using I = decltype(a < a);
  const F ax = Abs(a);
  // |a| < 0.625: odd polynomial (Cephes tanhf).
  const F z = ax * ax;
  F p = Splat<F>(-5.70498872745e-3f);
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const F t_small = p * z * ax + ax;
  const F s_small = 1.0f - t_small * t_small;
  // Otherwise via e = e^{-2|a|}: tanh = (1 − e)/(1 + e), sech² = 4e/(1 + e)².
  const F e = ExpNonPositive(-2.0f * ax);
  const F inv = 1.0f / (e + 1.0f);
  const F t_large = (1.0f - e) * inv;
  const F s_large = 4.0f * e * inv * inv;
  const I small = ax < 0.625f;
  const F t_abs = Select(small, t_small, t_large);
  *s_out = Select(small, s_small, s_large);
  // Restore the sign of a (and keep NaN as NaN).
  *t_out = (F)((I)t_abs | ((I)a & static_cast<int32_t>(0x80000000u)));
}

// Transposes a B×B block (B = 8 or 4): dst[j·dst_stride + i] = src[i·src_stride + j].
template <int B>
FLOWVAE_LANE_INLINE void TransposeBlock(const float* src, std::size_t src_stride, float* dst, std::size_t dst_stride) {
  using F = typename Vec<B>::F;
  using I = typename Vec<B>::I;
  if constexpr (B == 8) {
    F r[8];
    for (int i = 0; i < 8; ++i) r[i] = Load<F>(src + i * src_stride);
    F t[8], u[8];
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = __builtin_shuffle(r[2 * i], r[2 * i + 1], I{0, 8, 1, 9, 4, 12, 5, 13});
      t[2 * i + 1] = __builtin_shuffle(r[2 * i], r[2 * i + 1], I{2, 10, 3, 11, 6, 14, 7, 15});
    }
    for (int i = 0; i < 2; ++i) {
      u[4 * i] = __builtin_shuffle(t[4 * i], t[4 * i + 2], I{0, 1, 8, 9, 4, 5, 12, 13});
      u[4 * i + 1] = __builtin_shuffle(t[4 * i], t[4 * i + 2], I{2, 3, 10, 11, 6, 7, 14, 15});
      u[4 * i + 2] = __builtin_shuffle(t[4 * i + 1], t[4 * i + 3], I{0, 1, 8, 9, 4, 5, 12, 13});
      u[4 * i + 3] = __builtin_shuffle(t[4 * i + 1], t[4 * i + 3], I{2, 3, 10, 11, 6, 7, 14, 15});
    }
    for (int i = 0; i < 4; ++i) {
      Store(dst + i * dst_stride, __builtin_shuffle(u[i], u[i + 4], I{0, 1, 2, 3, 8, 9, 10, 11}));
      Store(dst + (i + 4) * dst_stride, __builtin_shuffle(u[i], u[i + 4], I{4, 5, 6, 7, 12, 13, 14, 15}));
    }
  } else {
    static_assert(B == 4, "unsupported block");
    const F r0 = Load<F>(src), r1 = Load<F>(src + src_stride), r2 = Load<F>(src + 2 * src_stride),
            r3 = Load<F>(src + 3 * src_stride);
    const F t0 = __builtin_shuffle(r0, r1, I{0, 4, 1, 5}), t1 = __builtin_shuffle(r0, r1, I{2, 6, 3, 7});
    const F t2 = __builtin_shuffle(r2, r3, I{0, 4, 1, 5}), t3 = __builtin_shuffle(r2, r3, I{2, 6, 3, 7});
    Store(dst, __builtin_shuffle(t0, t2, I{0, 1, 4, 5}));
    Store(dst + dst_stride, __builtin_shuffle(t0, t2, I{2, 3, 6, 7}));
    Store(dst + 2 * dst_stride, __builtin_shuffle(t1, t3, I{0, 1, 4, 5}));
    Store(dst + 3 * dst_stride, __builtin_shuffle(t1, t3, I{2, 3, 6, 7}));
  }
}

// dst[j·dst_stride + i] = src[i·src_stride + j] for i < rows, j < cols, by
// B×B register blocks with scalar edges.
template <int B>
FLOWVAE_LANE_INLINE void Transpose(const float* src, std::size_t src_stride, std::size_t rows, std::size_t cols,
                                   float* dst, std::size_t dst_stride) {
  std::size_t i = 0;
  for (; i + B <= rows; i += B) {
    std::size_t j = 0;
    for (; j + B <= cols; j += B)
      TransposeBlock<B>(src + i * src_stride + j, src_stride, dst + j * dst_stride + i, dst_stride);
    for (; j < cols; ++j)
      for (std::size_t ii = i; ii < i + B; ++ii) dst[j * dst_stride + ii] = src[ii * src_stride + j];
  }
  for (; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) dst[j * dst_stride + i] = src[i * src_stride + j];
}

// 0 where every lane of v is finite, nonzero otherwise (v − v is 0 or NaN).
template <class F>
FLOWVAE_LANE_INLINE F NonFiniteProbe(const F& v) {
  return v - v;
}

// ---- row groups ----------------------------------------------------------------
//
// Helpers of the flow kernels that process a batch in groups of W rows, either
// transposed (zT[d·W + lane]: one lane per row) or row-major.

// ---- per-row dot products reduced across a row group -------------------------------
//
// Row-major kernels compute, for each row g of a group, a vector of partial
// sums (C lanes). Reducing each with HorizontalSum costs ~log2(C) shuffles and
// adds per row; reducing the group's rows together with a transpose-and-add
// tree costs about 3 operations per row. Row g's partial goes to slot
// RowSlot<C>(g) (a bit-reversal within each block of C rows, which makes the
// tree's output come out in row order); the W sums land in out[0..W).

template <int C>
constexpr std::size_t RowSlot(std::size_t g) {
  if constexpr (C == 8) {
    constexpr std::size_t kRev[8] = {0, 4, 2, 6, 1, 5, 3, 7};
    return (g & ~std::size_t{7}) | kRev[g & 7];
  } else {
    static_assert(C == 4, "unsupported chunk");
    constexpr std::size_t kRev[4] = {0, 2, 1, 3};
    return (g & ~std::size_t{3}) | kRev[g & 3];
  }
}

template <int W, int C>
FLOWVAE_LANE_INLINE void ReduceRowPartials(const typename Vec<C>::F* slots, float* out) {
  using FC = typename Vec<C>::F;
  using IC = typename Vec<C>::I;
  static_assert(W % C == 0, "group width must be a multiple of the chunk");
  for (int block = 0; block < W / C; ++block) {
    const FC* p = slots + block * C;
    if constexpr (C == 8) {
      FC q[4], r[2];
      for (int i = 0; i < 4; ++i)
        q[i] = __builtin_shuffle(p[2 * i], p[2 * i + 1], IC{0, 1, 2, 3, 8, 9, 10, 11}) +
               __builtin_shuffle(p[2 * i], p[2 * i + 1], IC{4, 5, 6, 7, 12, 13, 14, 15});
      for (int i = 0; i < 2; ++i)
        r[i] = __builtin_shuffle(q[2 * i], q[2 * i + 1], IC{0, 1, 8, 9, 4, 5, 12, 13}) +
               __builtin_shuffle(q[2 * i], q[2 * i + 1], IC{2, 3, 10, 11, 6, 7, 14, 15});
      Store(out + block * C, __builtin_shuffle(r[0], r[1], IC{0, 8, 2, 10, 4, 12, 6, 14}) +
                                 __builtin_shuffle(r[0], r[1], IC{1, 9, 3, 11, 5, 13, 7, 15}));
    } else {
      const FC q0 = __builtin_shuffle(p[0], p[1], IC{0, 1, 4, 5}) + __builtin_shuffle(p[0], p[1], IC{2, 3, 6, 7});
      const FC q1 = __builtin_shuffle(p[2], p[3], IC{0, 1, 4, 5}) + __builtin_shuffle(p[2], p[3], IC{2, 3, 6, 7});
      Store(out + block * C, __builtin_shuffle(q0, q1, IC{0, 4, 2, 6}) + __builtin_shuffle(q0, q1, IC{1, 5, 3, 7}));
    }
  }
}

// Prefetches part `part` of `parts` of [p, p + n): called once per layer, it
// brings the next row group's amortized parameters (one contiguous block) in
// while the current group computes, instead of leaving 2·W short streams to
// the hardware prefetchers.
FLOWVAE_LANE_INLINE void PrefetchPart(const float* p, std::size_t n, std::size_t part, std::size_t parts,
                                      bool for_write) {
  if (!p || n == 0) return;
  const char* c = reinterpret_cast<const char*>(p);
  const std::size_t bytes = n * sizeof(float);
  const std::size_t begin = bytes * part / parts & ~static_cast<std::size_t>(63);
  const std::size_t end = bytes * (part + 1) / parts;
  if (for_write) {
    for (std::size_t off = begin; off < end; off += 64) __builtin_prefetch(c + off, 1, 2);
  } else {
    for (std::size_t off = begin; off < end; off += 64) __builtin_prefetch(c + off, 0, 2);
  }
}

// dst[0, n) = src[0, n) with non-temporal (streaming) stores for the whole
// vectors of F that start on a multiple of sizeof(F), plain stores for the
// rest. For outputs written once and not read back soon (amortized parameter
// gradients): a normal store first reads the line it writes (read for
// ownership), a third of the traffic of a gradient block. Ends with a store
// fence, so the data is ordered before whatever publishes it.
template <class F>
FLOWVAE_LANE_INLINE void StreamCopy(float* dst, const float* src, std::size_t n) {
  constexpr std::size_t kW = sizeof(F) / sizeof(float);
  std::size_t i = 0;
  for (; i < n && reinterpret_cast<std::uintptr_t>(dst + i) % sizeof(F) != 0; ++i) dst[i] = src[i];
  for (; i + kW <= n; i += kW) {
    const F v = Load<F>(src + i);
    F* out = reinterpret_cast<F*>(dst + i);
    if constexpr (sizeof(F) == 64) {
      asm("vmovntps %1, %0" : "=m"(*out) : "v"(v));
    } else if constexpr (sizeof(F) == 32) {
      asm("vmovntps %1, %0" : "=m"(*out) : "x"(v));
    } else {
      static_assert(sizeof(F) == 16, "unsupported width");
      asm("movntps %1, %0" : "=m"(*out) : "x"(v));
    }
  }
  for (; i < n; ++i) dst[i] = src[i];
  asm volatile("sfence" ::: "memory");
}

// Per-thread scratch that only grows (no allocation once warm), aligned to a
// cache line. One buffer per thread, used by one kernel at a time.
inline float* ThreadScratch(std::size_t n) {
  thread_local AlignedFloats buffer;
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

// dst[d·W + l] = src[l·D + d] for the group's rows; padded lanes get `pad`.
template <int W>
FLOWVAE_LANE_INLINE void GatherRows(const float* src, std::size_t rows, std::size_t D, float* dst, float pad = 0.0f) {
  Transpose<(W < 8 ? W : 8)>(src, D, rows, D, dst, W);
  for (std::size_t l = rows; l < static_cast<std::size_t>(W); ++l)
    for (std::size_t d = 0; d < D; ++d) dst[d * W + l] = pad;
}

// dst[l·D + d] = src[d·W + l]; returns a per-lane probe that is 0 where the row is finite.
template <int W>
FLOWVAE_LANE_INLINE typename Vec<W>::F ScatterRows(const float* src, std::size_t rows, std::size_t D, float* dst) {
  using F = typename Vec<W>::F;
  F probe = F{};
  for (std::size_t d = 0; d < D; ++d) probe += NonFiniteProbe(Load<F>(src + d * W));
  Transpose<(W < 8 ? W : 8)>(src, W, D, rows, dst, D);
  return probe;
}

// Σ_d coef[d]·T[d] over transposed rows, four accumulators to hide FMA latency.
template <int W>
FLOWVAE_LANE_INLINE typename Vec<W>::F DotLanes(const float* coef, const float* T, std::size_t D) {
  using F = typename Vec<W>::F;
  F a0 = F{}, a1 = F{}, a2 = F{}, a3 = F{};
  std::size_t d = 0;
  for (; d + 4 <= D; d += 4) {
    a0 += coef[d] * Load<F>(T + d * W);
    a1 += coef[d + 1] * Load<F>(T + (d + 1) * W);
    a2 += coef[d + 2] * Load<F>(T + (d + 2) * W);
    a3 += coef[d + 3] * Load<F>(T + (d + 3) * W);
  }
  for (; d < D; ++d) a0 += coef[d] * Load<F>(T + d * W);
  return (a0 + a1) + (a2 + a3);
}

template <int W>
FLOWVAE_LANE_INLINE std::size_t CountBadLanes(const typename Vec<W>::F& probe, std::size_t rows) {
  alignas(64) float lane[W];
  Store(lane, probe);
  std::size_t bad = 0;
  for (std::size_t l = 0; l < rows; ++l)
    if (!(lane[l] == 0.0f)) ++bad;
  return bad;
}

// Rows of the lane group starting at row `first`: W, fewer at the end, 0 past it.
template <int W>
FLOWVAE_LANE_INLINE std::size_t GroupRows(std::size_t first, std::size_t row_end) {
  return first < row_end ? std::min<std::size_t>(W, row_end - first) : 0;
}

// Writes a shared-parameter stack's forward outputs for one lane group of
// `rows` rows starting at `first`: the stash and (when wanted) the per-layer
// log-dets from lanes [K, W] to rows [rows, K], the log-det, and y from zT
// [D, W]. Returns the number of rows with a non-finite output.
template <int W>
FLOWVAE_LANE_INLINE std::size_t StoreGroupOutputs(const float* stash_lanes, const float* ld_lanes,
                                                  const typename Vec<W>::F& ld_sum, const float* zT, std::size_t first,
                                                  std::size_t rows, std::size_t D, std::size_t K, float* stash,
                                                  float* layer_log_det, float* log_det, float* y) {
  Transpose<(W < 8 ? W : 8)>(stash_lanes, W, K, rows, stash + first * K, K);
  if (layer_log_det) Transpose<(W < 8 ? W : 8)>(ld_lanes, W, K, rows, layer_log_det + first * K, K);
  alignas(64) float lane[W];
  Store(lane, ld_sum);
  for (std::size_t l = 0; l < rows; ++l) log_det[first + l] = lane[l];
  return CountBadLanes<W>(ScatterRows<W>(zT, rows, D, y + first * D) + NonFiniteProbe(ld_sum), rows);
}

template <int C>
FLOWVAE_LANE_INLINE bool RowFinite(const float* v, std::size_t n) {
  using FC = typename Vec<C>::F;
  FC probe = FC{};
  std::size_t d = 0;
  for (; d + C <= n; d += C) probe += NonFiniteProbe(Load<FC>(v + d));
  float s = n >= C ? HorizontalSum(probe) : 0.0f;
  for (; d < n; ++d) s += v[d] - v[d];
  return s == 0.0f;
}

}  // namespace lanes
}  // namespace flowvae
