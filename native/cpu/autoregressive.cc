// Autoregressive flow kernels. The per-element work is O(batch·dim), small
// beside the masked matrix products (O(batch·dim·hidden)), so these are
// branch-free loops over contiguous rows, parallel over rows; log-det row
// sums accumulate in double (rows are compared across backends). The IAF
// gate (an exp and a log1p per element, ~10% of an IAF step in libm) runs on
// the vector functions of vec_math.inc on AVX2/AVX-512.
#include "flowvae/autoregressive.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "flowvae/dense.h"
#include "flowvae/parallel.h"
#include "flowvae/simd_ops.h"

namespace flowvae {
namespace {

// Rows per task: cheap kernels, so only large batches go parallel.
inline std::size_t RowGrain(std::size_t dim) { return dim == 0 ? 1 : 1 + 16384 / dim; }

// sigmoid(s) and 1 − sigmoid(s) = sigmoid(−s), both from e^−|s| (no overflow,
// no cancellation in 1 − σ), and softplus(−s) = −log σ.
struct Gate {
  float sigma;
  float one_minus_sigma;
  float softplus_neg;
};

inline Gate MakeGate(float s) {
  const float e = std::exp(-std::fabs(s));
  const float inv = 1.0f / (1.0f + e);
  const bool pos = s >= 0.0f;
  return {pos ? inv : e * inv, pos ? e * inv : inv, (pos ? 0.0f : -s) + std::log1p(e)};
}

namespace scalar {

void iaf_forward_row(const float* z, const float* m, const float* s, float* y, float* terms, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const Gate g = MakeGate(s[i]);
    y[i] = g.sigma * z[i] + g.one_minus_sigma * m[i];
    terms[i] = g.softplus_neg;
  }
}

void iaf_backward_row(const float* z, const float* m, const float* s, const float* dy, float dl, float* dz, float* dm,
                      float* ds, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const Gate g = MakeGate(s[i]);
    dz[i] = dy[i] * g.sigma;
    dm[i] = dy[i] * g.one_minus_sigma;
    // ∂y/∂s = (z − m) σ(1 − σ); ∂ log σ / ∂s = 1 − σ.
    ds[i] = (dy[i] * (z[i] - m[i]) * g.sigma + dl) * g.one_minus_sigma;
  }
}

}  // namespace scalar

#if FLOWVAE_SIMD_X86
FLOWVAE_TARGET_AVX2
namespace avx2 {
using namespace simd::avx2;
#include "autoregressive_vec.inc"
}  // namespace avx2
FLOWVAE_TARGET_END

FLOWVAE_TARGET_AVX512
namespace avx512 {
using namespace simd::avx512;
#include "autoregressive_vec.inc"
}  // namespace avx512
FLOWVAE_TARGET_END
#endif  // FLOWVAE_SIMD_X86

using ForwardRowFn = void (*)(const float*, const float*, const float*, float*, float*, std::size_t);
using BackwardRowFn = void (*)(const float*, const float*, const float*, const float*, float, float*, float*, float*,
                               std::size_t);

ForwardRowFn iaf_forward_row_for(SimdLevel level) {
  switch (simd::capped(level)) {
#if FLOWVAE_SIMD_X86
    case SimdLevel::kAvx512: return avx512::iaf_forward_row;
    case SimdLevel::kAvx2: return avx2::iaf_forward_row;
#endif
    default: return scalar::iaf_forward_row;
  }
}

BackwardRowFn iaf_backward_row_for(SimdLevel level) {
  switch (simd::capped(level)) {
#if FLOWVAE_SIMD_X86
    case SimdLevel::kAvx512: return avx512::iaf_backward_row;
    case SimdLevel::kAvx2: return avx2::iaf_backward_row;
#endif
    default: return scalar::iaf_backward_row;
  }
}

// Elements of a row whose log-det terms go through the stack at once.
constexpr std::size_t kChunk = 256;

// ---------------------------------------------------------------------------
// Masked dense layers. With degrees in order (natural or reversed orderings;
// MADE sorts its hidden degrees) the mask is a staircase: each output keeps
// a contiguous range of inputs, each input feeds a contiguous range of
// outputs, about half of the matrix. The products tell sgemm those ranges
// (sgemm_column_ranges for the forward and input gradient, sgemm_row_ranges
// for the weight gradient) and skip the rest, which the masked weight holds
// as zeros. Any ordering stays correct: a range spans from the first kept
// index to the last, masked entries inside it are zero.

