// Radial flow stacks on the GPU (see flowvae/radial.h for the mathematics and
// layouts, flowvae/cuda/radial.h for the interface).
//
// One warp per row as in planar.cu: rows of up to 256 elements stay in
// registers through all K layers, each ‖z − z0‖² a warp butterfly sum.
// Log-dets use the cancellation-free forms 1 + βh = (r + softplus(β̃))/(α + r)
// and 1 + βh + βh'r = (r(2α + r) + α·softplus(β̃))/(α + r)².
//
// Backward runs the stack forward again from x, keeping every layer's input
// in a per-row scratch [K, D] (each lane reads back only what it wrote), then
// walks the layers in reverse. Shared-parameter gradients go through a
// per-row scratch summed in float64 in a fixed order (column_sums.cuh).
// The inverse is the cpu's closed form in float64.
#include <cuda_runtime.h>

#include <algorithm>

#include "common.cuh"
#include "flow_stack.cuh"
#include "flowvae/cuda/radial.h"

namespace flowvae {
namespace cuda {
namespace {

using detail::DispatchSlots;
using detail::Finite;
using detail::kRowThreads;
using detail::kWarp;
using detail::RowGrid;
using detail::Sigmoid;
using detail::Softplus;
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

// Parameters per layer: z0 [D], α̃, β̃.
Sizes RadialSizes(std::size_t batch, std::size_t dim, std::size_t layers) { return Sizes{batch, dim, layers, dim + 2}; }

// Offsets in a parameter row: z0 [K, D] | α̃ [K] | β̃ [K].
struct Offsets {
  std::size_t z0, alpha, beta;
};
__device__ __forceinline__ Offsets LayerOffsets(std::size_t k, std::size_t D, std::size_t K) {
  return Offsets{k * D, K * D + k, K * D + K + k};
}

// log|det J| of one layer from r, α and sp = softplus(β̃) (any float type).
template <class T>
__device__ __forceinline__ T LayerLogDet(T r, T alpha, T sp, std::size_t dim) {
  const T q = alpha + r;
  return static_cast<T>(dim - 1) * log((r + sp) / q) + log((r * (2 * alpha + r) + alpha * sp) / (q * q));
}

struct ForwardArgs {
  const float* x;
  const float* params;
  float* y;
  float* log_det;
  float* layer_log_det;
  float* stash;
  Sizes s;
  bool amortized;
  unsigned long long* bad;
};

template <int N>
__global__ void __launch_bounds__(kRowThreads) ForwardKernel(ForwardArgs a) {
  const int lane = threadIdx.x % kWarp;
  const std::size_t D = a.s.dim, K = a.s.layers, P = a.s.row_params();
  for (std::size_t row = WarpIndex(); row < a.s.batch; row += WarpCount()) {
    const float* p = a.amortized ? a.params + row * P : a.params;
    float* y = a.y + row * D;
    WarpRow<float, N> z;
    PlaceRow(z, y, lane, D);  // long rows are worked on in place in y
    LoadRow(z, a.x + row * D, lane, D);
    float total = 0.0f;
    for (std::size_t k = 0; k < K; ++k) {
      const Offsets o = LayerOffsets(k, D, K);
      const float* z0 = p + o.z0;
      const float alpha = Softplus(p[o.alpha]);
      const float sp = Softplus(p[o.beta]);
      float r2 = 0.0f;
#pragma unroll
      for (int i = 0; i < z.size(); ++i) {
        const std::size_t d = lane + kWarp * i;
        if (d < D) {
          const float diff = z[i] - z0[d];
          r2 += diff * diff;
        }
      }
      const float r = sqrtf(WarpSum(r2));
      const float bh = (sp - alpha) / (alpha + r);
#pragma unroll
      for (int i = 0; i < z.size(); ++i) {
        const std::size_t d = lane + kWarp * i;
        if (d < D) z[i] += bh * (z[i] - z0[d]);
      }
      const float ld = LayerLogDet(r, alpha, sp, D);
      total += ld;
      RecordLayer(a.stash, a.layer_log_det, row, K, k, r, ld, lane);
    }
    FinishForwardRow(z, total, y, lane, D, a.log_det + row, a.bad);
  }
}

struct BackwardArgs {
  const float* x;
  const float* params;
  const float* dy;
  const float* d_log_det;
  float* dx;
  float* grad_rows;  // amortized d_params, or the shared scratch (row `row - row_begin`)
  float* inputs;     // scratch [rows of this launch, K, D]: every layer's input
  std::size_t row_begin, row_end;
  Sizes s;
  bool amortized;
  unsigned long long* bad;
};

template <int N>
__global__ void __launch_bounds__(kRowThreads) BackwardKernel(BackwardArgs a) {
  const int lane = threadIdx.x % kWarp;
  const std::size_t D = a.s.dim, K = a.s.layers, P = a.s.row_params();
  for (std::size_t row = a.row_begin + WarpIndex(); row < a.row_end; row += WarpCount()) {
    const float* p = a.amortized ? a.params + row * P : a.params;
    float* out = a.grad_rows + (a.amortized ? row : row - a.row_begin) * P;
    float* zs = a.inputs + (row - a.row_begin) * K * D;
    float* dx = a.dx + row * D;
    // Forward again, storing each layer's input.
    {
      WarpRow<float, N> z;
      PlaceRow(z, dx, lane, D);  // dx is free until the reverse pass
      LoadRow(z, a.x + row * D, lane, D);
      for (std::size_t k = 0; k < K; ++k) {
        const Offsets o = LayerOffsets(k, D, K);
        const float* z0 = p + o.z0;
        float r2 = 0.0f;
#pragma unroll
        for (int i = 0; i < z.size(); ++i) {
          const std::size_t d = lane + kWarp * i;
          if (d < D) {
            zs[k * D + d] = z[i];
            const float diff = z[i] - z0[d];
            r2 += diff * diff;
          }
        }
        if (k + 1 == K) break;  // the last layer's output is not needed
        const float alpha = Softplus(p[o.alpha]);
        const float bh = (Softplus(p[o.beta]) - alpha) / (alpha + sqrtf(WarpSum(r2)));
#pragma unroll
        for (int i = 0; i < z.size(); ++i) {
          const std::size_t d = lane + kWarp * i;
          if (d < D) z[i] += bh * (z[i] - z0[d]);
        }
      }
    }
    WarpRow<float, N> g;
    PlaceRow(g, dx, lane, D);  // ∂L/∂z is carried in dx
    LoadRow(g, a.dy + row * D, lane, D);
    const float gl = a.d_log_det[row];
    const float dm1 = static_cast<float>(D - 1), dp1 = static_cast<float>(D + 1);
    bool bad_params = false;
    for (std::size_t k = K; k-- > 0;) {
      const Offsets o = LayerOffsets(k, D, K);
      const float* z0 = p + o.z0;
      const float alpha = Softplus(p[o.alpha]);
      const float sp = Softplus(p[o.beta]);
      const float beta = sp - alpha;
      float r2 = 0.0f, gd = 0.0f;  // ‖z − z0‖², gᵀ(z − z0)
#pragma unroll
      for (int i = 0; i < g.size(); ++i) {
        const std::size_t d = lane + kWarp * i;
        if (d < D) {
          const float diff = zs[k * D + d] - z0[d];
          r2 += diff * diff;
          gd += g[i] * diff;
        }
      }
      const float r = sqrtf(WarpSum(r2));
      gd = WarpSum(gd);
      const float q = alpha + r;
      const float h = 1.0f / q;
      const float n = r * (2.0f * alpha + r) + alpha * sp;
      // logdet = (D−1)[log(r + sp) − log q] + log n − 2 log q
      const float dld_r = dm1 / (r + sp) + 2.0f * q / n - dp1 * h;
      const float dld_alpha = (2.0f * r + sp) / n - dp1 * h;
      const float dld_sp = dm1 / (r + sp) + alpha / n;
      // βh = (sp − α)/q
      const float g_r = gl * dld_r - gd * beta * h * h;
      const float g_alpha = gl * dld_alpha - gd * (r + sp) * h * h;
      const float g_sp = gl * dld_sp + gd * h;
      const float rho = r > 0.0f ? g_r / r : 0.0f;
      const float bh = beta * h;
#pragma unroll
      for (int i = 0; i < g.size(); ++i) {
        const std::size_t d = lane + kWarp * i;
        if (d < D) {
          const float gdiff = bh * g[i] + rho * (zs[k * D + d] - z0[d]);
          out[o.z0 + d] = -gdiff;
          bad_params = bad_params || !Finite(gdiff);
          g[i] += gdiff;
        }
      }
      if (lane == 0) {
        const float da = g_alpha * Sigmoid(p[o.alpha]);
        const float db = g_sp * Sigmoid(p[o.beta]);
        out[o.alpha] = da;
        out[o.beta] = db;
        bad_params = bad_params || !Finite(da) || !Finite(db);
      }
    }
    const bool bad = StoreRow(g, dx, lane, D) || (a.amortized && bad_params);
    CountBadRow(bad, lane, a.bad);
  }
}

struct InverseArgs {
  const float* y;
  const float* params;
  float* x;
  float* log_det;
  double* z_scratch;  // [batch, D] for N == 0
  Sizes s;
  bool amortized;
  unsigned long long* bad;
};

template <int N>
__global__ void __launch_bounds__(kRowThreads) InverseKernel(InverseArgs a) {
  const int lane = threadIdx.x % kWarp;
  const std::size_t D = a.s.dim, K = a.s.layers, P = a.s.row_params();
  for (std::size_t row = WarpIndex(); row < a.s.batch; row += WarpCount()) {
    const float* p = a.amortized ? a.params + row * P : a.params;
    WarpRow<double, N> z;
    PlaceRow(z, a.z_scratch + row * D, lane, D);
    LoadRow(z, a.y + row * D, lane, D);
    double ld = 0;
    for (std::size_t k = K; k-- > 0;) {
      const Offsets o = LayerOffsets(k, D, K);
      const float* z0 = p + o.z0;
      const double alpha = Softplus(static_cast<double>(p[o.alpha]));
      const double sp = Softplus(static_cast<double>(p[o.beta]));
      // ‖y − z0‖ = r (r + sp)/(α + r): r is the positive root of r² + (sp − ρ) r − ρα = 0.
      double rho2 = 0;
#pragma unroll
      for (int i = 0; i < z.size(); ++i) {
        const std::size_t d = lane + kWarp * i;
        if (d < D) rho2 += (z[i] - z0[d]) * (z[i] - z0[d]);
      }
      const double rho = sqrt(WarpSum(rho2));
      const double b = rho - sp;
      const double root = sqrt(b * b + 4 * rho * alpha);
      const double r = b >= 0 ? 0.5 * (b + root) : (2 * rho * alpha) / (root - b);
      const double scale = r + sp > 0 ? (alpha + r) / (r + sp) : 0.0;  // 1/(1 + βh)
#pragma unroll
      for (int i = 0; i < z.size(); ++i) {
        const std::size_t d = lane + kWarp * i;
        if (d < D) z[i] = z0[d] + (z[i] - z0[d]) * scale;
      }
      ld -= LayerLogDet(r, alpha, sp, D);
    }
    FinishInverseRow(z, true, ld, a.x + row * D, lane, D, a.log_det + row, a.bad);
  }
}

}  // namespace

void radial_forward(const float* x, const float* params, bool amortized, float* y, float* log_det, float* layer_log_det,
                    float* stash, std::size_t batch, std::size_t dim, std::size_t layers, unsigned long long* bad) {
  if (batch == 0) return;
  const ForwardArgs args{x, params, y, log_det, layer_log_det, stash, RadialSizes(batch, dim, layers), amortized, bad};
  DispatchSlots(dim, [&](auto slots) {
    ForwardKernel<decltype(slots)::value><<<RowGrid(batch), kRowThreads, 0, stream()>>>(args);
  });
  check_launch("radial_forward");
}

void radial_backward(const float* x, const float* stash, const float* params, bool amortized, const float* dy,
                     const float* d_log_det, float* dx, float* d_params, std::size_t batch, std::size_t dim,
                     std::size_t layers, unsigned long long* bad) {
  (void)stash;  // the radii are recomputed from the stored layer inputs, as the reference does
  if (batch == 0) return;
  const Sizes s = RadialSizes(batch, dim, layers);
  // Each launch's rows keep every layer's input in the row scratch [rows, K, D].
  stack::BackwardInChunks(
      s, amortized, layers * dim, d_params, "radial_backward_sum",
      [&](std::size_t r0, std::size_t r1, float* grad_rows, float* inputs) {
        const BackwardArgs args{x, params, dy, d_log_det, dx, grad_rows, inputs, r0, r1, s, amortized, bad};
        DispatchSlots(dim, [&](auto slots) {
          BackwardKernel<decltype(slots)::value><<<RowGrid(r1 - r0), kRowThreads, 0, stream()>>>(args);
        });
        check_launch("radial_backward");
      });
}

void radial_inverse(const float* y, const float* params, bool amortized, float* x, float* log_det, std::size_t batch,
                    std::size_t dim, std::size_t layers, unsigned long long* bad) {
  if (batch == 0) return;
  DeviceBuffer<double> z_scratch(detail::SlotsFor(dim) == 0 ? batch * dim : 0);
  const InverseArgs args{y, params, x, log_det, z_scratch.get(), RadialSizes(batch, dim, layers), amortized, bad};
  DispatchSlots(dim, [&](auto slots) {
    InverseKernel<decltype(slots)::value><<<RowGrid(batch), kRowThreads, 0, stream()>>>(args);
  });
  check_launch("radial_inverse");
}

}  // namespace cuda
}  // namespace flowvae
