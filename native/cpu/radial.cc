// Radial flow stacks (see flowvae/radial.h for the mathematics and layouts).
//
// Same structure as planar.cc: parallel over blocks of 16 rows; shared
// parameters run transposed (one SIMD lane per row, parameters broadcast, two
// groups interleaved, one Log per group and kind of factor), amortized
// parameters run row-major (SIMD over dim) with the scalar chain of a group
// of W rows vectorized across rows. Log-dets use forms without
// cancellation: 1 + βh = (r + softplus(β̃))/(α + r) and
// 1 + βh + βh'r = (r(2α + r) + α·softplus(β̃))/(α + r)².
//
// Backward rebuilds every layer's input from x and the stashed radii (one
// multiply-add per element and layer) into a per-thread buffer, then walks
// the layers in reverse.
#include "flowvae/radial.h"

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
std::size_t PartialSize(std::size_t D, std::size_t K) { return K * D + 2 * K; }

// log|det J| of one layer from r, α and sp = softplus(β̃) (float64).
double RadialLogDetD(double r, double alpha, double sp, std::size_t D) {
  const double q = alpha + r;
  return static_cast<double>(D - 1) * std::log((r + sp) / q) + std::log((r * (2 * alpha + r) + alpha * sp) / (q * q));
}

// Shared parameters prepared once per call.
struct SharedLayers {
  std::vector<float> alpha, sp, beta;  // α, softplus(β̃), β = sp − α
  std::vector<double> alpha_d, sp_d, sig_alpha, sig_beta;
};

void PrepareShared(const float* params, std::size_t D, std::size_t K, SharedLayers* s) {
  for (auto* v : {&s->alpha, &s->sp, &s->beta}) v->resize(K);
  for (auto* v : {&s->alpha_d, &s->sp_d, &s->sig_alpha, &s->sig_beta}) v->resize(K);
  const float* alpha_raw = params + K * D;
  const float* beta_raw = alpha_raw + K;
  for (std::size_t k = 0; k < K; ++k) {
    const double alpha = SoftplusD(alpha_raw[k]);
    const double sp = SoftplusD(beta_raw[k]);
    s->alpha_d[k] = alpha;
    s->sp_d[k] = sp;
    s->sig_alpha[k] = SigmoidD(alpha_raw[k]);
    s->sig_beta[k] = SigmoidD(beta_raw[k]);
    s->alpha[k] = static_cast<float>(alpha);
    s->sp[k] = static_cast<float>(sp);
    s->beta[k] = static_cast<float>(sp - alpha);
  }
}

// ---- lane math shared by all paths -----------------------------------------------

// The layer's det J = radial^(D − 1) · total, with radial = 1 + βh = (r + sp)·h
// and total = 1 + βh + βh'r = (r(2α + r) + α·sp)·h², h = 1/(α + r).
template <class F>
struct LayerFactors {
  F radial, total;
};

template <class F>
FLOWVAE_LANE_INLINE LayerFactors<F> LayerDetFactors(const F& r, const F& alpha, const F& sp, const F& h) {
  return {(r + sp) * h, (r * (2.0f * alpha + r) + alpha * sp) * h * h};
}

// log det J of one layer: (D − 1)·log(radial) + log(total).
template <class F>
FLOWVAE_LANE_INLINE F LayerLogDet(const F& r, const F& alpha, const F& sp, const F& h, float d_minus_1) {
  const LayerFactors<F> f = LayerDetFactors(r, alpha, sp, h);
  return d_minus_1 * lanes::Log(f.radial) + lanes::Log(f.total);
}

// Given ∂L/∂logdet (gl) and gd = gᵀ(z − z0) (g = ∂L/∂y of the layer):
// ρ = (∂L/∂r)/r, and ∂L/∂α, ∂L/∂sp (sp = softplus(β̃)); bh = β/(α + r).
template <class F>
struct LayerGrads {
  F rho, g_alpha, g_sp;
};

