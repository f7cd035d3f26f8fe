// Coupling flow kernels (see flowvae/coupling.h for the mathematics and
// layouts).
//
// The per-element work is O(batch·width), small beside the conditioner's
// matrix products (O(batch·width·hidden)), but the affine transform costs a
// tanh and an exp per element, which scalar libm calls would make a visible
// fraction of a coupling layer. So the affine kernels run SIMD along each
// row's transformed columns (AVX-512, AVX2 or SSE2, picked at run time; a
// row's columns go in full vectors, then half and quarter vectors, and the
// last < 4 zero-padded through the same code), parallel over rows. The transformed columns are read and written in
// place in the full rows: no gathered copies of halves.
//
// Row sums (log-det) are per row, so they do not depend on the thread count;
// the parameter gradients (d_scale, d_log_scale) are sums over rows kept per
// fixed chunk of rows (reduce_in_chunks) and combined in chunk order in
// float64, so they are the same bits at any thread count.
#include "flowvae/coupling.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "flowvae/cpu_features.h"
#include "flowvae/parallel.h"
#include "lane_math.h"

namespace flowvae {
namespace {

using lanes::HorizontalSum;
using lanes::Load;
using lanes::Max;
using lanes::Min;
using lanes::Select;
using lanes::Splat;
using lanes::Store;
using lanes::TanhSech2;
using lanes::Vec;

// Rows per parallel task: a task should hold some microseconds of work.
// Gathers and adds are a few ns per row element, the affine transform ~10.
inline std::size_t CopyGrain(std::size_t per_row) { return 1 + 32768 / std::max<std::size_t>(per_row, 1); }
inline std::size_t AffineGrain(std::size_t width) { return 1 + 4096 / std::max<std::size_t>(width, 1); }

// Parameter-gradient sums run in float32 over at most this many rows of a
// chunk, then continue in float64.
constexpr std::size_t kFlushRows = 256;
// Rows per reduction chunk are a multiple of this; at most kMaxChunks chunks.
constexpr std::size_t kChunkUnit = 256;
constexpr std::size_t kMaxChunks = 64;

// ---- vector helpers -------------------------------------------------------------

template <class F>
FLOWVAE_LANE_INLINE F LoadN(const float* p, std::size_t n) {
  F v{};
  std::memcpy(&v, p, n * sizeof(float));
  return v;
}

template <class F>
FLOWVAE_LANE_INLINE void StoreN(float* p, const F& v, std::size_t n) {
  std::memcpy(p, &v, n * sizeof(float));
}

// e^x for any x (Cephes expf, ~2 ulp): 0 below −87.34, +inf above 88.72, NaN
// stays NaN. 2ⁿ is applied as two factors so n = 128 and n = −126 stay exact.
template <class F>
FLOWVAE_LANE_INLINE F Exp(const F& arg) {
  using I = decltype(arg < arg);
  const F x = Min(Max(arg, Splat<F>(-87.33654f)), Splat<F>(88.72283f));
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
  const I half = ni >> 1;
  F result = p * (F)((half + 127) << 23) * (F)((ni - half + 127) << 23);
  result = Select(arg > 88.72283f, Splat<F>(__builtin_inff()), result);
  result = Select(arg < -87.33654f, F{}, result);
  return Select(arg != arg, arg, result);
}

// tanh(a) and 1 − tanh²(a) (lane_math's TanhSech2), with NaN kept as NaN.
template <class F>
FLOWVAE_LANE_INLINE void Tanh2(const F& a, F* t, F* sech2) {
  TanhSech2(a, t, sech2);
  *t = Select(a != a, a, *t);
  *sech2 = Select(a != a, a, *sech2);
}

// ---- affine ------------------------------------------------------------------------

struct AffineArgs {
  const float* in;  // x (forward, backward) or y (inverse)
  const float* h;
  const float* scale;
  const float* dy;
  const float* d_log_det;
  float* out;  // y (forward), x (inverse), dx (backward)
  float* log_det;
  float* dh;
  std::size_t dim, offset, width;
};

// One vector of columns [j, j + lanes) of row r (lanes = W, or fewer for the
// row's zero-padded tail: padded ŝ, t, x and scale are 0, so s = 0 there).
template <class F, bool kInverse>
FLOWVAE_LANE_INLINE F AffineStep(const AffineArgs& a, std::size_t r, std::size_t j, std::size_t lanes) {
  constexpr std::size_t W = sizeof(F) / sizeof(float);
  const float* hs = a.h + 2 * r * a.width + j;
  const float* ht = hs + a.width;
  const float* in = a.in + r * a.dim + a.offset + j;
  float* out = a.out + r * a.dim + a.offset + j;
  const bool full = lanes == W;
  const F hat = full ? Load<F>(hs) : LoadN<F>(hs, lanes);
  const F t = full ? Load<F>(ht) : LoadN<F>(ht, lanes);
  const F v = full ? Load<F>(in) : LoadN<F>(in, lanes);
  const F sc = full ? Load<F>(a.scale + j) : LoadN<F>(a.scale + j, lanes);
  F th, unused;
  Tanh2(hat, &th, &unused);
  const F s = sc * th;
  const F result = kInverse ? (v - t) * Exp(-s) : v * Exp(s) + t;
  if (full) {
    Store(out, result);
  } else {
    StoreN(out, result, lanes);
  }
  return s;
}

// Columns [j, width) of one row, in vectors of W lanes, then one of W/2 and
// one of W/4 lanes where they fit (an AVX-512 row of 20 is 16 + 4 with no
// padding), then a zero-padded partial vector of 4 lanes for the last < 4.
// `step.template Run<F>(j, lanes)` handles one vector and returns its
// contribution to the row sum. (Steps are structs with always-inline members,
// not lambdas: a lambda would not inherit the caller's SIMD target.)
template <int W, class Step>
FLOWVAE_LANE_INLINE float ForEachVector(std::size_t width, const Step& step) {
  using F = typename Vec<W>::F;
  using F4 = typename Vec<4>::F;
  F sum{};
  std::size_t j = 0;
  for (; j + W <= width; j += W) sum += step.template Run<F>(j, W);
  float total = HorizontalSum(sum);
  if constexpr (W >= 16) {
    if (j + 8 <= width) {
      total += HorizontalSum(step.template Run<typename Vec<8>::F>(j, 8));
      j += 8;
    }
  }
  if constexpr (W >= 8) {
    if (j + 4 <= width) {
      total += HorizontalSum(step.template Run<F4>(j, 4));
      j += 4;
    }
  }
  if (j < width) total += HorizontalSum(step.template Run<F4>(j, width - j));
  return total;
}

template <bool kInverse>
struct ForwardRowStep {
  const AffineArgs& a;
  std::size_t r;
  template <class F>
  FLOWVAE_LANE_INLINE F Run(std::size_t j, std::size_t lanes) const {
    return AffineStep<F, kInverse>(a, r, j, lanes);
  }
};

template <int W, bool kInverse>
FLOWVAE_LANE_INLINE void AffineRows(const AffineArgs& a, std::size_t r0, std::size_t r1) {
  for (std::size_t r = r0; r < r1; ++r) {
    const float ld = ForEachVector<W>(a.width, ForwardRowStep<kInverse>{a, r});
    a.log_det[r] = kInverse ? -ld : ld;
  }
}

// Backward of one vector of columns; adds ds·tanh(ŝ) to acc[j, j + lanes).
template <class F>
FLOWVAE_LANE_INLINE void AffineBackwardStep(const AffineArgs& a, std::size_t r, std::size_t j, std::size_t lanes,
                                            float* acc) {
  constexpr std::size_t W = sizeof(F) / sizeof(float);
  const float* hs = a.h + 2 * r * a.width + j;
  const std::size_t col = r * a.dim + a.offset + j;
  float* dhs = a.dh + 2 * r * a.width + j;
  float* dht = dhs + a.width;
  const bool full = lanes == W;
  const F hat = full ? Load<F>(hs) : LoadN<F>(hs, lanes);
  const F x = full ? Load<F>(a.in + col) : LoadN<F>(a.in + col, lanes);
  const F g = full ? Load<F>(a.dy + col) : LoadN<F>(a.dy + col, lanes);
  const F sc = full ? Load<F>(a.scale + j) : LoadN<F>(a.scale + j, lanes);
  F th, sech2;
  Tanh2(hat, &th, &sech2);
  const F e = Exp(sc * th);
  const F gx = g * e;
  // ∂y/∂s = x·e^s and ∂logDet/∂s = 1; s = scale·tanh(ŝ).
  const F ds = gx * x + a.d_log_det[r];
  const F dhat = ds * sc * sech2;
  if (full) {
    Store(a.out + col, gx);
    Store(dhs, dhat);
    Store(dht, g);
    Store(acc + j, Load<F>(acc + j) + ds * th);
  } else {
    StoreN(a.out + col, gx, lanes);
    StoreN(dhs, dhat, lanes);
    StoreN(dht, g, lanes);
    StoreN(acc + j, LoadN<F>(acc + j, lanes) + ds * th, lanes);
  }
}

// Rows [r0, r1) of the backward; the d_scale partial sums go to part[width] (float64).
struct BackwardRowStep {
  const AffineArgs& a;
  std::size_t r;
  float* acc;
  template <class F>
  FLOWVAE_LANE_INLINE F Run(std::size_t j, std::size_t lanes) const {
    AffineBackwardStep<F>(a, r, j, lanes, acc);
    return F{};
  }
};

template <int W>
FLOWVAE_LANE_INLINE void AffineBackwardRows(const AffineArgs& a, std::size_t r0, std::size_t r1, double* part) {
  thread_local std::vector<float> acc;
  acc.assign(a.width, 0.0f);
  std::size_t since_flush = 0;
  for (std::size_t r = r0; r < r1; ++r) {
    ForEachVector<W>(a.width, BackwardRowStep{a, r, acc.data()});
    if (++since_flush == kFlushRows || r + 1 == r1) {
      for (std::size_t c = 0; c < a.width; ++c) {
        part[c] += acc[c];
        acc[c] = 0.0f;
      }
      since_flush = 0;
    }
  }
}

// ---- dispatch ----------------------------------------------------------------------

using RowsFn = void (*)(const AffineArgs&, std::size_t, std::size_t);
using ReduceRowsFn = void (*)(const AffineArgs&, std::size_t, std::size_t, double*);

FLOWVAE_TARGET_AVX512 void ForwardAvx512(const AffineArgs& a, std::size_t r0, std::size_t r1) {
  AffineRows<16, false>(a, r0, r1);
}
FLOWVAE_TARGET_AVX2 void ForwardAvx2(const AffineArgs& a, std::size_t r0, std::size_t r1) {
  AffineRows<8, false>(a, r0, r1);
}
void ForwardBaseline(const AffineArgs& a, std::size_t r0, std::size_t r1) { AffineRows<4, false>(a, r0, r1); }
FLOWVAE_TARGET_AVX512 void InverseAvx512(const AffineArgs& a, std::size_t r0, std::size_t r1) {
  AffineRows<16, true>(a, r0, r1);
}
FLOWVAE_TARGET_AVX2 void InverseAvx2(const AffineArgs& a, std::size_t r0, std::size_t r1) {
  AffineRows<8, true>(a, r0, r1);
}
void InverseBaseline(const AffineArgs& a, std::size_t r0, std::size_t r1) { AffineRows<4, true>(a, r0, r1); }
FLOWVAE_TARGET_AVX512 void BackwardAvx512(const AffineArgs& a, std::size_t r0, std::size_t r1, double* p) {
  AffineBackwardRows<16>(a, r0, r1, p);
}
FLOWVAE_TARGET_AVX2 void BackwardAvx2(const AffineArgs& a, std::size_t r0, std::size_t r1, double* p) {
  AffineBackwardRows<8>(a, r0, r1, p);
}
void BackwardBaseline(const AffineArgs& a, std::size_t r0, std::size_t r1, double* p) {
  AffineBackwardRows<4>(a, r0, r1, p);
}

RowsFn PickAffine(bool inverse) {
  switch (simd_level()) {
    case SimdLevel::kAvx512: return inverse ? InverseAvx512 : ForwardAvx512;
    case SimdLevel::kAvx2: return inverse ? InverseAvx2 : ForwardAvx2;
    default: return inverse ? InverseBaseline : ForwardBaseline;
  }
}

ReduceRowsFn PickAffineBackward() {
  switch (simd_level()) {
    case SimdLevel::kAvx512: return BackwardAvx512;
    case SimdLevel::kAvx2: return BackwardAvx2;
    default: return BackwardBaseline;
  }
}

// grad[c] += Σ_chunks partials[chunk·stride + c], in chunk order, in float64.
void AddChunkSums(const std::vector<double>& partials, std::size_t chunks, std::size_t stride, std::size_t count,
                  float* grad) {
  for (std::size_t c = 0; c < count; ++c) {
    double sum = grad[c];
    for (std::size_t k = 0; k < chunks; ++k) sum += partials[k * stride + c];
    grad[c] = static_cast<float>(sum);
  }
}

}  // namespace

void coupling_gather(const float* x, const float* context, float* out, std::size_t batch, std::size_t dim,
                     std::size_t offset, std::size_t width, std::size_t context_dim) {
  const std::size_t cw = width + context_dim;
  parallel_for(batch, CopyGrain(cw), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      std::copy(x + r * dim + offset, x + r * dim + offset + width, out + r * cw);
      if (context_dim) std::copy(context + r * context_dim, context + (r + 1) * context_dim, out + r * cw + width);
    }
  });
}

