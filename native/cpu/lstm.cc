// LSTM forward and backward through time (flowvae/lstm.h). Matrix products
// go through sgemm (dense.cc) with leading dimensions that address one step
// of the batch-first arrays in place, so nothing is copied or allocated per
// step; the gate nonlinearities and the cell update are fused per row and run
// on the pool, with the vector functions of vec_math.inc on AVX2/AVX-512.
#include "flowvae/lstm.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "flowvae/dense.h"
#include "flowvae/parallel.h"
#include "flowvae/simd_ops.h"

namespace flowvae {
namespace {

#if FLOWVAE_SIMD_X86
FLOWVAE_TARGET_AVX2
namespace avx2 {
using namespace simd::avx2;
#include "lstm_vec.inc"
}  // namespace avx2
FLOWVAE_TARGET_END

FLOWVAE_TARGET_AVX512
namespace avx512 {
using namespace simd::avx512;
#include "lstm_vec.inc"
}  // namespace avx512
FLOWVAE_TARGET_END
#endif  // FLOWVAE_SIMD_X86

namespace scalar {

// e^−|x| based sigmoid, as the vector path and elementwise.cc.
inline float sigmoid(float x) {
  const float e = std::exp(-std::fabs(x));
  return (x < 0.0f ? e : 1.0f) / (1.0f + e);
}

void cell_forward(float* g, const float* c_prev, float* c, float* tc, float* h, std::size_t hidden) {
  for (std::size_t j = 0; j < hidden; ++j) {
    const float i = sigmoid(g[j]);
    const float f = sigmoid(g[hidden + j]);
    const float gv = std::tanh(g[2 * hidden + j]);
    const float o = sigmoid(g[3 * hidden + j]);
    const float cv = f * c_prev[j] + i * gv;
    const float t = std::tanh(cv);
    g[j] = i, g[hidden + j] = f, g[2 * hidden + j] = gv, g[3 * hidden + j] = o;
    c[j] = cv, tc[j] = t, h[j] = o * t;
  }
}

void cell_backward(const float* g, const float* c_prev, const float* tc, const float* dh, const float* dy, float* dc,
                   float* dg, std::size_t hidden) {
  for (std::size_t j = 0; j < hidden; ++j) {
    const float i = g[j], f = g[hidden + j], gv = g[2 * hidden + j], o = g[3 * hidden + j];
    const float t = tc[j];
    const float dhv = dy ? dh[j] + dy[j] : dh[j];
    const float dct = dc[j] + dhv * o * (1.0f - t * t);
    dg[j] = dct * gv * (i * (1.0f - i));
    dg[hidden + j] = dct * c_prev[j] * (f * (1.0f - f));
    dg[2 * hidden + j] = dct * i * (1.0f - gv * gv);
    dg[3 * hidden + j] = dhv * t * (o * (1.0f - o));
    dc[j] = dct * f;
  }
}

}  // namespace scalar

using CellForwardFn = void (*)(float*, const float*, float*, float*, float*, std::size_t);
using CellBackwardFn = void (*)(const float*, const float*, const float*, const float*, const float*, float*, float*,
                                std::size_t);

CellForwardFn cell_forward_for(SimdLevel level) {
  switch (simd::capped(level)) {
#if FLOWVAE_SIMD_X86
    case SimdLevel::kAvx512: return avx512::cell_forward;
    case SimdLevel::kAvx2: return avx2::cell_forward;
#endif
    default: return scalar::cell_forward;
  }
}

CellBackwardFn cell_backward_for(SimdLevel level) {
  switch (simd::capped(level)) {
#if FLOWVAE_SIMD_X86
    case SimdLevel::kAvx512: return avx512::cell_backward;
    case SimdLevel::kAvx2: return avx2::cell_backward;
#endif
    default: return scalar::cell_backward;
  }
}

// Rows per pool chunk of a per-step pass: about 4096 gate values per chunk,
// so small batches stay on one thread.
inline std::size_t RowGrain(std::size_t hidden) { return 1 + 4096 / (4 * hidden); }

inline std::size_t Length(const uint32_t* lengths, std::size_t b, std::size_t steps) {
  return lengths ? lengths[b] : steps;
}

inline void Copy(float* dst, const float* src, std::size_t n) {
  if (src) {
    std::memcpy(dst, src, n * sizeof(float));
  } else {
    std::fill(dst, dst + n, 0.0f);
  }
}

inline void Zero(float* dst, std::size_t n) { std::fill(dst, dst + n, 0.0f); }

// Stash blocks of flowvae/lstm.h.
struct Stash {
  float* gates;   // [B·T, 4H]
  float* h_prev;  // [B·T, H]
  float* c_prev;  // [B·T, H]
  float* tanh_c;  // [B·T, H]
};

Stash SplitStash(float* stash, std::size_t rows, std::size_t hidden) {
  Stash s{};
  s.gates = stash;
  s.h_prev = s.gates + rows * 4 * hidden;
  s.c_prev = s.h_prev + rows * hidden;
  s.tanh_c = s.c_prev + rows * hidden;
  return s;
}

}  // namespace

void lstm_forward(const float* x, const uint32_t* lengths, const float* h0, const float* c0, const float* w_ih,
                  const float* w_hh, const float* b_ih, const float* b_hh, float* y, float* hn, float* cn, float* stash,
                  std::size_t batch, std::size_t steps, std::size_t in_dim, std::size_t hidden) {
  if (batch == 0 || hidden == 0) return;
  const std::size_t G = 4 * hidden;
  const std::size_t rows = batch * steps;
  if (steps == 0) {
    Copy(hn, h0, batch * hidden);
    Copy(cn, c0, batch * hidden);
    return;
  }
  const Stash s = SplitStash(stash, rows, hidden);
  const CellForwardFn cell = cell_forward_for(simd_level());

  // Gate pre-activations of every step: b_ih + b_hh + x W_ihᵀ, one product.
  parallel_for(rows, 1 + 16384 / G, [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      float* g = s.gates + r * G;
      for (std::size_t j = 0; j < G; ++j) g[j] = (b_ih ? b_ih[j] : 0.0f) + (b_hh ? b_hh[j] : 0.0f);
    }
  });
  sgemm(false, true, rows, G, in_dim, 1.0f, x, in_dim, w_ih, in_dim, 1.0f, s.gates, G);