template <class F>
FLOWVAE_LANE_INLINE LayerGrads<F> LayerBackward(const F& r, const F& alpha, const F& sp, const F& gl, const F& gd,
                                                float dim) {
  const F q = alpha + r;
  const F h = 1.0f / q;
  const F beta = sp - alpha;
  const F inv_n = 1.0f / (r * (2.0f * alpha + r) + alpha * sp);
  const F inv_rs = 1.0f / (r + sp);
  // logdet = (D−1)[log(r+sp) − log q] + log N − 2 log q, N = r(2α + r) + α·sp.
  const F dld_dr = (dim - 1.0f) * inv_rs + 2.0f * q * inv_n - (dim + 1.0f) * h;
  const F dld_dalpha = (2.0f * r + sp) * inv_n - (dim + 1.0f) * h;
  const F dld_dsp = (dim - 1.0f) * inv_rs + alpha * inv_n;
  // βh = (sp − α)/q: ∂/∂r = −βh², ∂/∂α = −(r + sp)h², ∂/∂sp = h.
  const F h2 = h * h;
  const F g_r = gl * dld_dr - gd * beta * h2;
  LayerGrads<F> out;
  out.g_alpha = gl * dld_dalpha - gd * (r + sp) * h2;
  out.g_sp = gl * dld_dsp + gd * h;
  const auto positive = r > 0.0f;
  out.rho = Select(positive, g_r / Select(positive, r, Splat<F>(1.0f)), F{});
  return out;
}

// Σ_d (T[d] − c[d])² over transposed rows.
template <int W>
FLOWVAE_LANE_INLINE typename Vec<W>::F SquaredDistanceLanes(const float* c, const float* T, std::size_t D) {
  using F = typename Vec<W>::F;
  F a0 = F{}, a1 = F{};
  std::size_t d = 0;
  for (; d + 2 <= D; d += 2) {
    const F e0 = Load<F>(T + d * W) - c[d];
    const F e1 = Load<F>(T + (d + 1) * W) - c[d + 1];
    a0 += e0 * e0;
    a1 += e1 * e1;
  }
  if (d < D) {
    const F e0 = Load<F>(T + d * W) - c[d];
    a0 += e0 * e0;
  }
  return a0 + a1;
}

// Partial sums (CT lanes) over d of term(V, d) for V = CM-wide chunks, then
// one CT-wide chunk when CM = 2·CT, then the scalar tail in lane 0; reduced
// across the row group by ReduceRowPartials.
template <int CM, int CT, class Term>
FLOWVAE_LANE_INLINE typename Vec<CT>::F PartialSum(std::size_t n, Term&& term) {
  using FM = typename Vec<CM>::F;
  using FT = typename Vec<CT>::F;
  FM m = FM{};
  std::size_t d = 0;
  for (; d + CM <= n; d += CM) m += term(FM{}, d);
  FT a = Fold<CT>(m);
  if constexpr (CM > CT) {
    if (d + CT <= n) {
      a += term(FT{}, d);
      d += CT;
    }
  }
  for (; d < n; ++d) a[0] += term(0.0f, d);
  return a;
}

// Calls step(V{}, d) over [0, n) with the widest of CM, CT (when CM = 2·CT) and 1 floats that fits.
template <int CM, int CT, class Step>
FLOWVAE_LANE_INLINE void ForChunks(std::size_t n, Step&& step) {
  std::size_t d = 0;
  for (; d + CM <= n; d += CM) step(typename Vec<CM>::F{}, d);
  if constexpr (CM > CT) {
    if (d + CT <= n) {
      step(typename Vec<CT>::F{}, d);
      d += CT;
    }
  }
  for (; d < n; ++d) step(0.0f, d);
}

using ForwardArgs = stack::ForwardArgs<SharedLayers>;
using BackwardArgs = stack::BackwardArgs<SharedLayers>;

// ---- lanes = rows (shared parameters) ----------------------------------------------

// Two row groups run interleaved (stack::kSharedGroups): a layer's chain
// (‖z − z0‖ → √ → 1/(α + r) → z update) is serial within a group.