void coupling_scatter_add(const float* d_in, float* dx, float* d_context, std::size_t batch, std::size_t dim,
                          std::size_t offset, std::size_t width, std::size_t context_dim) {
  const std::size_t cw = width + context_dim;
  parallel_for(batch, CopyGrain(cw), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      const float* g = d_in + r * cw;
      float* d = dx + r * dim + offset;
      for (std::size_t j = 0; j < width; ++j) d[j] += g[j];
      if (context_dim) {
        float* dc = d_context + r * context_dim;
        for (std::size_t c = 0; c < context_dim; ++c) dc[c] += g[width + c];
      }
    }
  });
}

void coupling_affine_forward(const float* x, const float* h, const float* scale, float* y, float* log_det,
                             std::size_t batch, std::size_t dim, std::size_t offset, std::size_t width) {
  const AffineArgs a{x, h, scale, nullptr, nullptr, y, log_det, nullptr, dim, offset, width};
  const RowsFn fn = PickAffine(false);
  parallel_for(batch, AffineGrain(width), [&](std::size_t r0, std::size_t r1) { fn(a, r0, r1); });
}

void coupling_affine_inverse(const float* y, const float* h, const float* scale, float* x, float* log_det,
                             std::size_t batch, std::size_t dim, std::size_t offset, std::size_t width) {
  const AffineArgs a{y, h, scale, nullptr, nullptr, x, log_det, nullptr, dim, offset, width};
  const RowsFn fn = PickAffine(true);
  parallel_for(batch, AffineGrain(width), [&](std::size_t r0, std::size_t r1) { fn(a, r0, r1); });
}

