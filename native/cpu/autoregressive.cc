// Autoregressive flow kernels. The per-element work is O(batch·dim), small
// beside the masked matrix products (O(batch·dim·hidden)), so these are
// branch-free loops over contiguous rows, parallel over rows; log-det row
// sums accumulate in double (rows are compared across backends). The IAF
// gate (an exp and a log1p per element, ~10% of an IAF step in libm) runs on
// the vector functions of vec_math.inc on AVX2/AVX-512.
#include "flowvae/autoregressive.h"

#include <algorithm>
#include <cmath>

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

}  // namespace

void mask_weights(const float* weight, const uint32_t* out_degrees, const uint32_t* in_degrees, bool strict,
                  float* out, std::size_t out_dim, std::size_t in_dim) {
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
