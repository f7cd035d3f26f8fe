// LSTM on the GPU (see flowvae/cuda/lstm.h), the cpu algorithm step for
// step: the input projection of all steps and the whole-sequence weight
// gradients through cuda::sgemm; per step a strided product adds h_{t−1}
// W_hhᵀ into that step's gates in place (or dg_t W_hh into ∂L/∂h), then one
// thread per (row, unit) runs the cell update or its gradient.
#include <cuda_runtime.h>

#include "column_sums.cuh"
#include "common.cuh"
#include "flowvae/cuda/dense.h"
#include "flowvae/cuda/lstm.h"
#include "flowvae/lstm.h"

namespace flowvae {
namespace cuda {
namespace {

using detail::GridFor;

constexpr int kBlock = 256;
constexpr int kTile = 16;

__device__ __forceinline__ float Sigmoid(float v) {
  const float e = expf(-fabsf(v));
  return (v < 0.0f ? e : 1.0f) / (1.0f + e);
}

__device__ __forceinline__ std::size_t Length(const uint32_t* lengths, std::size_t b, std::size_t steps) {
  return lengths ? lengths[b] : steps;
}

// C[i·ldc + j] += Σ_p A[i·lda + p] · op(B)[p, j] for i < m, j < n, p < k, where
// op(B)[p, j] = B[j·ldb + p] (kTransB) or B[p·ldb + j]: the per-step products,
// whose operands are one step of a batch-first array (leading dimension T·width).
template <bool kTransB>
__global__ void StepGemmKernel(std::size_t m, std::size_t n, std::size_t k, const float* __restrict__ a,
                               std::size_t lda, const float* __restrict__ b, std::size_t ldb, float* __restrict__ c,
                               std::size_t ldc) {
  __shared__ float as[kTile][kTile + 1];
  __shared__ float bs[kTile][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const std::size_t i = static_cast<std::size_t>(blockIdx.y) * kTile + ty;
  const std::size_t j = static_cast<std::size_t>(blockIdx.x) * kTile + tx;
  float acc = 0.0f;
  for (std::size_t p0 = 0; p0 < k; p0 += kTile) {
    // as[ty][tx] = A[i, p0 + tx]; bs[ty][tx] = op(B)[p0 + ty, j].
    as[ty][tx] = (i < m && p0 + tx < k) ? a[i * lda + p0 + tx] : 0.0f;
    if (kTransB) {
      // Read B along its contiguous direction (p): thread (ty, tx) loads B[(col0 + ty)·ldb + p0 + tx].
      const std::size_t jj = static_cast<std::size_t>(blockIdx.x) * kTile + ty;
      bs[tx][ty] = (jj < n && p0 + tx < k) ? b[jj * ldb + p0 + tx] : 0.0f;
    } else {
      bs[ty][tx] = (j < n && p0 + ty < k) ? b[(p0 + ty) * ldb + j] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int p = 0; p < kTile; ++p) acc += as[ty][p] * bs[p][tx];
    __syncthreads();
  }
  if (i < m && j < n) c[i * ldc + j] += acc;
}

template <bool kTransB>
void StepGemm(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda, const float* b,
              std::size_t ldb, float* c, std::size_t ldc, const char* kernel) {
  if (m == 0 || n == 0 || k == 0) return;
  const dim3 block(kTile, kTile);
  const dim3 grid(static_cast<unsigned>((n + kTile - 1) / kTile), static_cast<unsigned>((m + kTile - 1) / kTile));
  StepGemmKernel<kTransB><<<grid, block, 0, stream()>>>(m, n, k, a, lda, b, ldb, c, ldc);
  check_launch(kernel);
}

// gates[r, j] = b_ih[j] + b_hh[j] (zeros for a null bias).
__global__ void BiasRowsKernel(const float* b_ih, const float* b_hh, float* gates, std::size_t rows, std::size_t g) {
  const std::size_t n = rows * g;
  for (std::size_t e = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t j = e % g;
    gates[e] = (b_ih ? b_ih[j] : 0.0f) + (b_hh ? b_hh[j] : 0.0f);
  }
}

// The state entering step 0 (rows of length 0: zeros in the stash, and (hn, cn) = (h0, c0)).
__global__ void InitStateKernel(const uint32_t* lengths, const float* h0, const float* c0, float* h_prev, float* c_prev,
                                float* hn, float* cn, std::size_t batch, std::size_t steps, std::size_t hidden) {
  const std::size_t n = batch * hidden;
  for (std::size_t e = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t b = e / hidden, j = e % hidden;
    const std::size_t at = b * steps * hidden + j;  // (row b, step 0)
    const float h = h0 ? h0[e] : 0.0f, c = c0 ? c0[e] : 0.0f;
    if (Length(lengths, b, steps) > 0) {
      h_prev[at] = h;
      c_prev[at] = c;
    } else {
      h_prev[at] = 0.0f;
      c_prev[at] = 0.0f;
      hn[e] = h;
      cn[e] = c;
    }
  }
}

// Step t of every row, one thread per (row, unit): the cell update (as the
// cpu's scalar path), or zeros past the row's length.
__global__ void CellForwardKernel(const uint32_t* lengths, float* gates, float* h_prev, float* c_prev, float* tanh_c,
                                  float* y, float* hn, float* cn, std::size_t batch, std::size_t steps,
                                  std::size_t hidden, std::size_t t) {
  const std::size_t n = batch * hidden;
  const std::size_t G = 4 * hidden;
  for (std::size_t e = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t b = e / hidden, j = e % hidden;
    const std::size_t r = b * steps + t;
    const std::size_t len = Length(lengths, b, steps);
    const bool last_step = t + 1 == steps;
    float* g = gates + r * G;
    if (t < len) {
      const float i = Sigmoid(g[j]);
      const float f = Sigmoid(g[hidden + j]);
      const float gv = tanhf(g[2 * hidden + j]);
      const float o = Sigmoid(g[3 * hidden + j]);
      const float c = f * c_prev[r * hidden + j] + i * gv;
      const float tc = tanhf(c);
      const float h = o * tc;
      g[j] = i, g[hidden + j] = f, g[2 * hidden + j] = gv, g[3 * hidden + j] = o;
      tanh_c[r * hidden + j] = tc;
      y[r * hidden + j] = h;
      if (!last_step) {
        h_prev[(r + 1) * hidden + j] = h;
        c_prev[(r + 1) * hidden + j] = c;
      }
      if (t + 1 == len) {
        hn[e] = h;
        cn[e] = c;
      }
    } else {
      y[r * hidden + j] = 0.0f;
      g[j] = 0.0f, g[hidden + j] = 0.0f, g[2 * hidden + j] = 0.0f, g[3 * hidden + j] = 0.0f;
      tanh_c[r * hidden + j] = 0.0f;
      h_prev[r * hidden + j] = 0.0f;
      c_prev[r * hidden + j] = 0.0f;
      if (!last_step) {
        h_prev[(r + 1) * hidden + j] = 0.0f;
        c_prev[(r + 1) * hidden + j] = 0.0f;
      }
    }
  }
}

// dst = src, or zeros for a null src.
__global__ void CopyKernel(const float* src, float* dst, std::size_t n) {
  for (std::size_t e = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    dst[e] = src ? src[e] : 0.0f;
}

// Gradient of step t, one thread per (row, unit): dg from dh (+ dy) and dc;
// dc becomes ∂L/∂c_{t−1} and dh is zeroed, to receive dg_t W_hh next. Rows
// past their length: dg = 0, dh and dc pass through.
__global__ void CellBackwardKernel(const uint32_t* lengths, const float* gates, const float* c_prev,
                                   const float* tanh_c, const float* dy, float* dh, float* dc, float* dg,
                                   std::size_t batch, std::size_t steps, std::size_t hidden, std::size_t t) {
  const std::size_t n = batch * hidden;
  const std::size_t G = 4 * hidden;
  for (std::size_t e = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t b = e / hidden, j = e % hidden;
    const std::size_t r = b * steps + t;
    float* d = dg + r * G;
    if (t < Length(lengths, b, steps)) {
      const float* g = gates + r * G;
      const float i = g[j], f = g[hidden + j], gv = g[2 * hidden + j], o = g[3 * hidden + j];
      const float tc = tanh_c[r * hidden + j];
      const float dhv = dy ? dh[e] + dy[r * hidden + j] : dh[e];
      const float dct = dc[e] + dhv * o * (1.0f - tc * tc);
      d[j] = dct * gv * (i * (1.0f - i));
      d[hidden + j] = dct * c_prev[r * hidden + j] * (f * (1.0f - f));
      d[2 * hidden + j] = dct * i * (1.0f - gv * gv);
      d[3 * hidden + j] = dhv * tc * (o * (1.0f - o));
      dc[e] = dct * f;
      dh[e] = 0.0f;
    } else {
      d[j] = 0.0f, d[hidden + j] = 0.0f, d[2 * hidden + j] = 0.0f, d[3 * hidden + j] = 0.0f;
    }
  }
}

struct StashBlocks {
  float* gates;
  float* h_prev;
  float* c_prev;
  float* tanh_c;
};

StashBlocks Split(float* stash, std::size_t rows, std::size_t hidden) {
  StashBlocks s{};
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
  const std::size_t states = batch * hidden;
  if (steps == 0) {
    CopyKernel<<<GridFor(states, kBlock), kBlock, 0, stream()>>>(h0, hn, states);
    check_launch("lstm_forward");
    CopyKernel<<<GridFor(states, kBlock), kBlock, 0, stream()>>>(c0, cn, states);
    check_launch("lstm_forward");
    return;
  }
  const StashBlocks s = Split(stash, rows, hidden);
  BiasRowsKernel<<<GridFor(rows * G, kBlock), kBlock, 0, stream()>>>(b_ih, b_hh, s.gates, rows, G);
  check_launch("lstm_forward");
  sgemm(false, true, rows, G, in_dim, 1.0f, x, w_ih, 1.0f, s.gates);
  InitStateKernel<<<GridFor(states, kBlock), kBlock, 0, stream()>>>(lengths, h0, c0, s.h_prev, s.c_prev, hn, cn, batch,
                                                                    steps, hidden);
  check_launch("lstm_forward");
  for (std::size_t t = 0; t < steps; ++t) {
    StepGemm<true>(batch, G, hidden, s.h_prev + t * hidden, steps * hidden, w_hh, hidden, s.gates + t * G, steps * G,
                   "lstm_forward");
    CellForwardKernel<<<GridFor(states, kBlock), kBlock, 0, stream()>>>(lengths, s.gates, s.h_prev, s.c_prev, s.tanh_c,
                                                                        y, hn, cn, batch, steps, hidden, t);
    check_launch("lstm_forward");
  }
}

void lstm_backward(const float* x, const uint32_t* lengths, const float* w_ih, const float* w_hh, const float* stash,
                   const float* dy, const float* dhn, const float* dcn, float* dx, float* dh0, float* dc0,
                   float* d_w_ih, float* d_w_hh, float* d_b_ih, float* d_b_hh, float* work, std::size_t batch,
                   std::size_t steps, std::size_t in_dim, std::size_t hidden, bool accumulate) {
  const std::size_t G = 4 * hidden;
  const std::size_t rows = batch * steps;
  const std::size_t states = batch * hidden;
  if (states > 0) {
    CopyKernel<<<GridFor(states, kBlock), kBlock, 0, stream()>>>(dhn, dh0, states);
    check_launch("lstm_backward");
    CopyKernel<<<GridFor(states, kBlock), kBlock, 0, stream()>>>(dcn, dc0, states);
    check_launch("lstm_backward");
  }
  if (!accumulate) {
    if (d_w_ih) fill_zero(d_w_ih, G * in_dim * sizeof(float));
    if (d_w_hh) fill_zero(d_w_hh, G * hidden * sizeof(float));
    if (d_b_ih) fill_zero(d_b_ih, G * sizeof(float));
    if (d_b_hh) fill_zero(d_b_hh, G * sizeof(float));
  }
  if (rows == 0 || hidden == 0) {
    if (dx) fill_zero(dx, rows * in_dim * sizeof(float));
    return;
  }
  const StashBlocks s = Split(const_cast<float*>(stash), rows, hidden);
  float* const dg = work;
  for (std::size_t t = steps; t-- > 0;) {
    CellBackwardKernel<<<GridFor(states, kBlock), kBlock, 0, stream()>>>(lengths, s.gates, s.c_prev, s.tanh_c, dy, dh0,
                                                                         dc0, dg, batch, steps, hidden, t);
    check_launch("lstm_backward");
    StepGemm<false>(batch, hidden, G, dg + t * G, steps * G, w_hh, hidden, dh0, hidden, "lstm_backward");
  }
  if (dx) sgemm(false, false, rows, in_dim, G, 1.0f, dg, w_ih, 0.0f, dx);
  if (d_w_ih) sgemm(true, false, G, in_dim, rows, 1.0f, dg, x, 1.0f, d_w_ih);
  if (d_w_hh) sgemm(true, false, G, hidden, rows, 1.0f, dg, s.h_prev, 1.0f, d_w_hh);
  if (d_b_ih || d_b_hh) {
    DeviceBuffer<double> acc(G);
    fill_zero(acc.get(), G * sizeof(double));
    for (std::size_t r0 = 0; r0 < rows; r0 += detail::kMaxColumnRows) {
      const std::size_t n = rows - r0 < detail::kMaxColumnRows ? rows - r0 : detail::kMaxColumnRows;
      detail::AccumulateColumns(dg + r0 * G, n, G, acc.get(), "lstm_backward");
    }
    if (d_b_ih) detail::AddToFloat(acc.get(), G, d_b_ih, "lstm_backward");
    if (d_b_hh) detail::AddToFloat(acc.get(), G, d_b_hh, "lstm_backward");
  }
}

}  // namespace cuda
}  // namespace flowvae