void coupling_affine_backward(const float* x, const float* h, const float* scale, const float* dy,
                              const float* d_log_det, float* dx, float* dh, float* d_scale, std::size_t batch,
                              std::size_t dim, std::size_t offset, std::size_t width) {
  if (batch == 0 || width == 0) return;
  const AffineArgs a{x, h, scale, dy, d_log_det, dx, nullptr, dh, dim, offset, width};
  const ReduceRowsFn fn = PickAffineBackward();
  // The partials buffer is the caller's: a thread_local named inside a task
  // would be each worker's own.
  thread_local std::vector<double> partials;
  const std::size_t chunks =
      reduce_in_chunks(batch, kChunkUnit, kMaxChunks, width, &partials,
                       [&](std::size_t r0, std::size_t r1, double* part) { fn(a, r0, r1, part); });
  AddChunkSums(partials, chunks, width, width, d_scale);
}

void coupling_additive_forward(const float* x, const float* h, float* y, std::size_t batch, std::size_t dim,
                               std::size_t offset, std::size_t width) {
  parallel_for(batch, CopyGrain(width), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      const float* in = x + r * dim + offset;
      const float* m = h + r * width;
      float* out = y + r * dim + offset;
      for (std::size_t j = 0; j < width; ++j) out[j] = in[j] + m[j];
    }
  });
}

