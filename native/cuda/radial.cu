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

#include "column_sums.cuh"
#include "common.cuh"
#include "flowvae/cuda/radial.h"

namespace flowvae {
namespace cuda {
namespace {

using detail::DispatchSlots;
using detail::Finite;
using detail::kRowThreads;
using detail::kWarp;
using detail::LaneCount;
using detail::RowGrid;
using detail::Sigmoid;
using detail::Softplus;
using detail::WarpAny;
using detail::WarpCount;
using detail::WarpIndex;
using detail::WarpRow;
using detail::WarpSum;

struct Sizes {
  std::size_t batch, dim, layers;
  __host__ __device__ std::size_t row_params() const { return layers * (dim + 2); }
};

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
    if constexpr (N == 0) {
      z.mem = y + lane;  // long rows are worked on in place in y
      z.count = LaneCount(D);
    }
#pragma unroll
    for (int i = 0; i < z.size(); ++i) {
      const std::size_t d = lane + kWarp * i;
      if (d < D) z[i] = a.x[row * D + d];
      else if constexpr (N > 0) z[i] = 0.0f;
    }
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
      if (lane == 0) {
        a.stash[row * K + k] = r;
        if (a.layer_log_det) a.layer_log_det[row * K + k] = ld;
      }
    }
    bool bad = !Finite(total);
#pragma unroll
    for (int i = 0; i < z.size(); ++i) {
      const std::size_t d = lane + kWarp * i;
      if (d < D) {
        if constexpr (N > 0) y[d] = z[i];
        bad = bad || !Finite(z[i]);
      }
    }
    bad = WarpAny(bad);
    if (lane == 0) {
      a.log_det[row] = total;
      if (bad) atomicAdd(a.bad, 1ull);
    }
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
      if constexpr (N == 0) {
        z.mem = dx + lane;  // dx is free until the reverse pass
        z.count = LaneCount(D);
      }
#pragma unroll
      for (int i = 0; i < z.size(); ++i) {
        const std::size_t d = lane + kWarp * i;
        if (d < D) z[i] = a.x[row * D + d];
        else if constexpr (N > 0) z[i] = 0.0f;
      }
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
    if constexpr (N == 0) {
      g.mem = dx + lane;  // ∂L/∂z is carried in dx
      g.count = LaneCount(D);
    }
#pragma unroll
    for (int i = 0; i < g.size(); ++i) {
      const std::size_t d = lane + kWarp * i;
      if (d < D) g[i] = a.dy[row * D + d];
      else if constexpr (N > 0) g[i] = 0.0f;
    }
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
    bool bad = a.amortized && bad_params;
#pragma unroll
    for (int i = 0; i < g.size(); ++i) {
      const std::size_t d = lane + kWarp * i;
      if (d < D) {
        if constexpr (N > 0) dx[d] = g[i];
        bad = bad || !Finite(g[i]);
      }
    }
    bad = WarpAny(bad);
    if (lane == 0 && bad) atomicAdd(a.bad, 1ull);
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
    if constexpr (N == 0) {
      z.mem = a.z_scratch + row * D + lane;
      z.count = LaneCount(D);
    }
#pragma unroll
    for (int i = 0; i < z.size(); ++i) {
      const std::size_t d = lane + kWarp * i;
      if (d < D) z[i] = a.y[row * D + d];
      else if constexpr (N > 0) z[i] = 0.0;
    }
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
    bool finite = isfinite(ld);
#pragma unroll
    for (int i = 0; i < z.size(); ++i) {
      const std::size_t d = lane + kWarp * i;
      if (d < D) {
        const float v = static_cast<float>(z[i]);
        a.x[row * D + d] = v;
        finite = finite && Finite(v);
      }
    }
    finite = !WarpAny(!finite);
    if (lane == 0) {
      a.log_det[row] = finite ? static_cast<float>(ld) : nanf("");
      if (!finite) atomicAdd(a.bad, 1ull);
    }
  }
}

}  // namespace

void radial_forward(const float* x, const float* params, bool amortized, float* y, float* log_det,
                    float* layer_log_det, float* stash, std::size_t batch, std::size_t dim, std::size_t layers,
                    unsigned long long* bad) {
  if (batch == 0) return;
  const ForwardArgs args{x, params, y, log_det, layer_log_det, stash, Sizes{batch, dim, layers}, amortized, bad};
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
  const Sizes s{batch, dim, layers};
  const std::size_t P = s.row_params();
  const std::size_t per_row = layers * dim + (amortized ? 0 : P);
  std::size_t chunk = std::max<std::size_t>(1, detail::ScratchFloats() / per_row);
  chunk = std::min({chunk, batch, detail::kMaxColumnRows});
  DeviceBuffer<float> inputs(chunk * layers * dim);
  DeviceBuffer<float> grad_scratch;
  DeviceBuffer<double> grad_sum;
  if (!amortized) {
    grad_scratch = DeviceBuffer<float>(chunk * P);
    grad_sum = DeviceBuffer<double>(P);
    fill_zero(grad_sum.get(), P * sizeof(double));
  }
  for (std::size_t r0 = 0; r0 < batch; r0 += chunk) {
    const std::size_t r1 = std::min(batch, r0 + chunk);
    const BackwardArgs args{x, params, dy, d_log_det, dx, amortized ? d_params : grad_scratch.get(), inputs.get(),
                            r0, r1, s, amortized, bad};
    DispatchSlots(dim, [&](auto slots) {
      BackwardKernel<decltype(slots)::value><<<RowGrid(r1 - r0), kRowThreads, 0, stream()>>>(args);
    });
    check_launch("radial_backward");
    if (!amortized) detail::AccumulateColumns(grad_scratch.get(), r1 - r0, P, grad_sum.get(), "radial_backward_sum");
  }
  if (!amortized) detail::AddToFloat(grad_sum.get(), P, d_params, "radial_backward_sum");
}

void radial_inverse(const float* y, const float* params, bool amortized, float* x, float* log_det,
                    std::size_t batch, std::size_t dim, std::size_t layers, unsigned long long* bad) {
  if (batch == 0) return;
  DeviceBuffer<double> z_scratch(detail::SlotsFor(dim) == 0 ? batch * dim : 0);
  const InverseArgs args{y, params, x, log_det, z_scratch.get(), Sizes{batch, dim, layers}, amortized, bad};
  DispatchSlots(dim, [&](auto slots) {
    InverseKernel<decltype(slots)::value><<<RowGrid(batch), kRowThreads, 0, stream()>>>(args);
  });
  check_launch("radial_inverse");
}

}  // namespace cuda
}  // namespace flowvae