template <int W>
FLOWVAE_LANE_INLINE std::size_t ForwardSharedLanes(const ForwardArgs& A, std::size_t row_begin, std::size_t row_end) {
  using F = typename Vec<W>::F;
  constexpr int G = kSharedGroups;
  const std::size_t D = A.dim, K = A.layers;
  const float* z0 = A.params;
  const SharedLayers& S = *A.shared;
  const float d_minus_1 = static_cast<float>(D - 1);
  // Per group: zT [D, W]; radii, both det J factors and per-layer log-dets as lanes [K, W].
  const std::size_t per_group = (D + 4 * K) * W;
  float* scratch = ThreadScratch(G * per_group);
  std::size_t bad = 0;
  for (std::size_t r0 = row_begin; r0 < row_end; r0 += G * W) {
    std::size_t rows[G];
    float *zT[G], *r_lanes[G], *radial_factors[G], *total_factors[G], *ld_lanes[G];
    F r2[G], ld_sum[G];
    // log det J = (D − 1)·Σ log((r + sp)h) + Σ log((r(2α + r) + α·sp)h²): one product per kind of factor.
    lanes::LogProduct<F> radial_det[G], total_det[G];
    for (int g = 0; g < G; ++g) {
      const std::size_t first = r0 + g * W;
      rows[g] = lanes::GroupRows<W>(first, row_end);
      zT[g] = scratch + g * per_group;
      r_lanes[g] = zT[g] + D * W;
      radial_factors[g] = r_lanes[g] + K * W;
      total_factors[g] = radial_factors[g] + K * W;
      ld_lanes[g] = total_factors[g] + K * W;
      GatherRows<W>(A.x + first * D, rows[g], D, zT[g]);
      r2[g] = SquaredDistanceLanes<W>(z0, zT[g], D);
      ld_sum[g] = F{};
    }
    for (std::size_t k = 0; k < K; ++k) {
      const F alpha = Splat<F>(S.alpha[k]), sp = Splat<F>(S.sp[k]);
      F bh[G];
      for (int g = 0; g < G; ++g) {
        const F r = lanes::Sqrt(r2[g]);
        const F h = 1.0f / (alpha + r);
        bh[g] = S.beta[k] * h;
        Store(r_lanes[g] + k * W, r);
        if (A.layer_log_det) {
          const F ld = LayerLogDet(r, alpha, sp, h, d_minus_1);
          ld_sum[g] += ld;
          Store(ld_lanes[g] + k * W, ld);
        } else {
          const LayerFactors<F> f = LayerDetFactors(r, alpha, sp, h);
          radial_det[g].Multiply(f.radial);
          total_det[g].Multiply(f.total);
          Store(radial_factors[g] + k * W, f.radial);
          Store(total_factors[g] + k * W, f.total);
        }
      }
      // z += βh (z − z0_k), fused with the next layer's ‖z − z0_{k+1}‖².
      const float* c = z0 + k * D;
      if (k + 1 < K) {
        const float* cn = z0 + (k + 1) * D;
        F acc[G][2] = {};
        std::size_t d = 0;
        for (; d + 2 <= D; d += 2) {
          for (int g = 0; g < G; ++g) {
            for (int j = 0; j < 2; ++j) {
              const F v = Load<F>(zT[g] + (d + j) * W);
              const F n = v + bh[g] * (v - c[d + j]);
              Store(zT[g] + (d + j) * W, n);
              const F e = n - cn[d + j];
              acc[g][j] += e * e;
            }
          }
        }
        for (int g = 0; g < G; ++g) {
          if (d < D) {
            const F v = Load<F>(zT[g] + d * W);
            const F n = v + bh[g] * (v - c[d]);
            Store(zT[g] + d * W, n);
            const F e = n - cn[d];
            acc[g][0] += e * e;
          }
          r2[g] = acc[g][0] + acc[g][1];
        }
      } else {
        for (int g = 0; g < G; ++g) {
          for (std::size_t d = 0; d < D; ++d) {
            const F v = Load<F>(zT[g] + d * W);
            Store(zT[g] + d * W, v + bh[g] * (v - c[d]));
          }
        }
      }
    }
    for (int g = 0; g < G; ++g) {
      if (rows[g] == 0) continue;
      if (!A.layer_log_det)
        ld_sum[g] = d_minus_1 * radial_det[g].Sum(K, radial_factors[g]) + total_det[g].Sum(K, total_factors[g]);
      bad += lanes::StoreGroupOutputs<W>(r_lanes[g], ld_lanes[g], ld_sum[g], zT[g], r0 + g * W, rows[g], D, K, A.stash,
                                         A.layer_log_det, A.log_det, A.y);
    }
  }
  return bad;
}