inline bool Kept(uint32_t out_degree, uint32_t in_degree, bool strict) {
  return strict ? out_degree > in_degree : out_degree >= in_degree;
}

// Per-thread buffers: grow once to the largest layer, then reused.
struct RangeBuffers {
  std::vector<uint32_t> begin, end;  // one range per column (or row) of the product
  std::vector<uint32_t> lo, hi;      // per-degree tables
};
thread_local RangeBuffers tls_ranges;

// One range per column (or row) of a product, in this thread's buffers.
struct Ranges {
  const uint32_t* begin;
  const uint32_t* end;
};

// Degrees up to this use per-degree tables (O(in + out + degree)); larger
// ones, which MADE never makes, the direct O(in · out) scan.
constexpr uint32_t kTableDegrees = 1u << 16;

uint32_t MaxDegree(const uint32_t* degrees, std::size_t n) {
  uint32_t top = 0;
  for (std::size_t i = 0; i < n; ++i) top = std::max(top, degrees[i]);
  return top;
}

// For each a < na, the first b < nb with kept(a, b) and one past the last
// (empty: 0, 0): the direct O(na · nb) scan.
template <class KeptFn>
void ScanRanges(std::size_t na, std::size_t nb, KeptFn kept, uint32_t* begin, uint32_t* end) {
  for (std::size_t a = 0; a < na; ++a) {
    std::size_t first = nb, last = 0;
    for (std::size_t b = 0; b < nb; ++b) {
      if (kept(a, b)) {
        first = std::min(first, b);
        last = b + 1;
      }
    }
    begin[a] = static_cast<uint32_t>(first < last ? first : 0);
    end[a] = static_cast<uint32_t>(first < last ? last : 0);
  }
}

// Fills this thread's lo[t], hi[t] (t ≤ top) with the first index and one past
// the last among the n items of degree ≤ t (`at_most`) or ≥ t (otherwise).
void DegreeExtents(const uint32_t* degrees, std::size_t n, uint32_t top, bool at_most) {
  std::vector<uint32_t>& lo = tls_ranges.lo;
  std::vector<uint32_t>& hi = tls_ranges.hi;
  lo.assign(top + 1, static_cast<uint32_t>(n));
  hi.assign(top + 1, 0);
  for (std::size_t i = 0; i < n; ++i) {
    const uint32_t d = degrees[i];
    lo[d] = std::min(lo[d], static_cast<uint32_t>(i));
    hi[d] = static_cast<uint32_t>(i + 1);
  }
  auto merge = [&](uint32_t t, uint32_t from) {
    lo[t] = std::min(lo[t], lo[from]);
    hi[t] = std::max(hi[t], hi[from]);
  };
  if (at_most) {
    for (uint32_t t = 1; t <= top; ++t) merge(t, t - 1);
  } else {
    for (uint32_t t = top; t-- > 0;) merge(t, t + 1);
  }
}

// This thread's range buffers with room for n ranges.
RangeBuffers& RangesFor(std::size_t n) {
  RangeBuffers& r = tls_ranges;
  if (r.begin.size() < n) {
    r.begin.resize(n);
    r.end.resize(n);
  }
  return r;
}

// For each output o, the inputs [begin[o], end[o]) it keeps (empty: 0, 0).
Ranges InputRanges(const uint32_t* out_degrees, const uint32_t* in_degrees, bool strict, std::size_t out_dim,
                   std::size_t in_dim) {
  RangeBuffers& r = RangesFor(out_dim);
  uint32_t* begin = r.begin.data();
  uint32_t* end = r.end.data();
  const uint32_t top = MaxDegree(in_degrees, in_dim);
  if (top >= kTableDegrees) {
    ScanRanges(
        out_dim, in_dim, [&](std::size_t o, std::size_t i) { return Kept(out_degrees[o], in_degrees[i], strict); },
        begin, end);
    return {begin, end};
  }
  DegreeExtents(in_degrees, in_dim, top, true);
  for (std::size_t o = 0; o < out_dim; ++o) {
    // Kept inputs: degree ≤ d_out, or ≤ d_out − 1 when strict.
    const uint32_t d = out_degrees[o];
    const uint32_t t = std::min(strict ? d - 1 : d, top);
    const bool kept = !(strict && d == 0) && r.lo[t] < r.hi[t];
    begin[o] = kept ? r.lo[t] : 0;
    end[o] = kept ? r.hi[t] : 0;
  }
  return {begin, end};
}