  // The state entering step 0.
  parallel_for(batch, RowGrain(hidden), [&](std::size_t b0, std::size_t b1) {
    for (std::size_t b = b0; b < b1; ++b) {
      const std::size_t r = b * steps;
      if (Length(lengths, b, steps) > 0) {
        Copy(s.h_prev + r * hidden, h0 ? h0 + b * hidden : nullptr, hidden);
        Copy(s.c_prev + r * hidden, c0 ? c0 + b * hidden : nullptr, hidden);
      } else {
        Zero(s.h_prev + r * hidden, hidden);
        Zero(s.c_prev + r * hidden, hidden);
        Copy(hn + b * hidden, h0 ? h0 + b * hidden : nullptr, hidden);
        Copy(cn + b * hidden, c0 ? c0 + b * hidden : nullptr, hidden);
      }
    }
  });

  // The cell update of step t over rows, built once (a std::function made per
  // step could allocate); it reads t from the loop below.
  std::size_t t = 0;
  const RangeFn cell_rows = [&](std::size_t b0, std::size_t b1) {
    for (std::size_t b = b0; b < b1; ++b) {
      const std::size_t len = Length(lengths, b, steps);
      const std::size_t r = b * steps + t;
      float* yr = y + r * hidden;
      const bool last_step = t + 1 == steps;
      if (t < len) {
        // The new cell state goes where the next step reads it (or to cn after the last step).
        float* c_new = last_step ? cn + b * hidden : s.c_prev + (r + 1) * hidden;
        cell(s.gates + r * G, s.c_prev + r * hidden, c_new, s.tanh_c + r * hidden, yr, hidden);
        if (!last_step) std::memcpy(s.h_prev + (r + 1) * hidden, yr, hidden * sizeof(float));
        if (t + 1 == len) {
          std::memcpy(hn + b * hidden, yr, hidden * sizeof(float));
          if (!last_step) std::memcpy(cn + b * hidden, c_new, hidden * sizeof(float));
        }
      } else {
        Zero(yr, hidden);
        Zero(s.gates + r * G, G);
        Zero(s.tanh_c + r * hidden, hidden);
        Zero(s.h_prev + r * hidden, hidden);
        Zero(s.c_prev + r * hidden, hidden);
        if (!last_step) {
          Zero(s.h_prev + (r + 1) * hidden, hidden);
          Zero(s.c_prev + (r + 1) * hidden, hidden);
        }
      }
    }
  };
  for (t = 0; t < steps; ++t) {
    // gates[:, t] += h_{t−1} W_hhᵀ; h_{t−1} is h_prev[:, t] (zeros for rows already done).
    sgemm(false, true, batch, G, hidden, 1.0f, s.h_prev + t * hidden, steps * hidden, w_hh, hidden, 1.0f,
          s.gates + t * G, steps * G);
    parallel_for(batch, RowGrain(hidden), cell_rows);
  }
}