// partial = [Σ gdiff (K·D) | Σ ∂L/∂α (K) | Σ ∂L/∂sp (K)] over rows [row_begin,
// row_end), with gdiff = ∂L/∂(z − z0) (so ∂L/∂z0 = −Σ gdiff). The z0 sums are
// kept per lane ([K, D, W]) and reduced across lanes at the end.
template <int W>
FLOWVAE_LANE_INLINE std::size_t BackwardSharedLanes(const BackwardArgs& A, std::size_t row_begin, std::size_t row_end,
                                                    double* partial) {
  using F = typename Vec<W>::F;
  const std::size_t D = A.dim, K = A.layers, KD = K * D;
  const float* z0 = A.params;
  const SharedLayers& S = *A.shared;
  float* scratch = ThreadScratch((2 * KD + D + 4 * K) * W);
  float* zs = scratch;                  // [K, D, W]: input of each layer
  float* gT = zs + KD * W;              // [D, W]
  float* acc_z0 = gT + D * W;           // [K, D, W]
  float* bh_lanes = acc_z0 + KD * W;    // [K, W]
  float* acc_alpha = bh_lanes + K * W;  // [K, W]
  float* acc_sp = acc_alpha + K * W;    // [K, W]
  float* r_lanes = acc_sp + K * W;      // [K, W]: stashed radii
  std::fill(acc_z0, acc_z0 + KD * W, 0.0f);
  std::fill(acc_alpha, acc_sp + K * W, 0.0f);
  std::fill(partial, partial + PartialSize(D, K), 0.0);
  // float32 lane sums over at most kFlushRows rows, then added into the float64 partial.
  auto flush = [&]() {
    for (std::size_t i = 0; i < KD; ++i) partial[i] += HorizontalSum(Load<F>(acc_z0 + i * W));
    for (std::size_t k = 0; k < K; ++k) {
      partial[KD + k] += HorizontalSum(Load<F>(acc_alpha + k * W));
      partial[KD + K + k] += HorizontalSum(Load<F>(acc_sp + k * W));
    }
    std::fill(acc_z0, acc_z0 + KD * W, 0.0f);
    std::fill(acc_alpha, acc_sp + K * W, 0.0f);
  };
  const float dim = static_cast<float>(D);
  alignas(64) float lane[W];
  std::size_t bad = 0;
  for (std::size_t r0 = row_begin; r0 < row_end; r0 += W) {
    if (r0 > row_begin && (r0 - row_begin) % kFlushRows == 0) flush();
    const std::size_t rows = std::min<std::size_t>(W, row_end - r0);
    GatherRows<W>(A.saved + r0 * D, rows, D, zs);
    GatherRows<W>(A.dy + r0 * D, rows, D, gT);                // padded lanes: zero gradient, so they add exactly 0
    GatherRows<W>(A.stash + r0 * K, rows, K, r_lanes, 1.0f);  // stashed radii; padded lanes: a harmless 1
    // Rebuild the layer inputs from the stashed radii.
    for (std::size_t k = 0; k < K; ++k) {
      // Same expression as the forward, so the rebuilt inputs match it exactly.
      const F bh = S.beta[k] * (1.0f / (S.alpha[k] + Load<F>(r_lanes + k * W)));
      Store(bh_lanes + k * W, bh);
      if (k + 1 == K) break;
      const float* c = z0 + k * D;
      const float* zk = zs + k * D * W;
      float* zn = zs + (k + 1) * D * W;
      for (std::size_t d = 0; d < D; ++d) {
        const F v = Load<F>(zk + d * W);
        Store(zn + d * W, v + bh * (v - c[d]));
      }
    }
    for (int l = 0; l < W; ++l) lane[l] = static_cast<std::size_t>(l) < rows ? A.d_log_det[r0 + l] : 0.0f;
    const F gl = Load<F>(lane);
    F gd = F{};  // gᵀ(z_k − z0_k) of the current layer
    {
      const float* c = z0 + (K - 1) * D;
      const float* zk = zs + (K - 1) * D * W;
      for (std::size_t d = 0; d < D; ++d) gd += Load<F>(gT + d * W) * (Load<F>(zk + d * W) - c[d]);
    }
    for (std::size_t k = K; k-- > 0;) {
      const LayerGrads<F> lg =
          LayerBackward(Load<F>(r_lanes + k * W), Splat<F>(S.alpha[k]), Splat<F>(S.sp[k]), gl, gd, dim);
      Store(acc_alpha + k * W, Load<F>(acc_alpha + k * W) + lg.g_alpha);
      Store(acc_sp + k * W, Load<F>(acc_sp + k * W) + lg.g_sp);
      const F bh = Load<F>(bh_lanes + k * W);
      const float* c = z0 + k * D;
      const float* zk = zs + k * D * W;
      float* acc = acc_z0 + k * D * W;
      // g_in = g + gdiff, gdiff = βh·g + ρ(z − z0); fused with the next layer's gᵀ(z − z0).
      const float* cp = k > 0 ? z0 + (k - 1) * D : c;
      const float* zp = k > 0 ? zs + (k - 1) * D * W : zk;
      auto step = [&](std::size_t d, F & next_gd) __attribute__((always_inline)) {
        const F g = Load<F>(gT + d * W);
        const F gdiff = bh * g + lg.rho * (Load<F>(zk + d * W) - c[d]);
        const F g_in = g + gdiff;
        Store(gT + d * W, g_in);
        Store(acc + d * W, Load<F>(acc + d * W) + gdiff);
        next_gd += g_in * (Load<F>(zp + d * W) - cp[d]);
      };
      F n0 = F{}, n1 = F{};
      std::size_t d = 0;
      for (; d + 2 <= D; d += 2) {
        step(d, n0);
        step(d + 1, n1);
      }
      if (d < D) step(d, n0);
      gd = n0 + n1;
    }
    bad += CountBadLanes<W>(ScatterRows<W>(gT, rows, D, A.dx + r0 * D), rows);
  }
  flush();
  return bad;
}