// For each input i, the outputs [begin[i], end[i]) that keep it.
Ranges OutputRanges(const uint32_t* out_degrees, const uint32_t* in_degrees, bool strict, std::size_t out_dim,
                    std::size_t in_dim) {
  RangeBuffers& r = RangesFor(in_dim);
  uint32_t* begin = r.begin.data();
  uint32_t* end = r.end.data();
  const uint32_t top = MaxDegree(out_degrees, out_dim);
  if (top >= kTableDegrees) {
    ScanRanges(
        in_dim, out_dim, [&](std::size_t i, std::size_t o) { return Kept(out_degrees[o], in_degrees[i], strict); },
        begin, end);
    return {begin, end};
  }
  DegreeExtents(out_degrees, out_dim, top, false);
  for (std::size_t i = 0; i < in_dim; ++i) {
    // Outputs keeping input i: degree ≥ d_in, or ≥ d_in + 1 when strict.
    const uint64_t t = static_cast<uint64_t>(in_degrees[i]) + (strict ? 1 : 0);
    const bool kept = t <= top && r.lo[t] < r.hi[t];
    begin[i] = kept ? r.lo[t] : 0;
    end[i] = kept ? r.hi[t] : 0;
  }
  return {begin, end};
}

}  // namespace

void masked_dense_forward(const float* x, const float* weight, const float* bias, const uint32_t* out_degrees,
                          const uint32_t* in_degrees, bool strict, float* masked_weight, float* y, std::size_t batch,
                          std::size_t in_dim, std::size_t out_dim) {
  mask_weights(weight, out_degrees, in_degrees, strict, masked_weight, out_dim, in_dim);
  const Ranges in = InputRanges(out_degrees, in_degrees, strict, out_dim, in_dim);
  dense_forward_column_ranges(x, masked_weight, bias, y, batch, in_dim, out_dim, in.begin, in.end);
}

void masked_dense_backward(const float* x, const float* masked_weight, const float* dy, const uint32_t* out_degrees,
                           const uint32_t* in_degrees, bool strict, float* dx, float* d_weight, float* d_bias,
                           std::size_t batch, std::size_t in_dim, std::size_t out_dim, bool accumulate_dx) {
  if (d_weight != nullptr) {
    // dW += dyᵀ x over each output's range of kept inputs, then the entries the mask cuts are set to exactly 0.
    const Ranges in = InputRanges(out_degrees, in_degrees, strict, out_dim, in_dim);
    sgemm_row_ranges(true, false, out_dim, in_dim, batch, 1.0f, dy, out_dim, x, in_dim, 1.0f, d_weight, in_dim,
                     in.begin, in.end);
    mask_weights(d_weight, out_degrees, in_degrees, strict, d_weight, out_dim, in_dim);
  }
  if (d_bias != nullptr) {
    for (std::size_t r = 0; r < batch; ++r) {
      const float* row = dy + r * out_dim;
      for (std::size_t o = 0; o < out_dim; ++o) d_bias[o] += row[o];
    }
  }
  if (dx != nullptr) {
    // dx[:, i] (+)= Σ over the outputs that keep input i of dy[:, o] W[o, i].
    const Ranges out = OutputRanges(out_degrees, in_degrees, strict, out_dim, in_dim);
    sgemm_column_ranges(false, false, batch, in_dim, out_dim, 1.0f, dy, out_dim, masked_weight, in_dim,
                        accumulate_dx ? 1.0f : 0.0f, dx, in_dim, out.begin, out.end);
  }
}

void mask_weights(const float* weight, const uint32_t* out_degrees, const uint32_t* in_degrees, bool strict, float* out,
                  std::size_t out_dim, std::size_t in_dim) {
  // Kept: d_out >= d_in, or d_out > d_in when strict. Two loops with one
  // 32-bit comparison each and an unconditional load, so the compiler
  // vectorizes them (this runs on every forward and backward of a MADE layer).
  parallel_for(out_dim, 1 + 65536 / (in_dim == 0 ? 1 : in_dim), [&](std::size_t o0, std::size_t o1) {
    for (std::size_t o = o0; o < o1; ++o) {
      const uint32_t d = out_degrees[o];
      const float* w = weight + o * in_dim;
      float* y = out + o * in_dim;
      if (strict) {
        for (std::size_t i = 0; i < in_dim; ++i) {
          const float v = w[i];
          y[i] = d > in_degrees[i] ? v : 0.0f;
        }
      } else {
        for (std::size_t i = 0; i < in_dim; ++i) {
          const float v = w[i];
          y[i] = d >= in_degrees[i] ? v : 0.0f;
        }
      }
    }
  });
}

