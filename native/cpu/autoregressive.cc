// Autoregressive flow kernels. The per-element work is O(batch·dim), tiny
// beside the masked matrix products (O(batch·dim·hidden)), so these are
// plain branch-free loops over contiguous rows, parallel over rows; log-det
// row sums accumulate in double (rows are compared across backends).
#include "flowvae/autoregressive.h"

#include <cmath>

#include "flowvae/parallel.h"

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

}  // namespace

void mask_weights(const float* weight, const uint32_t* out_degrees, const uint32_t* in_degrees, bool strict,
                  float* out, std::size_t out_dim, std::size_t in_dim) {
  // strict: keep d_out > d_in, i.e. d_out ≥ d_in + 1.
  const uint64_t shift = strict ? 1 : 0;
  parallel_for(out_dim, 1 + 65536 / (in_dim == 0 ? 1 : in_dim), [&](std::size_t o0, std::size_t o1) {
    for (std::size_t o = o0; o < o1; ++o) {
      const uint64_t d = out_degrees[o];
      const float* w = weight + o * in_dim;
      float* y = out + o * in_dim;
      for (std::size_t i = 0; i < in_dim; ++i) y[i] = d >= in_degrees[i] + shift ? w[i] : 0.0f;
    }
  });
}

void iaf_forward(const float* z, const float* ms, float* y, float* log_det, std::size_t batch, std::size_t dim) {
  parallel_for(batch, RowGrain(dim), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      const float* m = ms + 2 * r * dim;
      const float* s = m + dim;
      double ld = 0;
      for (std::size_t i = 0; i < dim; ++i) {
        const Gate g = MakeGate(s[i]);
        y[r * dim + i] = g.sigma * z[r * dim + i] + g.one_minus_sigma * m[i];
        ld -= g.softplus_neg;
      }
      log_det[r] = static_cast<float>(ld);
    }
  });
}

void iaf_backward(const float* z, const float* ms, const float* dy, const float* d_log_det, float* dz, float* dms,
                  std::size_t batch, std::size_t dim) {
  parallel_for(batch, RowGrain(dim), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      const float* m = ms + 2 * r * dim;
      const float* s = m + dim;
      float* dm = dms + 2 * r * dim;
      float* ds = dm + dim;
      const float dl = d_log_det[r];
      for (std::size_t i = 0; i < dim; ++i) {
        const Gate g = MakeGate(s[i]);
        const float d = dy[r * dim + i];
        dz[r * dim + i] = d * g.sigma;
        dm[i] = d * g.one_minus_sigma;
        // ∂y/∂s = (z − m) σ(1 − σ); ∂ log σ / ∂s = 1 − σ.
        ds[i] = (d * (z[r * dim + i] - m[i]) * g.sigma + dl) * g.one_minus_sigma;
      }
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