void coupling_additive_inverse(const float* y, const float* h, float* x, std::size_t batch, std::size_t dim,
                               std::size_t offset, std::size_t width) {
  parallel_for(batch, CopyGrain(width), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      const float* in = y + r * dim + offset;
      const float* m = h + r * width;
      float* out = x + r * dim + offset;
      for (std::size_t j = 0; j < width; ++j) out[j] = in[j] - m[j];
    }
  });
}

void coupling_additive_backward(const float* dy, float* dx, float* dh, std::size_t batch, std::size_t dim,
                                std::size_t offset, std::size_t width) {
  parallel_for(batch, CopyGrain(width), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      const float* g = dy + r * dim + offset;
      std::copy(g, g + width, dx + r * dim + offset);
      std::copy(g, g + width, dh + r * width);
    }
  });
}

namespace {

// exp(±log_scale) per column, once per call; and Σ log_scale in float64.
const float* ScaleFactors(const float* log_scale, std::size_t dim, double sign, double* sum) {
  thread_local std::vector<float> factors;
  factors.resize(dim);
  double s = 0;
  for (std::size_t j = 0; j < dim; ++j) {
    factors[j] = static_cast<float>(std::exp(sign * static_cast<double>(log_scale[j])));
    s += log_scale[j];
  }
  *sum = sign * s;
  return factors.data();
}

void ScaleRows(const float* in, const float* factors, float ld, float* out, float* log_det, std::size_t batch,
               std::size_t dim) {
  parallel_for(batch, CopyGrain(dim), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      for (std::size_t j = 0; j < dim; ++j) out[r * dim + j] = in[r * dim + j] * factors[j];
      log_det[r] = ld;
    }
  });
}

}  // namespace

