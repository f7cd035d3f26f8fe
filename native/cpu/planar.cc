// Planar flow stacks (see flowvae/planar.h for the mathematics and layouts).
//
// Work is split over blocks of 16 rows (parallel_for); inside a block, rows
// go through all K layers in lock-step groups of W rows (W = the SIMD width:
// 16 AVX-512, 8 AVX2, 4 SSE2), so a group's rows stay in L1 for the whole
// stack and the W independent rows hide each row's dependency chain.
//
// Shared parameters: the group is transposed (zT[d·W + lane], one lane per
// row) and every step is a vector op across rows with the parameter
// broadcast; tanh and the rest of the scalar chain are vectorized across rows
// for free. Two groups run interleaved (one group's layer chain is serial),
// the log-det takes one Log per group (LogProduct), and the stash is written
// and read a group at a time. Backward carries only ∂L/∂z through the
// layers: because each layer moves z along its own û_k, the parameter sums
// Σ t_k g_{k+1} and Σ ga_k z_k follow from a few per-group outer products
// (see BackwardSharedLanes), without rebuilding z.
//
// Amortized parameters differ per row and are contiguous per row, so rows
// stay row-major: dot products run SIMD over dim, are reduced across the
// group's rows with a transpose tree, the scalar chain runs SIMD across rows,
// and the next group's parameter block is prefetched meanwhile. Backward
// rebuilds each layer's input from its output, z_k = z_{k+1} − û_k tanh(a_k),
// with a_k the stashed pre-activation; past the last-level cache it writes
// the parameter gradients with streaming stores (stack::Backward).
#include "flowvae/planar.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "flowvae/cpu_features.h"
#include "flowvae/parallel.h"
#include "lane_math.h"
#include "stack_driver.h"