void iaf_forward(const float* z, const float* ms, float* y, float* log_det, std::size_t batch, std::size_t dim,
                 SimdLevel level) {
  const ForwardRowFn row = iaf_forward_row_for(level);
  parallel_for(batch, RowGrain(dim), [&](std::size_t r0, std::size_t r1) {
    float terms[kChunk];
    for (std::size_t r = r0; r < r1; ++r) {
      const float* m = ms + 2 * r * dim;
      const float* s = m + dim;
      double ld = 0;
      for (std::size_t i0 = 0; i0 < dim; i0 += kChunk) {
        const std::size_t n = std::min(kChunk, dim - i0);
        row(z + r * dim + i0, m + i0, s + i0, y + r * dim + i0, terms, n);
        for (std::size_t i = 0; i < n; ++i) ld -= terms[i];
      }
      log_det[r] = static_cast<float>(ld);
    }
  });
}

void iaf_backward(const float* z, const float* ms, const float* dy, const float* d_log_det, float* dz, float* dms,
                  std::size_t batch, std::size_t dim, SimdLevel level) {
  const BackwardRowFn row = iaf_backward_row_for(level);
  parallel_for(batch, RowGrain(dim), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      const float* m = ms + 2 * r * dim;
      float* dm = dms + 2 * r * dim;
      row(z + r * dim, m, m + dim, dy + r * dim, d_log_det[r], dz + r * dim, dm, dm + dim, dim);
    }
  });
}

void iaf_inverse(const float* y, const float* ms, float* z, float* log_det, std::size_t batch, std::size_t dim) {
  parallel_for(batch, RowGrain(dim), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      const float* m = ms + 2 * r * dim;
      const float* s = m + dim;
      double ld = 0;
      for (std::size_t i = 0; i < dim; ++i) {
        const Gate g = MakeGate(s[i]);
        z[r * dim + i] = (y[r * dim + i] - g.one_minus_sigma * m[i]) / g.sigma;
        ld += g.softplus_neg;
      }
      log_det[r] = static_cast<float>(ld);
    }
  });
}

void maf_forward(const float* x, const float* ms, float* u, float* log_det, std::size_t batch, std::size_t dim) {
  parallel_for(batch, RowGrain(dim), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      const float* m = ms + 2 * r * dim;
      const float* a = m + dim;
      double ld = 0;
      for (std::size_t i = 0; i < dim; ++i) {
        u[r * dim + i] = (x[r * dim + i] - m[i]) * std::exp(-a[i]);
        ld -= a[i];
      }
      log_det[r] = static_cast<float>(ld);
    }
  });
}

void maf_backward(const float* x, const float* ms, const float* du, const float* d_log_det, float* dx, float* dms,
                  std::size_t batch, std::size_t dim) {
  parallel_for(batch, RowGrain(dim), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      const float* m = ms + 2 * r * dim;
      const float* a = m + dim;
      float* dm = dms + 2 * r * dim;
      float* da = dm + dim;
      const float dl = d_log_det[r];
      for (std::size_t i = 0; i < dim; ++i) {
        const float g = du[r * dim + i] * std::exp(-a[i]);
        dx[r * dim + i] = g;
        dm[i] = -g;
        // ∂u/∂α = −u; ∂ log|det| / ∂α = −1.
        da[i] = -g * (x[r * dim + i] - m[i]) - dl;
      }
    }
  });
}

void maf_inverse(const float* u, const float* ms, float* x, float* log_det, std::size_t batch, std::size_t dim) {
  parallel_for(batch, RowGrain(dim), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      const float* m = ms + 2 * r * dim;
      const float* a = m + dim;
      double ld = 0;
      for (std::size_t i = 0; i < dim; ++i) {
        x[r * dim + i] = u[r * dim + i] * std::exp(a[i]) + m[i];
        ld += a[i];
      }
      log_det[r] = static_cast<float>(ld);
    }
  });
}

}  // namespace flowvae
