// Sylvester flow kernels (see native/include/flowvae/sylvester.h and the
// contract in src/backend/kernels/sylvester.ts).
//
// Shared parameters: each layer is folded once per call into two dense
// matrices (Wa = Q R~^T, Wb = R^T Q^T), and blocks of 32 rows go through all
// K layers as small register-blocked matrix products; the weight gradients are
// the same products over the rows of a block, summed in reduction slots fixed
// by the batch size (results do not depend on the thread count).
// Amortized parameters: each row has its own Q and R, so a layer is a few
// matrix-vector products, parallel over rows.
// Björck steps and Householder products run per (parameter set, layer).
// The vector code lives in sylvester_simd.inc, compiled three times: scalar,
// AVX2+FMA and AVX-512, chosen at run time by simd_level().
#include "flowvae/sylvester.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "flowvae/parallel.h"
#include "aligned_vector.h"

namespace flowvae {

SylvesterLayout sylvester_layout(const SylvesterShape& s) {
  SylvesterLayout l;
  const std::size_t d = s.dim, m = s.m, k = s.layers;
  l.q_raw_per_layer = s.variant == SylvesterVariant::kOrthogonal    ? d * m
                      : s.variant == SylvesterVariant::kHouseholder ? s.householders * d
                                                                    : 0;
  l.off_diagonal = 0;
  l.diagonal = k * m * m;
  l.diagonal_tilde = l.diagonal + k * m;
  l.bias = l.diagonal_tilde + k * m;
  l.q = l.bias + k * m;
  l.size = l.q + k * l.q_raw_per_layer;
  l.q_per_layer = s.variant == SylvesterVariant::kTriangular ? 0 : d * m;
  l.saved_per_row = k * (d + m);
  return l;
}

namespace {

// R_ii from a raw value: tanh(clamp(raw, -8, 8)), NaN kept.
inline float scalar_diagonal(float raw) {
  if (std::isnan(raw)) return raw;
  return std::tanh(std::min(std::max(raw, -kSylvesterDiagonalClamp), kSylvesterDiagonalClamp));
}

inline float scalar_diagonal_slope(float raw, float value) {
  return std::fabs(raw) < kSylvesterDiagonalClamp ? 1.0f - value * value : 0.0f;
}

// The larger of two error measures, where NaN, once seen, sticks.
inline double worse(double worst, double r) { return std::isnan(worst) ? worst : !(r <= worst) ? r : worst; }

// Entry points of one SIMD path.
struct PathFns {
  double (*bjorck)(const float*, std::size_t, std::size_t, std::size_t, double, AlignedFloats*, float*, std::size_t*,
                   double*);
  void (*bjorck_backward)(const float*, std::size_t, std::size_t, std::size_t, double, const float*, float*);
  bool (*householder)(const float*, std::size_t, std::size_t, float*);
  void (*householder_backward)(const float*, std::size_t, std::size_t, const float*, float*);
  void (*shared_forward)(const SylvesterShape&, const SylvesterLayout&, std::size_t, const float*, const float*,
                         const float*, float*, float*, float*);
  void (*shared_backward)(const SylvesterShape&, const SylvesterLayout&, std::size_t, const float*, const float*,
                          const float*, const float*, const float*, float*, float*, float*);
  void (*amortized_forward_row)(const SylvesterShape&, const SylvesterLayout&, std::size_t, const float*, const float*,
                                const float*, float*, float*, float*);
  void (*amortized_backward_row)(const SylvesterShape&, const SylvesterLayout&, std::size_t, const float*, const float*,
                                 const float*, const float*, const float*, float*, float*, float*);
};

#define FLOWVAE_SYLVESTER_PATH_FNS                                                                    \
  const PathFns kFns = {bjorck,         bjorck_backward, householder,           householder_backward, \
                        shared_forward, shared_backward, amortized_forward_row, amortized_backward_row};

// --- scalar path (any x86-64 and other architectures) ----------------------
namespace scalar_path {
struct V {
  using T = float;
  using Mask = bool;
  static constexpr std::size_t W = 1;
  static constexpr int kRows = 4, kCols = 4;
  static constexpr bool kHasHalf = false;  // see the AVX-512 V
  static T zero() { return 0.0f; }
  static T set1(float v) { return v; }
  static T load(const float* p) { return *p; }
  static void store(float* p, T v) { *p = v; }
  static T load_n(const float* p, int n) { return n > 0 ? *p : 0.0f; }
  static void store_n(float* p, T v, int n) {
    if (n > 0) *p = v;
  }
  static T add(T a, T b) { return a + b; }
  static T sub(T a, T b) { return a - b; }
  static T mul(T a, T b) { return a * b; }
  static T div(T a, T b) { return a / b; }
  static T fmadd(T a, T b, T c) { return a * b + c; }
  static T fnmadd(T a, T b, T c) { return c - a * b; }
  static T min(T a, T b) { return b < a ? b : a; }
  static T max(T a, T b) { return a < b ? b : a; }
  static T abs(T a) { return std::fabs(a); }
  static Mask lt(T a, T b) { return a < b; }
  static Mask is_nan(T a) { return std::isnan(a); }
  static T select(Mask m, T a, T b) { return m ? a : b; }
  static float hsum(T a) { return a; }
  static T round(T a) { return std::nearbyint(a); }
  static T frexp(T x, T* e) {
    int ei = 0;
    const float m = std::frexp(x, &ei);
    *e = static_cast<float>(ei);
    return m;
  }
  static T pow2(T p, T n) { return std::ldexp(p, static_cast<int>(n)); }
};
#include "sylvester_simd.inc"
FLOWVAE_SYLVESTER_PATH_FNS
}  // namespace scalar_path

#if defined(__x86_64__) || defined(__i386__)
// --- AVX2 + FMA ------------------------------------------------------------
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2_path {
struct V {
  using T = __m256;
  using Mask = __m256;
  static constexpr std::size_t W = 8;
  static constexpr int kRows = 4, kCols = 3;  // 12 accumulators of 16 ymm
  static constexpr bool kHasHalf = false;     // see the AVX-512 V
  static T zero() { return _mm256_setzero_ps(); }
  static T set1(float v) { return _mm256_set1_ps(v); }
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static __m256i tail_mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static T load_n(const float* p, int n) { return _mm256_maskload_ps(p, tail_mask(n)); }
  static void store_n(float* p, T v, int n) { _mm256_maskstore_ps(p, tail_mask(n), v); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
  static T sub(T a, T b) { return _mm256_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
  static T div(T a, T b) { return _mm256_div_ps(a, b); }
  static T fmadd(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T fnmadd(T a, T b, T c) { return _mm256_fnmadd_ps(a, b, c); }
  static T min(T a, T b) { return _mm256_min_ps(a, b); }
  static T max(T a, T b) { return _mm256_max_ps(a, b); }
  static T abs(T a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static Mask lt(T a, T b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static Mask is_nan(T a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  static T select(Mask m, T a, T b) { return _mm256_blendv_ps(b, a, m); }
  static float hsum(T a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static T round(T a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static T frexp(T x, T* e) {
    const __m256i bits = _mm256_castps_si256(x);
    const __m256i ex = _mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(0xff)),
                                        _mm256_set1_epi32(126));
    *e = _mm256_cvtepi32_ps(ex);
    const __m256i mant =
        _mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x3f000000));
    return _mm256_castsi256_ps(mant);
  }
  static T pow2(T p, T n) {
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  }
};
#include "sylvester_simd.inc"
FLOWVAE_SYLVESTER_PATH_FNS
}  // namespace avx2_path
#pragma GCC pop_options

// --- AVX-512F ----------------------------------------------------------------
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
// GCC 12 flags the deliberately undefined pass-through operand inside its own
// AVX-512 intrinsics (_mm512_undefined_ps) as maybe-uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace avx512_path {
struct V {
  using T = __m512;
  using Mask = __mmask16;
  static constexpr std::size_t W = 16;
  static constexpr int kRows = 8, kCols = 3;  // 24 accumulators of 32 zmm
  // Half vectors (8 floats) for products whose last 16-wide column block has
  // only padding in its upper half: a 256-bit multiply-add costs half a
  // 512-bit one where the core splits 512-bit operations (AMD Zen 4).
  static constexpr bool kHasHalf = true;
  using H = __m256;
  static H half_zero() { return _mm256_setzero_ps(); }
  static H half_load(const float* p) { return _mm256_loadu_ps(p); }
  static void half_store(float* p, H v) { _mm256_storeu_ps(p, v); }
  static H half_of(T v) { return _mm512_castps512_ps256(v); }
  static H half_fmadd(H a, H b, H c) { return _mm256_fmadd_ps(a, b, c); }
  static T zero() { return _mm512_setzero_ps(); }
  static T set1(float v) { return _mm512_set1_ps(v); }
  static T load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, T v) { _mm512_storeu_ps(p, v); }
  static __mmask16 tail_mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static T load_n(const float* p, int n) { return _mm512_maskz_loadu_ps(tail_mask(n), p); }
  static void store_n(float* p, T v, int n) { _mm512_mask_storeu_ps(p, tail_mask(n), v); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static T sub(T a, T b) { return _mm512_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm512_mul_ps(a, b); }
  static T div(T a, T b) { return _mm512_div_ps(a, b); }
  static T fmadd(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T fnmadd(T a, T b, T c) { return _mm512_fnmadd_ps(a, b, c); }
  static T min(T a, T b) { return _mm512_min_ps(a, b); }
  static T max(T a, T b) { return _mm512_max_ps(a, b); }
  static T abs(T a) { return _mm512_abs_ps(a); }
  static Mask lt(T a, T b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static Mask is_nan(T a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static T select(Mask m, T a, T b) { return _mm512_mask_blend_ps(m, b, a); }
  static float hsum(T a) { return _mm512_reduce_add_ps(a); }
  static T round(T a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static T frexp(T x, T* e) {
    const __m512i bits = _mm512_castps_si512(x);
    const __m512i ex = _mm512_sub_epi32(_mm512_and_si512(_mm512_srli_epi32(bits, 23), _mm512_set1_epi32(0xff)),
                                        _mm512_set1_epi32(126));
    *e = _mm512_cvtepi32_ps(ex);
    const __m512i mant =
        _mm512_or_si512(_mm512_and_si512(bits, _mm512_set1_epi32(0x007fffff)), _mm512_set1_epi32(0x3f000000));
    return _mm512_castsi512_ps(mant);
  }
  static T pow2(T p, T n) {
    const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
  }
};
#include "sylvester_simd.inc"
FLOWVAE_SYLVESTER_PATH_FNS
}  // namespace avx512_path
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

#undef FLOWVAE_SYLVESTER_PATH_FNS

const PathFns& path(SimdLevel level) {
  const SimdLevel best = simd_level();
  if (static_cast<int>(level) > static_cast<int>(best)) level = best;
#if defined(__x86_64__) || defined(__i386__)
  if (level == SimdLevel::kAvx512) return avx512_path::kFns;
  if (level == SimdLevel::kAvx2) return avx2_path::kFns;
#endif
  return scalar_path::kFns;
}

}  // namespace

// ---------------------------------------------------------------------------
// Orthogonalization

double sylvester_orthogonalize(SimdLevel level, const SylvesterShape& s, std::size_t sets, const float* params,
                               float* q, std::size_t max_steps, double tolerance) {
  if (s.variant == SylvesterVariant::kTriangular) return 0.0;
  const PathFns& fns = path(level);
  const SylvesterLayout lay = sylvester_layout(s);
  const std::size_t items = sets * s.layers;
  std::vector<double> residual(items, 0.0);
  parallel_for(items, 1, [&](std::size_t i0, std::size_t i1) {
    for (std::size_t i = i0; i < i1; ++i) {
      const std::size_t set = i / s.layers, k = i % s.layers;
      const float* raw = params + set * lay.size + lay.q + k * lay.q_raw_per_layer;
      float* out = q + i * lay.q_per_layer;
      if (s.variant == SylvesterVariant::kOrthogonal) {
        std::size_t steps = 0;
        double norm = 0;
        residual[i] = fns.bjorck(raw, s.dim, s.m, max_steps, tolerance, nullptr, out, &steps, &norm);
      } else {
        residual[i] = fns.householder(raw, s.dim, s.householders, out) ? 0.0 : std::numeric_limits<double>::quiet_NaN();
      }
    }
  });
  double worst = 0.0;
  for (double r : residual) worst = worse(worst, r);
  return worst;
}

double sylvester_orthogonalize(const SylvesterShape& s, std::size_t sets, const float* params, float* q,
                               std::size_t max_steps, double tolerance) {
  return sylvester_orthogonalize(simd_level(), s, sets, params, q, max_steps, tolerance);
}

void sylvester_orthogonalize_backward(SimdLevel level, const SylvesterShape& s, std::size_t sets, const float* params,
                                      const float* grad_q, float* grad_params, std::size_t max_steps,
                                      double tolerance) {
  if (s.variant == SylvesterVariant::kTriangular) return;
  const PathFns& fns = path(level);
  const SylvesterLayout lay = sylvester_layout(s);
  parallel_for(sets * s.layers, 1, [&](std::size_t i0, std::size_t i1) {
    for (std::size_t i = i0; i < i1; ++i) {
      const std::size_t set = i / s.layers, k = i % s.layers;
      const std::size_t off = set * lay.size + lay.q + k * lay.q_raw_per_layer;
      const float* gq = grad_q + i * lay.q_per_layer;
      if (s.variant == SylvesterVariant::kOrthogonal)
        fns.bjorck_backward(params + off, s.dim, s.m, max_steps, tolerance, gq, grad_params + off);
      else
        fns.householder_backward(params + off, s.dim, s.householders, gq, grad_params + off);
    }
  });
}

void sylvester_orthogonalize_backward(const SylvesterShape& s, std::size_t sets, const float* params,
                                      const float* grad_q, float* grad_params, std::size_t max_steps,
                                      double tolerance) {
  sylvester_orthogonalize_backward(simd_level(), s, sets, params, grad_q, grad_params, max_steps, tolerance);
}

// ---------------------------------------------------------------------------
// Forward / backward

void sylvester_forward(SimdLevel level, const SylvesterShape& s, std::size_t batch, bool amortized, const float* x,
                       const float* params, const float* q, float* y, float* log_det, float* saved) {
  const PathFns& fns = path(level);
  const SylvesterLayout lay = sylvester_layout(s);
  if (!amortized) return fns.shared_forward(s, lay, batch, x, params, q, y, log_det, saved);
  parallel_for(batch, 4, [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) fns.amortized_forward_row(s, lay, r, x, params, q, y, log_det, saved);
  });
}

void sylvester_forward(const SylvesterShape& s, std::size_t batch, bool amortized, const float* x, const float* params,
                       const float* q, float* y, float* log_det, float* saved) {
  sylvester_forward(simd_level(), s, batch, amortized, x, params, q, y, log_det, saved);
}

void sylvester_backward(SimdLevel level, const SylvesterShape& s, std::size_t batch, bool amortized,
                        const float* params, const float* q, const float* saved, const float* grad_y,
                        const float* grad_log_det, float* grad_x, float* grad_params, float* grad_q) {
  const PathFns& fns = path(level);
  const SylvesterLayout lay = sylvester_layout(s);
  if (!amortized)
    return fns.shared_backward(s, lay, batch, params, q, saved, grad_y, grad_log_det, grad_x, grad_params, grad_q);
  parallel_for(batch, 4, [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r)
      fns.amortized_backward_row(s, lay, r, params, q, saved, grad_y, grad_log_det, grad_x, grad_params, grad_q);
  });
}

void sylvester_backward(const SylvesterShape& s, std::size_t batch, bool amortized, const float* params, const float* q,
                        const float* saved, const float* grad_y, const float* grad_log_det, float* grad_x,
                        float* grad_params, float* grad_q) {
  sylvester_backward(simd_level(), s, batch, amortized, params, q, saved, grad_y, grad_log_det, grad_x, grad_params,
                     grad_q);
}

// ---------------------------------------------------------------------------
// Inverse (not a training hot path: plain double arithmetic, parallel over rows)

namespace {

// One layer in double: dense Q (D x M), R and R~ (M x M), b, and E = Q^T Q - I.
struct InverseLayer {
  std::vector<double> q, r, rt, b, e;
  bool has_e = false;
};

void inverse_layer_load(const SylvesterShape& s, const SylvesterLayout& lay, const float* params, const float* q,
                        std::size_t set, std::size_t k, InverseLayer& out) {
  const std::size_t d = s.dim, m = s.m;
  out.q.assign(d * m, 0.0);
  out.r.assign(m * m, 0.0);
  out.rt.assign(m * m, 0.0);
  out.b.assign(m, 0.0);
  if (s.variant == SylvesterVariant::kTriangular) {
    for (std::size_t i = 0; i < d; ++i) out.q[(k % 2 == 0 ? i : d - 1 - i) * m + i] = 1.0;
    out.has_e = false;
  } else {
    const float* qk = q + (set * s.layers + k) * lay.q_per_layer;
    for (std::size_t i = 0; i < d * m; ++i) out.q[i] = qk[i];
    out.e.assign(m * m, 0.0);
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < m; ++j) {
        double sum = i == j ? -1.0 : 0.0;
        for (std::size_t r = 0; r < d; ++r) sum += out.q[r * m + i] * out.q[r * m + j];
        out.e[i * m + j] = sum;
      }
    out.has_e = true;
  }
  const float* p = params + set * lay.size;
  const float* sm = p + lay.off_diagonal + k * m * m;
  for (std::size_t i = 0; i < m; ++i) {
    out.r[i * m + i] = scalar_diagonal(p[lay.diagonal + k * m + i]);
    out.rt[i * m + i] = scalar_diagonal(p[lay.diagonal_tilde + k * m + i]);
    out.b[i] = p[lay.bias + k * m + i];
    for (std::size_t j = i + 1; j < m; ++j) {
      out.r[i * m + j] = sm[i * m + j];
      out.rt[i * m + j] = sm[j * m + i];
    }
  }
}

// Solves u + alpha tanh(beta u + c) = r (strictly increasing since alpha beta > -1;
// root in [r - |alpha|, r + |alpha|]): Newton, bisection when a step leaves the bracket.
bool solve_scalar(double alpha, double beta, double c, double r, std::size_t max_iterations, double* out) {
  double lo = r - std::fabs(alpha), hi = r + std::fabs(alpha);
  double u = std::min(std::max(r - alpha * std::tanh(beta * r + c), lo), hi);
  for (std::size_t it = 0; it < max_iterations; ++it) {
    const double th = std::tanh(beta * u + c);
    const double f = u + alpha * th - r;
    if (f == 0) {
      *out = u;
      return true;
    }
    if (f > 0)
      hi = u;
    else
      lo = u;
    const double slope = 1 + alpha * beta * (1 - th * th);
    double next = u - f / slope;
    if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
    if (std::fabs(next - u) <= 1e-13 * (1 + std::fabs(u)) || !(hi - lo > 1e-13 * (1 + std::fabs(u)))) {
      *out = next;
      return true;
    }
    u = next;
  }
  return false;
}

// One layer's inverse for one row, in place (y -> x); adds the forward log-det at x to *ld.
bool inverse_layer_row(const SylvesterShape& s, const InverseLayer& l, std::size_t max_iterations, double tol,
                       double* y, double* ld, std::vector<double>& work) {
  const std::size_t d = s.dim, m = s.m;
  work.assign(6 * m + d, 0.0);
  double* yhat = work.data();
  double* w = yhat + m;
  double* rhs = w + m;
  double* next = rhs + m;
  double* h = next + m;
  double* v = h + m;
  double* qv = v + m;
  auto r_h_of = [&](const double* wv) {  // v = R tanh(R~ wv + b); h keeps tanh
    for (std::size_t i = 0; i < m; ++i) {
      double a = l.b[i];
      for (std::size_t j = i; j < m; ++j) a += l.rt[i * m + j] * wv[j];
      h[i] = std::tanh(a);
    }
    for (std::size_t i = 0; i < m; ++i) {
      double sum = 0;
      for (std::size_t j = i; j < m; ++j) sum += l.r[i * m + j] * h[j];
      v[i] = sum;
    }
  };
  for (std::size_t j = 0; j < m; ++j) {
    double sum = 0;
    for (std::size_t r = 0; r < d; ++r) sum += l.q[r * m + j] * y[r];
    yhat[j] = sum;
    w[j] = sum;
  }
  bool converged = false;
  for (std::size_t outer = 0; outer < max_iterations && !converged; ++outer) {
    for (std::size_t i = 0; i < m; ++i) rhs[i] = yhat[i];
    if (l.has_e) {
      r_h_of(w);
      for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < m; ++j) rhs[i] -= l.e[i * m + j] * v[j];
    }
    for (std::size_t i = m; i-- > 0;) {
      double c = l.b[i], rr = rhs[i];
      for (std::size_t j = i + 1; j < m; ++j) {
        c += l.rt[i * m + j] * next[j];
        rr -= l.r[i * m + j] * h[j];
      }
      if (!solve_scalar(l.r[i * m + i], l.rt[i * m + i], c, rr, max_iterations, &next[i])) return false;
      h[i] = std::tanh(l.rt[i * m + i] * next[i] + c);
    }
    double delta = 0, size = 0;
    for (std::size_t i = 0; i < m; ++i) {
      delta = std::max(delta, std::fabs(next[i] - w[i]));
      size = std::max(size, std::fabs(next[i]));
      w[i] = next[i];
    }
    converged = !l.has_e || delta <= 1e-3 * tol * (1 + size);
  }
  if (!converged) return false;
  // x = y - Q R h(R~ w + b); then check f(x) = y and take the log-det at x.
  r_h_of(w);
  double* xv = qv;
  for (std::size_t r = 0; r < d; ++r) {
    double sum = 0;
    for (std::size_t j = 0; j < m; ++j) sum += l.q[r * m + j] * v[j];
    xv[r] = y[r] - sum;
  }
  for (std::size_t j = 0; j < m; ++j) {
    double sum = 0;
    for (std::size_t r = 0; r < d; ++r) sum += l.q[r * m + j] * xv[r];
    next[j] = sum;
  }
  r_h_of(next);
  double layer_ld = 0;
  for (std::size_t i = 0; i < m; ++i) layer_ld += std::log1p((1 - h[i] * h[i]) * l.r[i * m + i] * l.rt[i * m + i]);
  double residual = 0, scale = 0;
  for (std::size_t r = 0; r < d; ++r) {
    double sum = 0;
    for (std::size_t j = 0; j < m; ++j) sum += l.q[r * m + j] * v[j];
    residual = worse(residual, std::fabs(xv[r] + sum - y[r]));
    scale = std::max(scale, std::fabs(y[r]));
  }
  if (!(residual <= tol * (1 + scale)) || !std::isfinite(layer_ld)) return false;
  for (std::size_t r = 0; r < d; ++r) y[r] = xv[r];
  *ld += layer_ld;
  return true;
}

}  // namespace

std::size_t sylvester_inverse(const SylvesterShape& s, std::size_t batch, bool amortized, const float* y,
                              const float* params, const float* q, float* x, float* log_det, std::size_t max_iterations,
                              double tolerance) {
  const SylvesterLayout lay = sylvester_layout(s);
  const std::size_t d = s.dim;
  std::vector<InverseLayer> shared_layers;
  if (!amortized) {
    shared_layers.resize(s.layers);
    for (std::size_t k = 0; k < s.layers; ++k) inverse_layer_load(s, lay, params, q, 0, k, shared_layers[k]);
  }
  std::vector<unsigned char> failed(batch, 0);
  parallel_for(batch, 4, [&](std::size_t r0, std::size_t r1) {
    std::vector<double> row(d), work;
    InverseLayer own;
    for (std::size_t r = r0; r < r1; ++r) {
      for (std::size_t i = 0; i < d; ++i) row[i] = y[r * d + i];
      double ld = 0;
      bool ok = true;
      for (std::size_t k = s.layers; k-- > 0 && ok;) {
        if (amortized) inverse_layer_load(s, lay, params, q, r, k, own);
        ok = inverse_layer_row(s, amortized ? own : shared_layers[k], max_iterations, tolerance, row.data(), &ld, work);
      }
      if (ok) {
        for (std::size_t i = 0; i < d; ++i) x[r * d + i] = static_cast<float>(row[i]);
        log_det[r] = static_cast<float>(-ld);
      } else {
        failed[r] = 1;
        for (std::size_t i = 0; i < d; ++i) x[r * d + i] = std::numeric_limits<float>::quiet_NaN();
        log_det[r] = std::numeric_limits<float>::quiet_NaN();
      }
    }
  });
  std::size_t count = 0;
  for (unsigned char f : failed) count += f;
  return count;
}

}  // namespace flowvae