namespace flowvae {
namespace {

using lanes::CountBadLanes;
using lanes::DotLanes;
using lanes::GatherRows;
using lanes::HorizontalSum;
using lanes::Load;
using lanes::RowFinite;
using lanes::ScatterRows;
using lanes::Select;
using lanes::Splat;
using lanes::Store;
using lanes::ThreadScratch;
using lanes::Vec;

using stack::Fold;
using stack::kBlock;
using stack::kFlushRows;
using stack::kSharedGroups;
using stack::SigmoidD;
using stack::SoftplusD;

// Values in one task's partial sums (BackwardSharedLanes).
std::size_t PartialSize(std::size_t D, std::size_t K) { return 2 * K * D + 2 * K + K * K; }

// Shared parameters prepared once per call, in float64.
struct SharedLayers {
  std::vector<float> u_hat;     // [K, D]
  std::vector<double> u_hat_d;  // [K, D] (inverse)
  std::vector<float> sp;        // 1 + wᵀû: softplus(wᵀu), or 1 when ‖w‖ = 0
  std::vector<float> m;         // wᵀû
  std::vector<double> sp_d, m_d, wn2, c, sig, sig_neg;
};

void PrepareShared(const float* params, std::size_t D, std::size_t K, SharedLayers* s) {
  const std::size_t KD = K * D;
  s->u_hat.resize(KD);
  s->u_hat_d.resize(KD);
  for (auto* v : {&s->sp_d, &s->m_d, &s->wn2, &s->c, &s->sig, &s->sig_neg}) v->resize(K);
  s->sp.resize(K);
  s->m.resize(K);
  for (std::size_t k = 0; k < K; ++k) {
    const float* u = params + k * D;
    const float* w = params + KD + k * D;
    double wu = 0, wn2 = 0;
    for (std::size_t d = 0; d < D; ++d) {
      wu += static_cast<double>(w[d]) * u[d];
      wn2 += static_cast<double>(w[d]) * w[d];
    }
    const double tail = std::log1p(std::exp(-std::fabs(wu)));
    const double sp = std::max(wu, 0.0) + tail;       // softplus(wu) = 1 + m(wu)
    const double sp_neg = std::max(-wu, 0.0) + tail;  // softplus(−wu) = m(wu) − wu + 1
    const bool has_w = wn2 > 0;
    const double c = has_w ? (sp_neg - 1) / wn2 : 0.0;
    const double sp_eff = has_w ? sp : 1.0;
    for (std::size_t d = 0; d < D; ++d) {
      s->u_hat_d[k * D + d] = u[d] + c * w[d];
      s->u_hat[k * D + d] = static_cast<float>(s->u_hat_d[k * D + d]);
    }
    s->sp_d[k] = sp_eff;
    s->m_d[k] = sp_eff - 1;
    s->sp[k] = static_cast<float>(sp_eff);
    s->m[k] = static_cast<float>(sp_eff - 1);
    s->wn2[k] = wn2;
    s->c[k] = c;
    s->sig[k] = SigmoidD(wu);
    s->sig_neg[k] = SigmoidD(-wu);
  }
}

// ---- SIMD-over-dim helpers (C = chunk width) --------------------------------

// Partial sums (CT lanes) of wᵀz, wᵀu and wᵀw in one pass over w, reduced
// across the row group by ReduceRowPartials: chunks of CM floats, then one of
// CT when CM = 2·CT, then the scalar tail in lane 0.
template <int CM, int CT>
FLOWVAE_LANE_INLINE void Partials3(const float* w, const float* z, const float* u, std::size_t n,
                                   typename Vec<CT>::F* wz, typename Vec<CT>::F* wu, typename Vec<CT>::F* ww) {
  using FM = typename Vec<CM>::F;
  using FT = typename Vec<CT>::F;
  FM m0 = FM{}, m1 = FM{}, m2 = FM{};
  std::size_t d = 0;
  for (; d + CM <= n; d += CM) {
    const FM wv = Load<FM>(w + d);
    m0 += wv * Load<FM>(z + d);
    m1 += wv * Load<FM>(u + d);
    m2 += wv * wv;
  }
  FT a0 = Fold<CT>(m0), a1 = Fold<CT>(m1), a2 = Fold<CT>(m2);
  if constexpr (CM > CT) {
    if (d + CT <= n) {
      const FT wv = Load<FT>(w + d);
      a0 += wv * Load<FT>(z + d);
      a1 += wv * Load<FT>(u + d);
      a2 += wv * wv;
      d += CT;
    }
  }
  for (; d < n; ++d) {
    a0[0] += w[d] * z[d];
    a1[0] += w[d] * u[d];
    a2[0] += w[d] * w[d];
  }
  *wz = a0;
  *wu = a1;
  *ww = a2;
}

// Partial sums (CT lanes) of gᵀu, gᵀw, wᵀu, wᵀw in one pass: chunks of CM
// floats, then one of CT when CM = 2·CT, then the scalar tail in lane 0.
template <int CM, int CT>
FLOWVAE_LANE_INLINE void Partials4(const float* g, const float* u, const float* w, std::size_t n,
                                   typename Vec<CT>::F* gu, typename Vec<CT>::F* gw, typename Vec<CT>::F* wu,
                                   typename Vec<CT>::F* ww) {
  using FM = typename Vec<CM>::F;
  using FT = typename Vec<CT>::F;
  FM m0 = FM{}, m1 = FM{}, m2 = FM{}, m3 = FM{};
  std::size_t d = 0;
  for (; d + CM <= n; d += CM) {
    const FM gv = Load<FM>(g + d), uv = Load<FM>(u + d), wv = Load<FM>(w + d);
    m0 += gv * uv;
    m1 += gv * wv;
    m2 += wv * uv;
    m3 += wv * wv;
  }
  FT a0 = Fold<CT>(m0), a1 = Fold<CT>(m1), a2 = Fold<CT>(m2), a3 = Fold<CT>(m3);
  if constexpr (CM > CT) {
    if (d + CT <= n) {
      const FT gv = Load<FT>(g + d), uv = Load<FT>(u + d), wv = Load<FT>(w + d);
      a0 += gv * uv;
      a1 += gv * wv;
      a2 += wv * uv;
      a3 += wv * wv;
      d += CT;
    }
  }
  for (; d < n; ++d) {
    a0[0] += g[d] * u[d];
    a1[0] += g[d] * w[d];
    a2[0] += w[d] * u[d];
    a3[0] += w[d] * w[d];
  }
  *gu = a0;
  *gw = a1;
  *wu = a2;
  *ww = a3;
}

// Per-lane reparametrization of amortized layers: from wᵀu and ‖w‖² to
// c = (m(wᵀu) − wᵀu)/‖w‖² (0 when ‖w‖ = 0), sp = 1 + wᵀû, and the sigmoids
// backward needs.
template <class F>
struct AmortizedReparam {
  F c, sp, has_w_mask_as_one, wn2_safe, sig, sig_neg;
};

template <class F>
FLOWVAE_LANE_INLINE AmortizedReparam<F> Reparametrize(const F& wu, const F& wn2, bool with_sigmoids) {
  using I = decltype(wu < wu);
  AmortizedReparam<F> r;
  const F e = lanes::ExpNonPositive(-lanes::Abs(wu));
  const F tail = lanes::Log1pUnit(e);
  const F sp = lanes::Max(wu, F{}) + tail;
  const F sp_neg = lanes::Max(-wu, F{}) + tail;
  const I has_w = wn2 > 0.0f;
  r.wn2_safe = Select(has_w, wn2, Splat<F>(1.0f));
  r.c = Select(has_w, (sp_neg - 1.0f) / r.wn2_safe, F{});
  r.sp = Select(has_w, sp, Splat<F>(1.0f));
  r.has_w_mask_as_one = Select(has_w, Splat<F>(1.0f), F{});
  if (with_sigmoids) {
    r.sig = lanes::SigmoidFromExp(wu, e);
    r.sig_neg = lanes::SigmoidFromExp(-wu, e);
  }
  return r;
}

// ---- lanes = rows (shared parameters) -----------------------------------------
//
// With shared parameters every row of a group sees the same u, w, b, so the
// group is stored transposed, zT[d·W + lane], and each step is a vector op
// across the W rows with the parameter broadcast: no horizontal sums, no
// tails over dim, and the transcendental chain is vectorized for free.

using ForwardArgs = stack::ForwardArgs<SharedLayers>;
using BackwardArgs = stack::BackwardArgs<SharedLayers>;

template <int W>
FLOWVAE_LANE_INLINE std::size_t ForwardSharedLanes(const ForwardArgs& A, std::size_t row_begin, std::size_t row_end) {
  using F = typename Vec<W>::F;
  constexpr int G = kSharedGroups;
  const std::size_t D = A.dim, K = A.layers, KD = K * D;
  const float* u_hat = A.shared->u_hat.data();
  const float* w = A.params + KD;
  const float* b = A.params + 2 * KD;
  // Per group: zT [D, W], pre-activations [K, W], det J factors [K, W], per-layer log-dets [K, W].
  const std::size_t per_group = (D + 3 * K) * W;
  float* scratch = ThreadScratch(G * per_group);
  std::size_t bad = 0;
  for (std::size_t r0 = row_begin; r0 < row_end; r0 += G * W) {
    std::size_t rows[G];
    float *zT[G], *a_lanes[G], *factors[G], *ld_lanes[G];
    F a[G], ld_sum[G];
    lanes::LogProduct<F> det[G];
    for (int g = 0; g < G; ++g) {
      const std::size_t first = r0 + g * W;
      rows[g] = lanes::GroupRows<W>(first, row_end);
      zT[g] = scratch + g * per_group;
      a_lanes[g] = zT[g] + D * W;
      factors[g] = a_lanes[g] + K * W;
      ld_lanes[g] = factors[g] + K * W;
      GatherRows<W>(A.x + first * D, rows[g], D, zT[g]);
      a[g] = DotLanes<W>(w, zT[g], D);
      ld_sum[g] = F{};
    }
    for (std::size_t k = 0; k < K; ++k) {
      F t[G];
      for (int g = 0; g < G; ++g) {
        a[g] += b[k];
        Store(a_lanes[g] + k * W, a[g]);
        F s;
        lanes::TanhSech2(a[g], &t[g], &s);
        // 1 + s·m written as t² + s·(1 + m): no cancellation when m → −1.
        const F factor = t[g] * t[g] + s * A.shared->sp[k];
        if (A.layer_log_det) {
          const F ld = lanes::Log(factor);
          ld_sum[g] += ld;
          Store(ld_lanes[g] + k * W, ld);
        } else {
          det[g].Multiply(factor);
          Store(factors[g] + k * W, factor);
        }
      }
      // z += t·û_k, fused with the next layer's pre-activation w_{k+1}ᵀz.
      const float* uh = u_hat + k * D;
      if (k + 1 < K) {
        const float* wn = w + (k + 1) * D;
        // Two accumulators per group: the dot product is on the critical path of the layer chain.
        F acc[G][2] = {};
        std::size_t d = 0;
        for (; d + 2 <= D; d += 2) {
          for (int g = 0; g < G; ++g) {
            for (int j = 0; j < 2; ++j) {
              const F zj = Load<F>(zT[g] + (d + j) * W) + t[g] * uh[d + j];
              Store(zT[g] + (d + j) * W, zj);
              acc[g][j] += wn[d + j] * zj;
            }
          }
        }
        for (int g = 0; g < G; ++g) {
          if (d < D) {
            const F z0 = Load<F>(zT[g] + d * W) + t[g] * uh[d];
            Store(zT[g] + d * W, z0);
            acc[g][0] += wn[d] * z0;
          }
          a[g] = acc[g][0] + acc[g][1];
        }
      } else {
        for (int g = 0; g < G; ++g)
          for (std::size_t d = 0; d < D; ++d) Store(zT[g] + d * W, Load<F>(zT[g] + d * W) + t[g] * uh[d]);
      }
    }
    for (int g = 0; g < G; ++g) {
      if (rows[g] == 0) continue;
      if (!A.layer_log_det) ld_sum[g] = det[g].Sum(K, factors[g]);
      bad += lanes::StoreGroupOutputs<W>(a_lanes[g], ld_lanes[g], ld_sum[g], zT[g], r0 + g * W, rows[g], D, K, A.stash,
                                         A.layer_log_det, A.log_det, A.y);
    }
  }
  return bad;
}

// acc[k·D + d] += Σ_{l < rows} coef[k·W + l] · data[l·D + d] for k < K: a
// rank-`rows` update of a K×D matrix, SIMD over dim, four k at a time.
template <int W, int C>
FLOWVAE_LANE_INLINE void AccumulateOuter(const float* coef, const float* data, std::size_t rows, std::size_t D,
                                         std::size_t K, float* acc) {
  using FC = typename Vec<C>::F;
  std::size_t k = 0;
  for (; k + 4 <= K; k += 4) {
    const float* c0 = coef + k * W;
    float* a = acc + k * D;
    std::size_t d = 0;
    for (; d + C <= D; d += C) {
      FC a0 = Load<FC>(a + d), a1 = Load<FC>(a + D + d), a2 = Load<FC>(a + 2 * D + d), a3 = Load<FC>(a + 3 * D + d);
      for (std::size_t l = 0; l < rows; ++l) {
        const FC v = Load<FC>(data + l * D + d);
        a0 += c0[l] * v;
        a1 += c0[W + l] * v;
        a2 += c0[2 * W + l] * v;
        a3 += c0[3 * W + l] * v;
      }
      Store(a + d, a0);
      Store(a + D + d, a1);
      Store(a + 2 * D + d, a2);
      Store(a + 3 * D + d, a3);
    }
    for (; d < D; ++d)
      for (std::size_t l = 0; l < rows; ++l)
        for (int i = 0; i < 4; ++i) a[i * D + d] += c0[i * W + l] * data[l * D + d];
  }
  for (; k < K; ++k)
    for (std::size_t l = 0; l < rows; ++l)
      for (std::size_t d = 0; d < D; ++d) acc[k * D + d] += coef[k * W + l] * data[l * D + d];
}

// Partial sums over rows [row_begin, row_end) from which FinalizeShared
// builds the parameter gradients:
//   [TᵀDY (K·D) | GAᵀY (K·D) | Σ ga (K) | Σ ∂L/∂sp (K) | TᵀGA (K·K)]
// with t_k = tanh(a_k), ga_k = ∂L/∂a_k per row. Because every planar layer
// moves z along û_k, the per-layer sums Σ t_k g_{k+1} and Σ ga_k z_k follow
// from these (g_{k+1} = dy + Σ_{j>k} ga_j w_j, z_k = y − Σ_{j≥k} t_j û_j),
// so the sweep over layers only has to carry g.
template <int W, int C>
FLOWVAE_LANE_INLINE std::size_t BackwardSharedLanes(const BackwardArgs& A, std::size_t row_begin, std::size_t row_end,
                                                    double* partial) {
  using F = typename Vec<W>::F;
  constexpr int G = kSharedGroups;
  const std::size_t D = A.dim, K = A.layers, KD = K * D;
  const float* u_hat = A.shared->u_hat.data();
  const float* w = A.params + KD;
  // Per group: gT [D, W], pre-activations, t and ga as lanes [K, W], ga as rows [W, K].
  const std::size_t per_group = (D + 4 * K) * W;
  float* scratch = ThreadScratch(G * per_group + 2 * K * W + 2 * KD + K * K);
  // float32 sums over at most kFlushRows rows, then added into the float64 partial.
  float* acc_b = scratch + G * per_group;  // [K, W]: Σ ga
  float* acc_sp = acc_b + K * W;           // [K, W]: Σ ∂L/∂sp
  float* acc_tdy = acc_sp + K * W;         // [K, D]: TᵀDY
  float* acc_gay = acc_tdy + KD;           // [K, D]: GAᵀY
  float* acc_c = acc_gay + KD;             // [K, K]: Σ t_k ga_j
  std::fill(acc_b, acc_c + K * K, 0.0f);
  std::fill(partial, partial + PartialSize(D, K), 0.0);
  auto flush = [&]() {
    double* out = partial;
    for (std::size_t i = 0; i < 2 * KD; ++i) out[i] += acc_tdy[i];
    for (std::size_t i = 0; i < 2 * K; ++i) out[2 * KD + i] += HorizontalSum(Load<F>(acc_b + i * W));
    for (std::size_t i = 0; i < K * K; ++i) out[2 * KD + 2 * K + i] += acc_c[i];
    std::fill(acc_b, acc_c + K * K, 0.0f);
  };
  std::size_t bad = 0;
  for (std::size_t r0 = row_begin; r0 < row_end; r0 += G * W) {
    if (r0 > row_begin && (r0 - row_begin) % kFlushRows == 0) flush();
    std::size_t rows[G];
    float *gT[G], *a_lanes[G], *t_lanes[G], *ga_lanes[G], *ga_rows[G];
    F gl[G], gyu[G];
    for (int g = 0; g < G; ++g) {
      const std::size_t first = r0 + g * W;
      rows[g] = lanes::GroupRows<W>(first, row_end);
      gT[g] = scratch + g * per_group;
      a_lanes[g] = gT[g] + D * W;
      t_lanes[g] = a_lanes[g] + K * W;
      ga_lanes[g] = t_lanes[g] + K * W;
      ga_rows[g] = ga_lanes[g] + K * W;
      GatherRows<W>(A.dy + first * D, rows[g], D, gT[g]);  // padded lanes: zero gradient, so they add exactly 0
      GatherRows<W>(A.stash + first * K, rows[g], K, a_lanes[g], 1.0f);  // padded lanes: a harmless 1
      alignas(64) float lane[W];
      for (int l = 0; l < W; ++l) lane[l] = static_cast<std::size_t>(l) < rows[g] ? A.d_log_det[first + l] : 0.0f;
      gl[g] = Load<F>(lane);
      gyu[g] = DotLanes<W>(u_hat + (K - 1) * D, gT[g], D);  // gᵀû of the last layer
    }
    for (std::size_t k = K; k-- > 0;) {
      F ga[G];
      for (int g = 0; g < G; ++g) {
        F t, s;
        lanes::TanhSech2(Load<F>(a_lanes[g] + k * W), &t, &s);
        const F inv_det = 1.0f / (t * t + s * A.shared->sp[k]);
        // ∂logdet/∂t = −2 t m / det; ∂logdet/∂sp = s / det.
        ga[g] = (gyu[g] - 2.0f * A.shared->m[k] * gl[g] * t * inv_det) * s;
        Store(t_lanes[g] + k * W, t);
        Store(ga_lanes[g] + k * W, ga[g]);
        Store(acc_b + k * W, Load<F>(acc_b + k * W) + ga[g]);
        Store(acc_sp + k * W, Load<F>(acc_sp + k * W) + gl[g] * s * inv_det);
      }
      // g ← g + ga·w_k, fused with the next layer's gᵀû.
      const float* wk = w + k * D;
      if (k > 0) {
        const float* uh_prev = u_hat + (k - 1) * D;
        // Two accumulators per group: the dot product is on the critical path of the layer chain.
        F acc[G][2] = {};
        std::size_t d = 0;
        for (; d + 2 <= D; d += 2) {
          for (int g = 0; g < G; ++g) {
            for (int j = 0; j < 2; ++j) {
              const F nj = Load<F>(gT[g] + (d + j) * W) + ga[g] * wk[d + j];
              Store(gT[g] + (d + j) * W, nj);
              acc[g][j] += uh_prev[d + j] * nj;
            }
          }
        }
        for (int g = 0; g < G; ++g) {
          if (d < D) {
            const F n0 = Load<F>(gT[g] + d * W) + ga[g] * wk[d];
            Store(gT[g] + d * W, n0);
            acc[g][0] += uh_prev[d] * n0;
          }
          gyu[g] = acc[g][0] + acc[g][1];
        }
      } else {
        for (int g = 0; g < G; ++g)
          for (std::size_t d = 0; d < D; ++d) Store(gT[g] + d * W, Load<F>(gT[g] + d * W) + ga[g] * wk[d]);
      }
    }
    for (int g = 0; g < G; ++g) {
      if (rows[g] == 0) continue;
      const std::size_t first = r0 + g * W;
      bad += CountBadLanes<W>(ScatterRows<W>(gT[g], rows[g], D, A.dx + first * D), rows[g]);
      AccumulateOuter<W, C>(t_lanes[g], A.dy + first * D, rows[g], D, K, acc_tdy);
      AccumulateOuter<W, C>(ga_lanes[g], A.saved + first * D, rows[g], D, K, acc_gay);
      lanes::Transpose<(W < 8 ? W : 8)>(ga_lanes[g], W, K, rows[g], ga_rows[g], K);  // [rows, K]
      AccumulateOuter<W, C>(t_lanes[g], ga_rows[g], rows[g], K, K, acc_c);
    }
  }
  flush();
  return bad;
}

// ---- row-major groups (amortized parameters) --------------------------------------
//
// Amortized parameters differ per row and are contiguous per row, so rows
// stay row-major: dot products run SIMD over dim (C floats per chunk), then
// the scalar chain of a lock-step group of W rows runs SIMD across rows.

template <int W, int CM, int C>
FLOWVAE_LANE_INLINE std::size_t ForwardAmortizedRows(const ForwardArgs& A, std::size_t row_begin, std::size_t row_end) {
  using F = typename Vec<W>::F;
  using FC = typename Vec<C>::F;
  const std::size_t D = A.dim, K = A.layers, KD = K * D, P = 2 * D + 1;
  alignas(64) float lane_a[W], lane_wu[W], lane_wn2[W], lane_t[W], lane_tc[W], lane_out[W];
  FC slot_wz[W], slot_wu[W], slot_ww[W];
  float* factors = ThreadScratch(K * W);  // [K, W]: det J factors, for LogProduct
  std::size_t bad = 0;
  for (std::size_t r0 = row_begin; r0 < row_end; r0 += W) {
    const std::size_t rows = std::min<std::size_t>(W, row_end - r0);
    // The next group's parameters (one contiguous block), fetched a few lines per row.
    const std::size_t next_rows = r0 + W < row_end ? std::min<std::size_t>(W, row_end - r0 - W) : 0;
    const float* next_params = next_rows ? A.params + (r0 + W) * K * P : nullptr;
    const float* p0 = A.params + r0 * K * P;
    float* y0 = A.y + r0 * D;
    std::memcpy(y0, A.x + r0 * D, rows * D * sizeof(float));
    for (int g = 0; g < W; ++g) slot_wz[g] = slot_wu[g] = slot_ww[g] = FC{};
    F ld_sum = F{};
    lanes::LogProduct<F> det;
    for (std::size_t k = 0; k < K; ++k) {
      for (std::size_t g = 0; g < rows; ++g) {
        lanes::PrefetchPart(next_params, next_rows * K * P, k * W + g, K * W, false);
        const float* p = p0 + g * K * P;
        const std::size_t slot = lanes::RowSlot<C>(g);
        Partials3<CM, C>(p + KD + k * D, y0 + g * D, p + k * D, D, &slot_wz[slot], &slot_wu[slot], &slot_ww[slot]);
      }
      lanes::ReduceRowPartials<W, C>(slot_wz, lane_a);
      lanes::ReduceRowPartials<W, C>(slot_wu, lane_wu);
      lanes::ReduceRowPartials<W, C>(slot_ww, lane_wn2);
      for (std::size_t g = 0; g < rows; ++g) {
        lane_a[g] += p0[g * K * P + 2 * KD + k];
        A.stash[(r0 + g) * K + k] = lane_a[g];
      }
      for (std::size_t g = rows; g < static_cast<std::size_t>(W); ++g) {  // harmless padding
        lane_a[g] = 1.0f;
        lane_wn2[g] = 1.0f;
      }
      F t, s;
      lanes::TanhSech2(Load<F>(lane_a), &t, &s);
      const AmortizedReparam<F> r = Reparametrize(Load<F>(lane_wu), Load<F>(lane_wn2), false);
      const F factor = t * t + s * r.sp;
      if (A.layer_log_det) {
        const F ld = lanes::Log(factor);
        ld_sum += ld;
        Store(lane_out, ld);
        for (std::size_t g = 0; g < rows; ++g) A.layer_log_det[(r0 + g) * K + k] = lane_out[g];
      } else {
        det.Multiply(factor);
        Store(factors + k * W, factor);
      }
      Store(lane_t, t);
      Store(lane_tc, t * r.c);
      for (std::size_t g = 0; g < rows; ++g) {
        float* z = y0 + g * D;
        const float* p = p0 + g * K * P;
        const float* u = p + k * D;
        const float* w = p + KD + k * D;
        const float tg = lane_t[g], tc = lane_tc[g];
        auto step = [&](const auto& zero, std::size_t d) __attribute__((always_inline)) {
          using V = std::decay_t<decltype(zero)>;
          Store(z + d, Load<V>(z + d) + (tg * Load<V>(u + d) + tc * Load<V>(w + d)));
        };
        std::size_t d = 0;
        for (; d + CM <= D; d += CM) step(typename Vec<CM>::F{}, d);
        if constexpr (CM > C) {
          if (d + C <= D) {
            step(FC{}, d);
            d += C;
          }
        }
        for (; d < D; ++d) step(0.0f, d);
      }
    }
    if (!A.layer_log_det) ld_sum = det.Sum(K, factors);
    Store(lane_out, ld_sum);
    for (std::size_t g = 0; g < rows; ++g) {
      A.log_det[r0 + g] = lane_out[g];
      if (!RowFinite<C>(y0 + g * D, D) || !std::isfinite(lane_out[g])) ++bad;
    }
  }
  return bad;
}

template <int W, int CM, int C>
FLOWVAE_LANE_INLINE std::size_t BackwardAmortizedRows(const BackwardArgs& A, std::size_t row_begin,
                                                      std::size_t row_end) {
  using F = typename Vec<W>::F;
  using FC = typename Vec<C>::F;
  const std::size_t D = A.dim, K = A.layers, KD = K * D, P = 2 * D + 1;
  // Per group: the layer inputs being rebuilt [W, D] and, when streaming,
  // the parameter gradients [W, K·P], copied out once complete (StreamCopy).
  float* zbuf = ThreadScratch(W * D + (A.stream_grads ? W * K * P : 0));
  float* grad_block = zbuf + W * D;
  alignas(64) float lane_a[W], lane_gl[W], lane_gu[W], lane_gw[W], lane_wu[W], lane_wn2[W];
  alignas(64) float lane_t[W], lane_tc[W], lane_ga[W], lane_gwu[W], lane_gwn2x2[W];
  FC slot_gu[W], slot_gw[W], slot_wu[W], slot_ww[W];
  FC probe[W];  // (v − v) summed over every gradient written: 0 while all are finite
  std::size_t bad = 0;
  for (std::size_t r0 = row_begin; r0 < row_end; r0 += W) {
    const std::size_t rows = std::min<std::size_t>(W, row_end - r0);
    // The next group's parameters, fetched a few lines per row, and (unless
    // streaming) its gradient rows, fetched for writing a slice per layer.
    const std::size_t next_rows = r0 + W < row_end ? std::min<std::size_t>(W, row_end - r0 - W) : 0;
    const float* next_params = next_rows ? A.params + (r0 + W) * K * P : nullptr;
    const float* next_grads = next_rows && !A.stream_grads ? A.d_params + (r0 + W) * K * P : nullptr;
    const float* p0 = A.params + r0 * K * P;
    float* dp0 = A.stream_grads ? grad_block : A.d_params + r0 * K * P;
    float* g0 = A.dx + r0 * D;
    std::memcpy(g0, A.dy + r0 * D, rows * D * sizeof(float));
    std::memcpy(zbuf, A.saved + r0 * D, rows * D * sizeof(float));
    for (int g = 0; g < W; ++g) {
      slot_gu[g] = slot_gw[g] = slot_wu[g] = slot_ww[g] = FC{};
      probe[g] = FC{};
      lane_gl[g] = static_cast<std::size_t>(g) < rows ? A.d_log_det[r0 + g] : 0.0f;
    }
    const F gl = Load<F>(lane_gl);
    for (std::size_t k = K; k-- > 0;) {
      lanes::PrefetchPart(next_grads, next_rows * K * P, K - 1 - k, K, true);
      for (std::size_t g = 0; g < rows; ++g) {
        lanes::PrefetchPart(next_params, next_rows * K * P, (K - 1 - k) * W + g, K * W, false);
        const float* p = p0 + g * K * P;
        const std::size_t slot = lanes::RowSlot<C>(g);
        Partials4<CM, C>(g0 + g * D, p + k * D, p + KD + k * D, D, &slot_gu[slot], &slot_gw[slot], &slot_wu[slot],
                         &slot_ww[slot]);
      }
      lanes::ReduceRowPartials<W, C>(slot_gu, lane_gu);
      lanes::ReduceRowPartials<W, C>(slot_gw, lane_gw);
      lanes::ReduceRowPartials<W, C>(slot_wu, lane_wu);
      lanes::ReduceRowPartials<W, C>(slot_ww, lane_wn2);
      for (int g = 0; g < W; ++g) {
        const bool real = static_cast<std::size_t>(g) < rows;
        lane_a[g] = real ? A.stash[(r0 + g) * K + k] : 1.0f;  // harmless padding
        if (!real) lane_wn2[g] = 1.0f;
      }
      const F wu = Load<F>(lane_wu), wn2 = Load<F>(lane_wn2), gw = Load<F>(lane_gw);
      const AmortizedReparam<F> r = Reparametrize(wu, wn2, true);
      F t, s;
      lanes::TanhSech2(Load<F>(lane_a), &t, &s);
      const F inv_det = 1.0f / (t * t + s * r.sp);
      const F gyu = Load<F>(lane_gu) + r.c * gw;  // gᵀû
      const F ga = (gyu - 2.0f * (r.sp - 1.0f) * gl * t * inv_det) * s;
      const F gsp = gl * s * inv_det;
      const F gc = t * gw;  // ∂L/∂c = (t g)ᵀw
      const F inv_wn2 = 1.0f / r.wn2_safe;
      // c = (softplus(−wᵀu) − 1)/‖w‖², sp = softplus(wᵀu); both vanish from the graph when ‖w‖ = 0.
      const F gwu = r.has_w_mask_as_one * (gsp * r.sig - gc * r.sig_neg * inv_wn2);
      const F gwn2 = r.has_w_mask_as_one * (-gc * r.c * inv_wn2);
      Store(lane_t, t);
      Store(lane_tc, t * r.c);
      Store(lane_ga, ga);
      Store(lane_gwu, gwu);
      Store(lane_gwn2x2, 2.0f * gwn2);
      for (std::size_t g = 0; g < rows; ++g) {
        const float* p = p0 + g * K * P;
        const float* u = p + k * D;
        const float* w = p + KD + k * D;
        float* dp = dp0 + g * K * P;
        float* du = dp + k * D;
        float* dw = dp + KD + k * D;
        dp[2 * KD + k] = lane_ga[g];
        float* gp = g0 + g * D;
        float* zp = zbuf + g * D;
        const float tg = lane_t[g], tc = lane_tc[g], ga_g = lane_ga[g], gwu_g = lane_gwu[g], gwn2x2_g = lane_gwn2x2[g];
        // One element step for any vector width V (or float).
        auto step = [&](const auto& zero, std::size_t d) __attribute__((always_inline)) {
          using V = std::decay_t<decltype(zero)>;
          const V uv = Load<V>(u + d), wv = Load<V>(w + d), gv = Load<V>(gp + d);
          const V zv = Load<V>(zp + d) - (tg * uv + tc * wv);
          const V duv = tg * gv + gwu_g * wv;
          const V dwv = ga_g * zv + tc * gv + gwu_g * uv + gwn2x2_g * wv;
          Store(du + d, duv);
          Store(dw + d, dwv);
          Store(gp + d, gv + ga_g * wv);
          Store(zp + d, zv);
          return lanes::NonFiniteProbe(duv) + lanes::NonFiniteProbe(dwv);
        };
        using FM = typename Vec<CM>::F;
        FM pm = FM{};
        std::size_t d = 0;
        for (; d + CM <= D; d += CM) pm += step(FM{}, d);
        FC pr = probe[g] + Fold<C>(pm);
        if constexpr (CM > C) {
          if (d + C <= D) {
            pr += step(FC{}, d);
            d += C;
          }
        }
        for (; d < D; ++d) pr[0] += step(0.0f, d);
        pr[0] += ga_g - ga_g;
        probe[g] = pr;
      }
    }
    if (A.stream_grads) lanes::StreamCopy<F>(A.d_params + r0 * K * P, grad_block, rows * K * P);
    for (std::size_t g = 0; g < rows; ++g) {
      if (!RowFinite<C>(g0 + g * D, D) || !(HorizontalSum(probe[g]) == 0.0f)) ++bad;
    }
  }
  return bad;
}

thread_local SharedLayers tls_shared;

// Chain rule from the batch sums (see BackwardSharedLanes) to u, w, b in
// float64, added into d_params:
//   Σ t_k g_{k+1} = TᵀDY_k + Σ_{j>k} C_kj w_j,   Σ ga_k z_k = GAᵀY_k − Σ_{j≥k} C_jk û_j,
// then through û = u + c·w, c = (softplus(−wᵀu) − 1)/‖w‖², sp = softplus(wᵀu).
void FinalizeShared(const float* params, const SharedLayers& s, const double* sums, std::size_t D, std::size_t K,
                    float* d_params) {
  const std::size_t KD = K * D;
  const double* tdy = sums;
  const double* gay = tdy + KD;
  const double* sb = gay + KD;
  const double* ssp = sb + K;
  const double* c = ssp + K;  // c[k·K + j] = Σ t_k ga_j
  thread_local std::vector<double> su, sa;
  su.resize(D);
  sa.resize(D);
  const float* wall = params + KD;
  for (std::size_t k = 0; k < K; ++k) {
    for (std::size_t d = 0; d < D; ++d) {
      su[d] = tdy[k * D + d];
      sa[d] = gay[k * D + d];
    }
    for (std::size_t j = k + 1; j < K; ++j)
      for (std::size_t d = 0; d < D; ++d) su[d] += c[k * K + j] * wall[j * D + d];
    for (std::size_t j = k; j < K; ++j)
      for (std::size_t d = 0; d < D; ++d) sa[d] -= c[j * K + k] * s.u_hat_d[j * D + d];
    const float* u = params + k * D;
    const float* w = wall + k * D;
    float* du = d_params + k * D;
    float* dw = d_params + KD + k * D;
    if (s.wn2[k] > 0) {
      double gc = 0;
      for (std::size_t d = 0; d < D; ++d) gc += su[d] * w[d];
      const double g_wu = ssp[k] * s.sig[k] - gc * s.sig_neg[k] / s.wn2[k];
      const double g_wn2 = -gc * s.c[k] / s.wn2[k];
      for (std::size_t d = 0; d < D; ++d) {
        du[d] = static_cast<float>(du[d] + (su[d] + g_wu * w[d]));
        dw[d] = static_cast<float>(dw[d] + (sa[d] + s.c[k] * su[d] + g_wu * u[d] + 2 * g_wn2 * w[d]));
      }
    } else {
      for (std::size_t d = 0; d < D; ++d) {
        du[d] = static_cast<float>(du[d] + su[d]);
        dw[d] = static_cast<float>(dw[d] + sa[d]);
      }
    }
    d_params[2 * KD + k] = static_cast<float>(d_params[2 * KD + k] + sb[k]);
  }
}

// The planar family as the shared stack sees it (stack_driver.h).
struct PlanarStack {
  using Shared = SharedLayers;
  static Shared& TlsShared() { return tls_shared; }
  static void Prepare(const float* params, std::size_t D, std::size_t K, Shared* s) { PrepareShared(params, D, K, s); }
  static std::size_t ParamSize(std::size_t D) { return 2 * D + 1; }  // per layer: u, w, b
  static std::size_t PartialSize(std::size_t D, std::size_t K) { return ::flowvae::PartialSize(D, K); }
  static void Finalize(const float* params, const Shared& s, const double* sums, std::size_t D, std::size_t K,
                       float* d_params) {
    FinalizeShared(params, s, sums, D, K, d_params);
  }
  template <class Isa>
  static FLOWVAE_LANE_INLINE std::size_t ForwardShared(const ForwardArgs& a, std::size_t b, std::size_t e) {
    return ForwardSharedLanes<Isa::kLanes>(a, b, e);
  }
  template <class Isa>
  static FLOWVAE_LANE_INLINE std::size_t ForwardAmortized(const ForwardArgs& a, std::size_t b, std::size_t e) {
    return ForwardAmortizedRows<Isa::kLanes, Isa::kChunk, Isa::kTail>(a, b, e);
  }
  template <class Isa>
  static FLOWVAE_LANE_INLINE std::size_t BackwardShared(const BackwardArgs& a, std::size_t b, std::size_t e,
                                                        double* partial) {
    return BackwardSharedLanes<Isa::kLanes, Isa::kTail>(a, b, e, partial);
  }
  template <class Isa>
  static FLOWVAE_LANE_INLINE std::size_t BackwardAmortized(const BackwardArgs& a, std::size_t b, std::size_t e) {
    return BackwardAmortizedRows<Isa::kLanes, Isa::kChunk, Isa::kTail>(a, b, e);
  }
};

// ---- inverse (float64 per row) ---------------------------------------------------

// Solves α + m·tanh(α + b) = target for α (monotone since m > −1): Newton
// steps kept inside a shrinking bracket, bisection when a step leaves it or stalls.
bool SolveAlongW(double target, double m, double b, double* alpha_out) {
  if (!std::isfinite(target) || !std::isfinite(m) || !std::isfinite(b)) return false;
  double lo = target - std::fabs(m), hi = target + std::fabs(m);
  double alpha = std::min(std::max(target - m * std::tanh(target + b), lo), hi);
  const double scale = 1 + std::fabs(target) + std::fabs(m);
  double f = 0;
  double previous = HUGE_VAL;
  for (int it = 0; it < 200; ++it) {
    const double th = std::tanh(alpha + b);
    f = alpha + m * th - target;
    if (std::fabs(f) <= 1e-13 * scale) break;
    if (f > 0)
      hi = alpha;
    else
      lo = alpha;
    const double slope = 1 + m * (1 - th * th);
    double next = alpha - f / slope;
    // Bisect when Newton leaves the bracket or stalls (|f| not halved by the
    // last step): across the knee of tanh, Newton can bounce between the two
    // sides of the root while the bracket shrinks only slowly.
    if (!(next > lo && next < hi) || std::fabs(f) > 0.5 * previous) next = 0.5 * (lo + hi);
    previous = std::fabs(f);
    if (next == alpha) break;
    alpha = next;
  }
  *alpha_out = alpha;
  return std::fabs(f) <= 1e-6 * scale;
}

// log(1 + (1 − tanh²(a))·m) as log(tanh²(a) + sech²(a)·sp), sp = 1 + m.
double PlanarLogDetD(double a, double sp) {
  const double t = std::tanh(a);
  const double ch = std::cosh(a);
  return std::log(t * t + sp / (ch * ch));
}

}  // namespace

std::size_t planar_forward(const float* x, const float* params, bool amortized, float* y, float* log_det,
                           float* layer_log_det, float* stash, std::size_t batch, std::size_t dim, std::size_t layers) {
  return stack::Forward<PlanarStack>(x, params, amortized, y, log_det, layer_log_det, stash, batch, dim, layers);
}

std::size_t planar_backward(const float* y, const float* stash, const float* params, bool amortized, const float* dy,
                            const float* d_log_det, float* dx, float* d_params, std::size_t batch, std::size_t dim,
                            std::size_t layers) {
  return stack::Backward<PlanarStack>(y, stash, params, amortized, dy, d_log_det, dx, d_params, batch, dim, layers);
}

std::size_t planar_inverse(const float* y, const float* params, bool amortized, float* x, float* log_det,
                           std::size_t batch, std::size_t dim, std::size_t layers) {
  if (batch == 0) return 0;
  const std::size_t D = dim, K = layers, KD = K * D, P = 2 * D + 1;
  if (!amortized) PrepareShared(params, D, K, &tls_shared);
  const SharedLayers* shared = amortized ? nullptr : &tls_shared;
  return stack::Inverse(y, x, log_det, batch, dim, layers, [&](std::size_t row, double* z, double* log_det_row) {
    thread_local std::vector<double> uh;
    uh.resize(D);
    const float* p = amortized ? params + row * K * P : params;
    double ld = 0;
    bool ok = true;
    for (std::size_t k = K; k-- > 0 && ok;) {
      const float* u = p + k * D;
      const float* w = p + KD + k * D;
      const double b = p[2 * KD + k];
      double m, sp;
      if (amortized) {
        double wu = 0, wn2 = 0;
        for (std::size_t d = 0; d < D; ++d) {
          wu += static_cast<double>(w[d]) * u[d];
          wn2 += static_cast<double>(w[d]) * w[d];
        }
        const bool has_w = wn2 > 0;
        const double c = has_w ? (SoftplusD(-wu) - 1) / wn2 : 0.0;
        sp = has_w ? SoftplusD(wu) : 1.0;
        m = sp - 1;
        for (std::size_t d = 0; d < D; ++d) uh[d] = u[d] + c * w[d];
      } else {
        sp = shared->sp_d[k];
        m = shared->m_d[k];
        for (std::size_t d = 0; d < D; ++d) uh[d] = shared->u_hat_d[k * D + d];
      }
      double wy = 0;
      for (std::size_t d = 0; d < D; ++d) wy += static_cast<double>(w[d]) * z[d];
      double alpha = std::nan("");
      ok = SolveAlongW(wy, m, b, &alpha);
      const double t = std::tanh(alpha + b);
      for (std::size_t d = 0; d < D; ++d) z[d] -= uh[d] * t;
      ld -= PlanarLogDetD(alpha + b, sp);
    }
    *log_det_row = ld;
    return ok;
  });
}

}  // namespace flowvae