void lstm_backward(const float* x, const uint32_t* lengths, const float* w_ih, const float* w_hh, const float* stash,
                   const float* dy, const float* dhn, const float* dcn, float* dx, float* dh0, float* dc0,
                   float* d_w_ih, float* d_w_hh, float* d_b_ih, float* d_b_hh, float* work, std::size_t batch,
                   std::size_t steps, std::size_t in_dim, std::size_t hidden, bool accumulate) {
  const std::size_t G = 4 * hidden;
  const std::size_t rows = batch * steps;
  const float beta = accumulate ? 1.0f : 0.0f;
  // Running ∂L/∂h and ∂L/∂c live in dh0/dc0: what is left in them after step 0 is the answer.
  Copy(dh0, dhn, batch * hidden);
  Copy(dc0, dcn, batch * hidden);
  if (rows == 0 || hidden == 0) {
    // No step ran: the weights had no effect.
    if (!accumulate) {
      if (d_w_ih) Zero(d_w_ih, G * in_dim);
      if (d_w_hh) Zero(d_w_hh, G * hidden);
      if (d_b_ih) Zero(d_b_ih, G);
      if (d_b_hh) Zero(d_b_hh, G);
    }
    if (dx) Zero(dx, rows * in_dim);
    return;
  }
  const Stash s = SplitStash(const_cast<float*>(stash), rows, hidden);
  const CellBackwardFn cell = cell_backward_for(simd_level());
  float* const dg = work;  // [B·T, 4H], gradients of the gate pre-activations

  // The cell gradient of step t over rows, built once; it reads t from the loop below.
  std::size_t t = steps;
  const RangeFn cell_rows = [&](std::size_t b0, std::size_t b1) {
    for (std::size_t b = b0; b < b1; ++b) {
      const std::size_t r = b * steps + t;
      if (t < Length(lengths, b, steps)) {
        float* dh = dh0 + b * hidden;
        cell(s.gates + r * G, s.c_prev + r * hidden, s.tanh_c + r * hidden, dh, dy ? dy + r * hidden : nullptr,
             dc0 + b * hidden, dg + r * G, hidden);
        Zero(dh, hidden);  // refilled with dg · W_hh below
      } else {
        Zero(dg + r * G, G);  // the state passes through: dh, dc unchanged
      }
    }
  };
  while (t-- > 0) {
    parallel_for(batch, RowGrain(hidden), cell_rows);
    // ∂L/∂h_{t−1} = dg[:, t] · W_hh (added to zeros for the rows that ran step t).
    sgemm(false, false, batch, hidden, G, 1.0f, dg + t * G, steps * G, w_hh, hidden, 1.0f, dh0, hidden);
  }

  // Whole-sequence products.
  if (dx) sgemm(false, false, rows, in_dim, G, 1.0f, dg, G, w_ih, in_dim, 0.0f, dx, in_dim);
  if (d_w_ih) sgemm(true, false, G, in_dim, rows, 1.0f, dg, G, x, in_dim, beta, d_w_ih, in_dim);
  if (d_w_hh) sgemm(true, false, G, hidden, rows, 1.0f, dg, G, s.h_prev, hidden, beta, d_w_hh, hidden);
  if (d_b_ih || d_b_hh) {
    // Column sums of dg in float64, columns split over the pool (fixed order per column).
    constexpr std::size_t kCols = 64;
    parallel_for((G + kCols - 1) / kCols, 1, [&](std::size_t c0, std::size_t c1) {
      for (std::size_t c = c0; c < c1; ++c) {
        const std::size_t j0 = c * kCols, j1 = std::min(G, j0 + kCols);
        double sum[kCols] = {};
        for (std::size_t r = 0; r < rows; ++r) {
          const float* row = dg + r * G;
          for (std::size_t j = j0; j < j1; ++j) sum[j - j0] += row[j];
        }
        for (std::size_t j = j0; j < j1; ++j) {
          const float v = static_cast<float>(sum[j - j0]);
          if (d_b_ih) d_b_ih[j] = accumulate ? d_b_ih[j] + v : v;
          if (d_b_hh) d_b_hh[j] = accumulate ? d_b_hh[j] + v : v;
        }
      }
    });
  }
}

}  // namespace flowvae
