// Planar flow stacks on the GPU (see flowvae/planar.h for the mathematics and
// layouts, flowvae/cuda/planar.h for the interface).
//
// One warp per row, the row spread over the lanes (WarpRow): up to 256
// elements stay in registers through all K layers, each layer's wᵀz a warp
// butterfly sum; longer rows work in a global-memory row instead. Shared
// parameters are prepared once per call (û, softplus terms, sigmoids, in
// float64 as on the cpu) by PrepareKernel; amortized rows derive them from
// their own parameters in float32, as the cpu's amortized path does.
//
// Backward walks the layers in reverse, rebuilding each layer's input from
// its output (z_k = z_{k+1} − t_k û_k, t_k from the stashed pre-activation).
// Amortized rows write their own parameter gradients; shared ones write a
// per-row gradient into a scratch that column_sums.cuh adds up in float64
// in a fixed order (deterministic, no atomics).
//
// The inverse solves each layer's scalar equation along w in float64 by the
// cpu's safeguarded Newton iteration, every lane redundantly (no divergence).
#include <cuda_runtime.h>

#include <algorithm>

#include "common.cuh"
#include "flow_stack.cuh"
#include "flowvae/cuda/planar.h"

namespace flowvae {
namespace cuda {
namespace {

using detail::Finite;
using detail::kRowThreads;
using detail::kWarp;
using detail::RowGrid;
using detail::WarpCount;
using detail::WarpIndex;
using detail::WarpRow;
using detail::WarpSum;
using stack::CountBadRow;
using stack::FinishForwardRow;
using stack::FinishInverseRow;
using stack::LoadRow;
using stack::PlaceRow;
using stack::RecordLayer;
using stack::Sizes;
using stack::StoreRow;

// Constants of one layer derived from (u, w).
struct Layer {
  float c;             // û = u + c·w
  float sp;            // 1 + wᵀû = softplus(wᵀu), or 1 when ‖w‖ = 0
  float sig, sig_neg;  // sigmoid(±wᵀu)
  float inv_wn2;       // 1/‖w‖² (0 when ‖w‖ = 0)
  float has_w;         // 1 when ‖w‖ > 0, else 0
};

// Float64 constants for the inverse.
struct LayerD {
  double c, sp;
};

// Shared parameters, prepared once per call.
struct Prepared {
  const Layer* layers;     // [K]
  const float* u_hat;      // [K, D]
  const LayerD* layers_d;  // [K]
  const double* u_hat_d;   // [K, D]
};

// Parameters per layer: u [D], w [D], b.
Sizes PlanarSizes(std::size_t batch, std::size_t dim, std::size_t layers) {
  return Sizes{batch, dim, layers, 2 * dim + 1};
}

// tanh(a) and sech²(a) = 1 − tanh²(a), both to full relative precision: for
// |a| < 0.625 sech² = 1 − t² does not cancel; beyond, 4e/(1 + e)² with
// e = e^(−2|a|) does not either (as lane_math.h's TanhSech2 on the cpu).
__device__ __forceinline__ void TanhSech2(float a, float* t, float* s) {
  *t = tanhf(a);
  if (fabsf(a) < 0.625f) {
    *s = 1.0f - *t * *t;
  } else {
    const float e = expf(-2.0f * fabsf(a));
    const float inv = 1.0f / (1.0f + e);
    *s = 4.0f * e * inv * inv;
  }
}

// The layer constants from wᵀu and ‖w‖² (float32, as the cpu's amortized path).
__device__ __forceinline__ Layer Reparametrize(float wu, float wn2) {
  const float e = expf(-fabsf(wu));
  const float tail = log1pf(e);
  const bool has_w = wn2 > 0.0f;
  Layer l;
  l.c = has_w ? (fmaxf(-wu, 0.0f) + tail - 1.0f) / wn2 : 0.0f;
  l.sp = has_w ? fmaxf(wu, 0.0f) + tail : 1.0f;
  l.sig = wu >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
  l.sig_neg = wu >= 0.0f ? e / (1.0f + e) : 1.0f / (1.0f + e);
  l.inv_wn2 = has_w ? 1.0f / wn2 : 0.0f;
  l.has_w = has_w ? 1.0f : 0.0f;
  return l;
}

// One warp per layer: the constants of shared parameters in float64 (as the cpu's PrepareShared).
__global__ void PrepareKernel(const float* params, Sizes s, Layer* layers, float* u_hat, LayerD* layers_d,
                              double* u_hat_d) {
  const int lane = threadIdx.x % kWarp;
  const std::size_t D = s.dim, K = s.layers, KD = K * D;
  for (std::size_t k = WarpIndex(); k < K; k += WarpCount()) {
    const float* u = params + k * D;
    const float* w = params + KD + k * D;
    double wu = 0, wn2 = 0;
    for (std::size_t d = lane; d < D; d += kWarp) {
      wu += static_cast<double>(w[d]) * u[d];
      wn2 += static_cast<double>(w[d]) * w[d];
    }
    wu = WarpSum(wu);
    wn2 = WarpSum(wn2);
    const double tail = log1p(exp(-fabs(wu)));
    const double sp = fmax(wu, 0.0) + tail;       // softplus(wᵀu) = 1 + m(wᵀu)
    const double sp_neg = fmax(-wu, 0.0) + tail;  // softplus(−wᵀu) = m(wᵀu) − wᵀu + 1
    const bool has_w = wn2 > 0;
    const double c = has_w ? (sp_neg - 1) / wn2 : 0.0;
    const double sp_eff = has_w ? sp : 1.0;
    for (std::size_t d = lane; d < D; d += kWarp) {
      const double uh = u[d] + c * w[d];
      u_hat_d[k * D + d] = uh;
      u_hat[k * D + d] = static_cast<float>(uh);
    }
    if (lane == 0) {
      const double e = exp(-fabs(wu));
      const double sig = wu >= 0 ? 1 / (1 + e) : e / (1 + e);
      const double sig_neg = wu >= 0 ? e / (1 + e) : 1 / (1 + e);
      layers[k] = Layer{static_cast<float>(c),
                        static_cast<float>(sp_eff),
                        static_cast<float>(sig),
                        static_cast<float>(sig_neg),
                        has_w ? static_cast<float>(1 / wn2) : 0.0f,
                        has_w ? 1.0f : 0.0f};
      layers_d[k] = LayerD{c, sp_eff};
    }
  }
}

struct ForwardArgs {
  const float* x;
  const float* params;
  float* y;
  float* log_det;
  float* layer_log_det;
  float* stash;
  Sizes s;
  Prepared shared;  // unused when amortized
  unsigned long long* bad;
};

template <int N, bool kAmortized>
__global__ void __launch_bounds__(kRowThreads) ForwardKernel(ForwardArgs a) {
  const int lane = threadIdx.x % kWarp;
  const std::size_t D = a.s.dim, K = a.s.layers, KD = K * D, P = a.s.row_params();
  for (std::size_t row = WarpIndex(); row < a.s.batch; row += WarpCount()) {
    const float* p = kAmortized ? a.params + row * P : a.params;
    float* y = a.y + row * D;
    WarpRow<float, N> z;
    PlaceRow(z, y, lane, D);  // long rows are worked on in place in y
    LoadRow(z, a.x + row * D, lane, D);
    float total = 0.0f;
    for (std::size_t k = 0; k < K; ++k) {
      const float* u = p + k * D;
      const float* w = p + KD + k * D;
      Layer layer;
      if constexpr (kAmortized) {
        float wu = 0.0f, wn2 = 0.0f;
        for (std::size_t d = lane; d < D; d += kWarp) {
          wu += w[d] * u[d];
          wn2 += w[d] * w[d];
        }
        layer = Reparametrize(WarpSum(wu), WarpSum(wn2));
      } else {
        layer = a.shared.layers[k];
      }
      float dot = 0.0f;
#pragma unroll
      for (int i = 0; i < z.size(); ++i) {
        const std::size_t d = lane + kWarp * i;
        if (d < D) dot += w[d] * z[i];
      }
      const float pre = WarpSum(dot) + p[2 * KD + k];
      float t, sech2;
      TanhSech2(pre, &t, &sech2);
      // 1 + sech²·m written as t² + sech²·(1 + m): no cancellation as m → −1.
      const float ld = logf(t * t + sech2 * layer.sp);
#pragma unroll
      for (int i = 0; i < z.size(); ++i) {
        const std::size_t d = lane + kWarp * i;
        if (d < D) z[i] += t * (kAmortized ? u[d] + layer.c * w[d] : a.shared.u_hat[k * D + d]);
      }
      total += ld;
      RecordLayer(a.stash, a.layer_log_det, row, K, k, pre, ld, lane);
    }
    FinishForwardRow(z, total, y, lane, D, a.log_det + row, a.bad);
  }
}

struct BackwardArgs {
  const float* y;
  const float* stash;
  const float* params;
  const float* dy;
  const float* d_log_det;
  float* dx;
  // Per-row parameter gradients: amortized d_params, or the shared scratch
  // (row `row - row_begin`).
  float* grad_rows;
  float* z_scratch;  // [rows of this launch, D] for N == 0
  std::size_t row_begin, row_end;
  Sizes s;
  Prepared shared;
  unsigned long long* bad;
};

template <int N, bool kAmortized>
__global__ void __launch_bounds__(kRowThreads) BackwardKernel(BackwardArgs a) {
  const int lane = threadIdx.x % kWarp;
  const std::size_t D = a.s.dim, K = a.s.layers, KD = K * D, P = a.s.row_params();
  for (std::size_t row = a.row_begin + WarpIndex(); row < a.row_end; row += WarpCount()) {
    const float* p = kAmortized ? a.params + row * P : a.params;
    float* out = a.grad_rows + (kAmortized ? row : row - a.row_begin) * P;
    float* dx = a.dx + row * D;
    WarpRow<float, N> z, g;
    PlaceRow(z, a.z_scratch + (row - a.row_begin) * D, lane, D);
    PlaceRow(g, dx, lane, D);  // ∂L/∂z is carried in dx
    LoadRow(z, a.y + row * D, lane, D);
    LoadRow(g, a.dy + row * D, lane, D);
    const float gl = a.d_log_det[row];
    bool bad_params = false;
    for (std::size_t k = K; k-- > 0;) {
      const float* u = p + k * D;
      const float* w = p + KD + k * D;
      Layer layer;
      if constexpr (kAmortized) {
        float wu = 0.0f, wn2 = 0.0f;
        for (std::size_t d = lane; d < D; d += kWarp) {
          wu += w[d] * u[d];
          wn2 += w[d] * w[d];
        }
        layer = Reparametrize(WarpSum(wu), WarpSum(wn2));
      } else {
        layer = a.shared.layers[k];
      }
      float t, sech2;
      TanhSech2(a.stash[row * K + k], &t, &sech2);
      float gyu = 0.0f, gw = 0.0f;
#pragma unroll
      for (int i = 0; i < z.size(); ++i) {
        const std::size_t d = lane + kWarp * i;
        if (d < D) {
          const float uh = kAmortized ? u[d] + layer.c * w[d] : a.shared.u_hat[k * D + d];
          z[i] -= t * uh;  // this layer's input
          gyu += g[i] * uh;
          gw += g[i] * w[d];
        }
      }
      gyu = WarpSum(gyu);
      gw = WarpSum(gw);
      const float det = t * t + sech2 * layer.sp;
      const float ga = (gyu - 2.0f * gl * t * (layer.sp - 1.0f) / det) * sech2;  // ∂L/∂a
      const float gsp = gl * sech2 / det;                                        // ∂L/∂sp
      const float gc = t * gw;                                                   // ∂L/∂c
      // c = (softplus(−wᵀu) − 1)/‖w‖², sp = softplus(wᵀu); both leave the graph when ‖w‖ = 0.
      const bool has_w = layer.has_w != 0.0f;
      const float gwu = has_w ? gsp * layer.sig - gc * layer.sig_neg * layer.inv_wn2 : 0.0f;
      const float gwn2 = has_w ? -gc * layer.c * layer.inv_wn2 : 0.0f;
#pragma unroll
      for (int i = 0; i < z.size(); ++i) {
        const std::size_t d = lane + kWarp * i;
        if (d < D) {
          const float du = t * g[i] + gwu * w[d];
          const float dw = ga * z[i] + layer.c * t * g[i] + gwu * u[d] + 2.0f * gwn2 * w[d];
          out[k * D + d] = du;
          out[KD + k * D + d] = dw;
          bad_params = bad_params || !Finite(du) || !Finite(dw);
          g[i] += ga * w[d];
        }
      }
      if (lane == 0) {
        out[2 * KD + k] = ga;
        bad_params = bad_params || !Finite(ga);
      }
    }
    const bool bad = StoreRow(g, dx, lane, D) || (kAmortized && bad_params);
    CountBadRow(bad, lane, a.bad);
  }
}

// Solves α + m·tanh(α + b) = target for α (monotone since m > −1): Newton
// steps kept inside a shrinking bracket, bisection when a step leaves it
// (native/cpu/planar.cc's SolveAlongW).
__device__ bool SolveAlongW(double target, double m, double b, double* alpha_out) {
  if (!isfinite(target) || !isfinite(m) || !isfinite(b)) return false;
  double lo = target - fabs(m), hi = target + fabs(m);
  double alpha = fmin(fmax(target - m * tanh(target + b), lo), hi);
  const double scale = 1 + fabs(target) + fabs(m);
  double f = 0;
  for (int it = 0; it < 200; ++it) {
    const double th = tanh(alpha + b);
    f = alpha + m * th - target;
    if (fabs(f) <= 1e-13 * scale) break;
    if (f > 0)
      hi = alpha;
    else
      lo = alpha;
    const double slope = 1 + m * (1 - th * th);
    double next = alpha - f / slope;
    if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
    if (next == alpha) break;
    alpha = next;
  }
  *alpha_out = alpha;
  return fabs(f) <= 1e-6 * scale;
}

__device__ __forceinline__ double SoftplusD(double x) { return fmax(x, 0.0) + log1p(exp(-fabs(x))); }

struct InverseArgs {
  const float* y;
  const float* params;
  float* x;
  float* log_det;
  double* z_scratch;  // [batch, D] for N == 0
  Sizes s;
  Prepared shared;
  unsigned long long* bad;
};

template <int N, bool kAmortized>
__global__ void __launch_bounds__(kRowThreads) InverseKernel(InverseArgs a) {
  const int lane = threadIdx.x % kWarp;
  const std::size_t D = a.s.dim, K = a.s.layers, KD = K * D, P = a.s.row_params();
  for (std::size_t row = WarpIndex(); row < a.s.batch; row += WarpCount()) {
    const float* p = kAmortized ? a.params + row * P : a.params;
    WarpRow<double, N> z;
    PlaceRow(z, a.z_scratch + row * D, lane, D);
    LoadRow(z, a.y + row * D, lane, D);
    double ld = 0;
    bool ok = true;
    for (std::size_t k = K; k-- > 0 && ok;) {
      const float* u = p + k * D;
      const float* w = p + KD + k * D;
      const double b = p[2 * KD + k];
      double c, sp;
      if constexpr (kAmortized) {
        double wu = 0, wn2 = 0;
        for (std::size_t d = lane; d < D; d += kWarp) {
          wu += static_cast<double>(w[d]) * u[d];
          wn2 += static_cast<double>(w[d]) * w[d];
        }
        wu = WarpSum(wu);
        wn2 = WarpSum(wn2);
        const bool has_w = wn2 > 0;
        c = has_w ? (SoftplusD(-wu) - 1) / wn2 : 0.0;
        sp = has_w ? SoftplusD(wu) : 1.0;
      } else {
        c = a.shared.layers_d[k].c;
        sp = a.shared.layers_d[k].sp;
      }
      double wy = 0;
#pragma unroll
      for (int i = 0; i < z.size(); ++i) {
        const std::size_t d = lane + kWarp * i;
        if (d < D) wy += static_cast<double>(w[d]) * z[i];
      }
      wy = WarpSum(wy);
      double alpha = nan("");
      ok = SolveAlongW(wy, sp - 1, b, &alpha);
      const double t = tanh(alpha + b);
#pragma unroll
      for (int i = 0; i < z.size(); ++i) {
        const std::size_t d = lane + kWarp * i;
        if (d < D) z[i] -= (kAmortized ? u[d] + c * w[d] : a.shared.u_hat_d[k * D + d]) * t;
      }
      // log(1 + (1 − tanh²)·m) as log(tanh² + sech²·sp), sp = 1 + m.
      const double ch = cosh(alpha + b);
      ld -= log(t * t + sp / (ch * ch));
    }
    FinishInverseRow(z, ok, ld, a.x + row * D, lane, D, a.log_det + row, a.bad);
  }
}

// Device memory for the prepared shared constants.
struct PreparedBuffers {
  DeviceBuffer<Layer> layers;
  DeviceBuffer<float> u_hat;
  DeviceBuffer<LayerD> layers_d;
  DeviceBuffer<double> u_hat_d;
  Prepared view() const { return Prepared{layers.get(), u_hat.get(), layers_d.get(), u_hat_d.get()}; }
};

PreparedBuffers Prepare(const float* params, const Sizes& s) {
  PreparedBuffers b{DeviceBuffer<Layer>(s.layers), DeviceBuffer<float>(s.layers * s.dim),
                    DeviceBuffer<LayerD>(s.layers), DeviceBuffer<double>(s.layers * s.dim)};
  PrepareKernel<<<detail::GridFor(s.layers, detail::kRowsPerBlock), kRowThreads, 0, stream()>>>(
      params, s, b.layers.get(), b.u_hat.get(), b.layers_d.get(), b.u_hat_d.get());
  check_launch("planar_prepare");
  return b;
}

}  // namespace

void planar_forward(const float* x, const float* params, bool amortized, float* y, float* log_det, float* layer_log_det,
                    float* stash, std::size_t batch, std::size_t dim, std::size_t layers, unsigned long long* bad) {
  if (batch == 0) return;
  const Sizes s = PlanarSizes(batch, dim, layers);
  PreparedBuffers prepared;
  if (!amortized) prepared = Prepare(params, s);
  const ForwardArgs args{x, params, y, log_det, layer_log_det, stash, s, prepared.view(), bad};
  stack::DispatchRows(dim, amortized, [&](auto slots, auto amortized_rows) {
    ForwardKernel<decltype(slots)::value, decltype(amortized_rows)::value>
        <<<RowGrid(batch), kRowThreads, 0, stream()>>>(args);
  });
  check_launch("planar_forward");
}

void planar_backward(const float* y, const float* stash, const float* params, bool amortized, const float* dy,
                     const float* d_log_det, float* dx, float* d_params, std::size_t batch, std::size_t dim,
                     std::size_t layers, unsigned long long* bad) {
  if (batch == 0) return;
  const Sizes s = PlanarSizes(batch, dim, layers);
  PreparedBuffers prepared;
  if (!amortized) prepared = Prepare(params, s);
  // Long rows rebuild each layer's input in the row scratch [rows, D].
  const std::size_t row_scratch = detail::SlotsFor(dim) == 0 ? dim : 0;
  stack::BackwardInChunks(s, amortized, row_scratch, d_params, "planar_backward_sum",
                          [&](std::size_t r0, std::size_t r1, float* grad_rows, float* z_scratch) {
                            const BackwardArgs args{y,         stash, params, dy, d_log_det,       dx, grad_rows,
                                                    z_scratch, r0,    r1,     s,  prepared.view(), bad};
                            stack::DispatchRows(dim, amortized, [&](auto slots, auto amortized_rows) {
                              BackwardKernel<decltype(slots)::value, decltype(amortized_rows)::value>
                                  <<<RowGrid(r1 - r0), kRowThreads, 0, stream()>>>(args);
                            });
                            check_launch("planar_backward");
                          });
}

void planar_inverse(const float* y, const float* params, bool amortized, float* x, float* log_det, std::size_t batch,
                    std::size_t dim, std::size_t layers, unsigned long long* bad) {
  if (batch == 0) return;
  const Sizes s = PlanarSizes(batch, dim, layers);
  PreparedBuffers prepared;
  if (!amortized) prepared = Prepare(params, s);
  DeviceBuffer<double> z_scratch(detail::SlotsFor(dim) == 0 ? batch * dim : 0);
  const InverseArgs args{y, params, x, log_det, z_scratch.get(), s, prepared.view(), bad};
  stack::DispatchRows(dim, amortized, [&](auto slots, auto amortized_rows) {
    InverseKernel<decltype(slots)::value, decltype(amortized_rows)::value>
        <<<RowGrid(batch), kRowThreads, 0, stream()>>>(args);
  });
  check_launch("planar_inverse");
}

}  // namespace cuda
}  // namespace flowvae