// ---- row-major groups (amortized parameters) ------------------------------------------

template <int W, int CM, int C>
FLOWVAE_LANE_INLINE std::size_t ForwardAmortizedRows(const ForwardArgs& A, std::size_t row_begin, std::size_t row_end) {
  using F = typename Vec<W>::F;
  using FC = typename Vec<C>::F;
  const std::size_t D = A.dim, K = A.layers, KD = K * D, P = D + 2;
  const float d_minus_1 = static_cast<float>(D - 1);
  alignas(64) float lane_r2[W], lane_ar[W], lane_br[W], lane_bh[W], lane_out[W];
  FC slot_r2[W];
  float* factors = ThreadScratch(2 * K * W);  // [2, K, W]: both det J factors, for LogProduct
  std::size_t bad = 0;
  for (std::size_t r0 = row_begin; r0 < row_end; r0 += W) {
    const std::size_t rows = std::min<std::size_t>(W, row_end - r0);
    // The next group's parameters (one contiguous block), fetched a slice per layer.
    const std::size_t next_rows = r0 + W < row_end ? std::min<std::size_t>(W, row_end - r0 - W) : 0;
    const float* next_params = next_rows ? A.params + (r0 + W) * K * P : nullptr;
    const float* p0 = A.params + r0 * K * P;
    float* y0 = A.y + r0 * D;
    std::memcpy(y0, A.x + r0 * D, rows * D * sizeof(float));
    for (int g = 0; g < W; ++g) {
      slot_r2[g] = FC{};
      lane_ar[g] = lane_br[g] = 1.0f;  // harmless padding
    }
    F ld_sum = F{};
    lanes::LogProduct<F> radial_det, total_det;
    for (std::size_t k = 0; k < K; ++k) {
      lanes::PrefetchPart(next_params, next_rows * K * P, k, K, false);
      for (std::size_t g = 0; g < rows; ++g) {
        const float* z = y0 + g * D;
        const float* c = p0 + g * K * P + k * D;
        slot_r2[lanes::RowSlot<C>(g)] = PartialSum<CM, C>(
            D, [&](const auto& zero, std::size_t d) __attribute__((always_inline)) {
              using V = std::decay_t<decltype(zero)>;
              const V e = Load<V>(z + d) - Load<V>(c + d);
              return e * e;
            });
        lane_ar[g] = p0[g * K * P + KD + k];
        lane_br[g] = p0[g * K * P + KD + K + k];
      }
      lanes::ReduceRowPartials<W, C>(slot_r2, lane_r2);
      const F alpha = lanes::Softplus(Load<F>(lane_ar));
      const F sp = lanes::Softplus(Load<F>(lane_br));
      const F r = lanes::Sqrt(Load<F>(lane_r2));
      const F h = 1.0f / (alpha + r);
      Store(lane_bh, (sp - alpha) * h);
      Store(lane_out, r);
      for (std::size_t g = 0; g < rows; ++g) A.stash[(r0 + g) * K + k] = lane_out[g];
      if (A.layer_log_det) {
        const F ld = LayerLogDet(r, alpha, sp, h, d_minus_1);
        ld_sum += ld;
        Store(lane_out, ld);
        for (std::size_t g = 0; g < rows; ++g) A.layer_log_det[(r0 + g) * K + k] = lane_out[g];
      } else {
        const LayerFactors<F> f = LayerDetFactors(r, alpha, sp, h);
        radial_det.Multiply(f.radial);
        total_det.Multiply(f.total);
        Store(factors + k * W, f.radial);
        Store(factors + (K + k) * W, f.total);
      }
      for (std::size_t g = 0; g < rows; ++g) {
        float* z = y0 + g * D;
        const float* c = p0 + g * K * P + k * D;
        const float bh = lane_bh[g];
        ForChunks<CM, C>(
            D, [&](const auto& zero, std::size_t d) __attribute__((always_inline)) {
              using V = std::decay_t<decltype(zero)>;
              const V v = Load<V>(z + d);
              Store(z + d, v + bh * (v - Load<V>(c + d)));
            });
      }
    }
    if (!A.layer_log_det) ld_sum = d_minus_1 * radial_det.Sum(K, factors) + total_det.Sum(K, factors + K * W);
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
  const std::size_t D = A.dim, K = A.layers, KD = K * D, P = D + 2;
  float* scratch = ThreadScratch(K * W * D + 6 * K * W + (A.stream_grads ? W * K * P : 0));
  float* zs = scratch;          // [K, W, D]: input of each layer, row-major
  float* r_l = zs + K * W * D;  // [K, W] per-lane layer values
  float* alpha_l = r_l + K * W;
  float* sp_l = alpha_l + K * W;
  float* bh_l = sp_l + K * W;
  float* sig_a_l = bh_l + K * W;
  float* sig_b_l = sig_a_l + K * W;
  float* grad_block = sig_b_l + K * W;  // [W, K·P] when streaming: gradients, copied out once complete
  const float dim = static_cast<float>(D);
  alignas(64) float lane_ar[W], lane_br[W], lane_gd[W], lane_gl[W], lane_rho[W];
  FC slot_gd[W];
  FC probe[W];  // (v − v) summed over every gradient written: 0 while all are finite
  std::size_t bad = 0;
  for (std::size_t r0 = row_begin; r0 < row_end; r0 += W) {
    const std::size_t rows = std::min<std::size_t>(W, row_end - r0);
    const std::size_t next_rows = r0 + W < row_end ? std::min<std::size_t>(W, row_end - r0 - W) : 0;
    const float* next_params = next_rows ? A.params + (r0 + W) * K * P : nullptr;
    const float* next_grads = next_rows && !A.stream_grads ? A.d_params + (r0 + W) * K * P : nullptr;
    const float* p0 = A.params + r0 * K * P;
    float* dp0 = A.stream_grads ? grad_block : A.d_params + r0 * K * P;
    float* g0 = A.dx + r0 * D;
    std::memcpy(g0, A.dy + r0 * D, rows * D * sizeof(float));
    std::memcpy(zs, A.saved + r0 * D, rows * D * sizeof(float));
    for (int g = 0; g < W; ++g) {
      slot_gd[g] = FC{};
      probe[g] = FC{};
    }
    // Per-layer constants of every lane, then the layer inputs (the next
    // group's parameters are fetched a slice per layer meanwhile).
    for (std::size_t k = 0; k < K; ++k) {
      lanes::PrefetchPart(next_params, next_rows * K * P, k, K, false);
      for (int g = 0; g < W; ++g) {
        const bool real = static_cast<std::size_t>(g) < rows;
        const float* p = p0 + (real ? g : 0) * K * P;
        lane_ar[g] = p[KD + k];
        lane_br[g] = p[KD + K + k];
        r_l[k * W + g] = real ? A.stash[(r0 + g) * K + k] : 1.0f;
      }
      F ea, eb;
      const F ar = Load<F>(lane_ar), br = Load<F>(lane_br);
      const F alpha = lanes::Softplus(ar, &ea);
      const F sp = lanes::Softplus(br, &eb);
      Store(alpha_l + k * W, alpha);
      Store(sp_l + k * W, sp);
      Store(sig_a_l + k * W, lanes::SigmoidFromExp(ar, ea));
      Store(sig_b_l + k * W, lanes::SigmoidFromExp(br, eb));
      // Same expression as the forward, so the rebuilt inputs match it exactly.
      Store(bh_l + k * W, (sp - alpha) * (1.0f / (alpha + Load<F>(r_l + k * W))));
      if (k + 1 == K) break;
      for (std::size_t g = 0; g < rows; ++g) {
        const float* z = zs + (k * W + g) * D;
        float* zn = zs + ((k + 1) * W + g) * D;
        const float* c = p0 + g * K * P + k * D;
        const float bh = bh_l[k * W + g];
        ForChunks<CM, C>(
            D, [&](const auto& zero, std::size_t d) __attribute__((always_inline)) {
              using V = std::decay_t<decltype(zero)>;
              const V v = Load<V>(z + d);
              Store(zn + d, v + bh * (v - Load<V>(c + d)));
            });
      }
    }
    for (int g = 0; g < W; ++g) lane_gl[g] = static_cast<std::size_t>(g) < rows ? A.d_log_det[r0 + g] : 0.0f;
    const F gl = Load<F>(lane_gl);
    for (std::size_t k = K; k-- > 0;) {
      lanes::PrefetchPart(next_grads, next_rows * K * P, K - 1 - k, K, true);
      for (std::size_t g = 0; g < rows; ++g) {
        const float* gp = g0 + g * D;
        const float* z = zs + (k * W + g) * D;
        const float* c = p0 + g * K * P + k * D;
        slot_gd[lanes::RowSlot<C>(g)] = PartialSum<CM, C>(
            D, [&](const auto& zero, std::size_t d) __attribute__((always_inline)) {
              using V = std::decay_t<decltype(zero)>;
              return Load<V>(gp + d) * (Load<V>(z + d) - Load<V>(c + d));
            });
      }
      lanes::ReduceRowPartials<W, C>(slot_gd, lane_gd);
      for (std::size_t g = rows; g < static_cast<std::size_t>(W); ++g) lane_gd[g] = 0.0f;
      const LayerGrads<F> lg = LayerBackward(Load<F>(r_l + k * W), Load<F>(alpha_l + k * W), Load<F>(sp_l + k * W), gl,
                                             Load<F>(lane_gd), dim);
      Store(lane_rho, lg.rho);
      Store(lane_ar, lg.g_alpha * Load<F>(sig_a_l + k * W));
      Store(lane_br, lg.g_sp * Load<F>(sig_b_l + k * W));
      for (std::size_t g = 0; g < rows; ++g) {
        float* dp = dp0 + g * K * P;
        dp[KD + k] = lane_ar[g];
        dp[KD + K + k] = lane_br[g];
        float* dz0 = dp + k * D;
        float* gp = g0 + g * D;
        const float* z = zs + (k * W + g) * D;
        const float* c = p0 + g * K * P + k * D;
        const float bh = bh_l[k * W + g], rho = lane_rho[g];
        FC pr = probe[g];
        pr[0] += (lane_ar[g] - lane_ar[g]) + (lane_br[g] - lane_br[g]);
        pr += PartialSum<CM, C>(
            D, [&](const auto& zero, std::size_t d) __attribute__((always_inline)) {
              using V = std::decay_t<decltype(zero)>;
              const V gv = Load<V>(gp + d);
              const V gdiff = bh * gv + rho * (Load<V>(z + d) - Load<V>(c + d));
              Store(gp + d, gv + gdiff);
              Store(dz0 + d, -gdiff);
              return lanes::NonFiniteProbe(gdiff);
            });
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

// The chain rule from the batch sums (BackwardSharedLanes) to z0, α̃, β̃.
void FinalizeShared(const SharedLayers& s, const double* sum, std::size_t D, std::size_t K, float* d_params) {
  const std::size_t KD = K * D;
  for (std::size_t i = 0; i < KD; ++i) d_params[i] = static_cast<float>(d_params[i] - sum[i]);
  for (std::size_t k = 0; k < K; ++k) {
    d_params[KD + k] = static_cast<float>(d_params[KD + k] + sum[KD + k] * s.sig_alpha[k]);
    d_params[KD + K + k] = static_cast<float>(d_params[KD + K + k] + sum[KD + K + k] * s.sig_beta[k]);
  }
}

// The radial family as the shared stack sees it (stack_driver.h).
struct RadialStack {
  using Shared = SharedLayers;
  static Shared& TlsShared() { return tls_shared; }
  static void Prepare(const float* params, std::size_t D, std::size_t K, Shared* s) { PrepareShared(params, D, K, s); }
  static std::size_t ParamSize(std::size_t D) { return D + 2; }  // per layer: z0, α̃, β̃
  static std::size_t PartialSize(std::size_t D, std::size_t K) { return ::flowvae::PartialSize(D, K); }
  // The chain rule needs only what PrepareShared folded in, not the raw parameters.
  static void Finalize(const float* /*params*/, const Shared& s, const double* sums, std::size_t D, std::size_t K,
                       float* d_params) {
    FinalizeShared(s, sums, D, K, d_params);
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
    return BackwardSharedLanes<Isa::kLanes>(a, b, e, partial);
  }
  template <class Isa>
  static FLOWVAE_LANE_INLINE std::size_t BackwardAmortized(const BackwardArgs& a, std::size_t b, std::size_t e) {
    return BackwardAmortizedRows<Isa::kLanes, Isa::kChunk, Isa::kTail>(a, b, e);
  }
};

}  // namespace

std::size_t radial_forward(const float* x, const float* params, bool amortized, float* y, float* log_det,
                           float* layer_log_det, float* stash, std::size_t batch, std::size_t dim, std::size_t layers) {
  return stack::Forward<RadialStack>(x, params, amortized, y, log_det, layer_log_det, stash, batch, dim, layers);
}

std::size_t radial_backward(const float* x, const float* stash, const float* params, bool amortized, const float* dy,
                            const float* d_log_det, float* dx, float* d_params, std::size_t batch, std::size_t dim,
                            std::size_t layers) {
  return stack::Backward<RadialStack>(x, stash, params, amortized, dy, d_log_det, dx, d_params, batch, dim, layers);
}

std::size_t radial_inverse(const float* y, const float* params, bool amortized, float* x, float* log_det,
                           std::size_t batch, std::size_t dim, std::size_t layers) {
  const std::size_t D = dim, K = layers, KD = K * D, P = D + 2;
  return stack::Inverse(y, x, log_det, batch, dim, layers, [&](std::size_t row, double* z, double* log_det_row) {
    const float* p = amortized ? params + row * K * P : params;
    double ld = 0;
    for (std::size_t k = K; k-- > 0;) {
      const float* c = p + k * D;
      const double alpha = SoftplusD(p[KD + k]);
      const double sp = SoftplusD(p[KD + K + k]);
      // ‖y − z0‖ = r (r + sp)/(α + r): the positive root of r² + (sp − ρ) r − ρα = 0.
      double rho2 = 0;
      for (std::size_t d = 0; d < D; ++d) rho2 += (z[d] - c[d]) * (z[d] - c[d]);
      const double rho = std::sqrt(rho2);
      const double b = rho - sp;
      const double root = std::sqrt(b * b + 4 * rho * alpha);
      const double r = b >= 0 ? 0.5 * (b + root) : (2 * rho * alpha) / (root - b);
      const double scale = r + sp > 0 ? (alpha + r) / (r + sp) : 0.0;  // 1/(1 + βh)
      for (std::size_t d = 0; d < D; ++d) z[d] = c[d] + (z[d] - c[d]) * scale;
      ld -= RadialLogDetD(r, alpha, sp, D);
    }
    *log_det_row = ld;
    return true;
  });
}

}  // namespace flowvae