void coupling_scale_forward(const float* x, const float* log_scale, float* y, float* log_det, std::size_t batch,
                            std::size_t dim) {
  double ld = 0;
  const float* factors = ScaleFactors(log_scale, dim, 1.0, &ld);
  ScaleRows(x, factors, static_cast<float>(ld), y, log_det, batch, dim);
}

void coupling_scale_inverse(const float* y, const float* log_scale, float* x, float* log_det, std::size_t batch,
                            std::size_t dim) {
  double ld = 0;
  const float* factors = ScaleFactors(log_scale, dim, -1.0, &ld);
  ScaleRows(y, factors, static_cast<float>(ld), x, log_det, batch, dim);
}

void coupling_scale_backward(const float* x, const float* log_scale, const float* dy, const float* d_log_det, float* dx,
                             float* d_log_scale, std::size_t batch, std::size_t dim) {
  if (batch == 0 || dim == 0) return;
  double unused = 0;
  const float* factors = ScaleFactors(log_scale, dim, 1.0, &unused);
  // Slice layout: Σ dx·x per column [dim], then Σ d_log_det [1].
  thread_local std::vector<double> partials;
  const std::size_t stride = dim + 1;
  const std::size_t chunks = reduce_in_chunks(
      batch, kChunkUnit, kMaxChunks, stride, &partials, [&](std::size_t r0, std::size_t r1, double* part) {
        for (std::size_t r = r0; r < r1; ++r) {
          for (std::size_t j = 0; j < dim; ++j) {
            const float g = dy[r * dim + j] * factors[j];
            dx[r * dim + j] = g;
            part[j] += static_cast<double>(g) * static_cast<double>(x[r * dim + j]);
          }
          part[dim] += d_log_det[r];
        }
      });
  double dl = 0;
  for (std::size_t k = 0; k < chunks; ++k) dl += partials[k * stride + dim];
  for (std::size_t j = 0; j < dim; ++j) {
    double sum = d_log_scale[j];
    for (std::size_t k = 0; k < chunks; ++k) sum += partials[k * stride + j];
    d_log_scale[j] = static_cast<float>(sum + dl);
  }
}

}  // namespace flowvae
