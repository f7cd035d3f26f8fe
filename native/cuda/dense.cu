// Dense kernels on the GPU (see flowvae/cuda/dense.h).
//
// SGEMM: 64×64 tiles of C per block of 256 threads, each thread a 4×4
// micro-tile (rows ty + 16i, columns tx + 16j: consecutive threads write
// consecutive columns), k in steps of 16 through shared memory. The four
// storage orders of A and B are handled by the tile loads, which read along
// the contiguous direction of each operand. Plain FP32 FMA (no TF32), so the
// results are float32 products accurate to the usual √k·eps bound.
#include <cuda_runtime.h>

#include "common.cuh"
#include "flowvae/cuda/dense.h"

namespace flowvae {
namespace cuda {
namespace {

using detail::GridFor;

constexpr int kTile = 64;      // rows and columns of C per block
constexpr int kStep = 16;      // k per shared-memory stage
constexpr int kThreads = 256;  // 16 × 16, each a 4 × 4 micro-tile

template <bool kTransA, bool kTransB>
__global__ void __launch_bounds__(kThreads)
    SgemmKernel(int m, int n, int k, float alpha, const float* __restrict__ a, const float* __restrict__ b, float beta,
                float* __restrict__ c, const float* __restrict__ bias) {
  // +1 column of padding: the transposing stores of A and B hit distinct banks.
  __shared__ float as[kStep][kTile + 1];
  __shared__ float bs[kStep][kTile + 1];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int row0 = blockIdx.y * kTile, col0 = blockIdx.x * kTile;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < k; k0 += kStep) {
#pragma unroll
    for (int l = 0; l < kTile * kStep / kThreads; ++l) {
      const int idx = threadIdx.x + l * kThreads;
      // op(A)[row0 + i][k0 + kk]: A is [m, k] (contiguous along kk) or, transposed, [k, m] (along i).
      const int i = kTransA ? idx % kTile : idx / kStep;
      const int kk = kTransA ? idx / kTile : idx % kStep;
      const int gi = row0 + i, gk = k0 + kk;
      float va = 0.0f;
      if (gi < m && gk < k) va = kTransA ? a[static_cast<size_t>(gk) * m + gi] : a[static_cast<size_t>(gi) * k + gk];
      as[kk][i] = va;
      // op(B)[k0 + kk][col0 + j]: B is [k, n] (contiguous along j) or, transposed, [n, k] (along kk).
      const int j = kTransB ? idx / kStep : idx % kTile;
      const int kb = kTransB ? idx % kStep : idx / kTile;
      const int gj = col0 + j, gkb = k0 + kb;
      float vb = 0.0f;
      if (gj < n && gkb < k) vb = kTransB ? b[static_cast<size_t>(gj) * k + gkb] : b[static_cast<size_t>(gkb) * n + gj];
      bs[kb][j] = vb;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kStep; ++kk) {
      float ra[4], rb[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) ra[i] = as[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) rb[j] = bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += ra[i] * rb[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int gi = row0 + ty + 16 * i;
    if (gi >= m) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int gj = col0 + tx + 16 * j;
      if (gj >= n) continue;
      float* out = c + static_cast<size_t>(gi) * n + gj;
      float v = alpha * acc[i][j];
      if (bias) v += bias[gj];
      // beta == 0 overwrites: whatever C held (NaN included) does not propagate.
      if (beta != 0.0f) v += beta * *out;
      *out = v;
    }
  }
}

// C = beta·C (0 when beta == 0), plus bias per column when given: the
// product term when alpha or k is 0.
__global__ void ScaleKernel(size_t m, size_t n, float beta, float* c, const float* bias) {
  const size_t total = m * n;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    float v = beta == 0.0f ? 0.0f : beta * c[i];
    if (bias) v += bias[i % n];
    c[i] = v;
  }
}

// d_bias[j] (+)= Σ_r dy[r, j], one thread per column, rows in order, in float64.
__global__ void ColumnSumKernel(const float* dy, float* d_bias, size_t rows, size_t cols, bool accumulate) {
  for (size_t j = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; j < cols;
       j += static_cast<size_t>(gridDim.x) * blockDim.x) {
    double s = accumulate ? static_cast<double>(d_bias[j]) : 0.0;
    for (size_t r = 0; r < rows; ++r) s += dy[r * cols + j];
    d_bias[j] = static_cast<float>(s);
  }
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
           const float* b, float beta, float* c, const float* bias) {
  if (m == 0 || n == 0) return;
  if (alpha == 0.0f || k == 0) {
    ScaleKernel<<<GridFor(m * n, 256), 256, 0, stream()>>>(m, n, beta, c, bias);
    check_launch("dense_scale");
    return;
  }
  // The bindings cap every size at 2^32; the tiles index with int.
  if (m > 0x7fffffff || n > 0x7fffffff || k > 0x7fffffff) throw Error("sgemm: size above 2^31", cudaErrorInvalidValue);
  const dim3 grid(static_cast<unsigned>((n + kTile - 1) / kTile), static_cast<unsigned>((m + kTile - 1) / kTile));
  if (grid.y > 65535) throw Error("sgemm: m above 65535 tiles", cudaErrorInvalidValue);
  const int mi = static_cast<int>(m), ni = static_cast<int>(n), ki = static_cast<int>(k);
  cudaStream_t s = stream();
  if (!trans_a && !trans_b) {
    SgemmKernel<false, false><<<grid, kThreads, 0, s>>>(mi, ni, ki, alpha, a, b, beta, c, bias);
  } else if (!trans_a && trans_b) {
    SgemmKernel<false, true><<<grid, kThreads, 0, s>>>(mi, ni, ki, alpha, a, b, beta, c, bias);
  } else if (trans_a && !trans_b) {
    SgemmKernel<true, false><<<grid, kThreads, 0, s>>>(mi, ni, ki, alpha, a, b, beta, c, bias);
  } else {
    SgemmKernel<true, true><<<grid, kThreads, 0, s>>>(mi, ni, ki, alpha, a, b, beta, c, bias);
  }
  check_launch("dense_sgemm");
}

void dense_forward(const float* x, const float* weight, const float* bias, float* y, std::size_t batch,
                   std::size_t in_dim, std::size_t out_dim) {
  sgemm(false, true, batch, out_dim, in_dim, 1.0f, x, weight, 0.0f, y, bias);
}

void dense_backward(const float* x, const float* weight, const float* dy, float* dx, float* d_weight, float* d_bias,
                    std::size_t batch, std::size_t in_dim, std::size_t out_dim, bool accumulate) {
  if (dx) sgemm(false, false, batch, in_dim, out_dim, 1.0f, dy, weight, 0.0f, dx);
  if (d_weight) sgemm(true, false, out_dim, in_dim, batch, 1.0f, dy, x, accumulate ? 1.0f : 0.0f, d_weight);
  if (d_bias && out_dim > 0) {
    ColumnSumKernel<<<GridFor(out_dim, 128), 128, 0, stream()>>>(dy, d_bias, batch, out_dim, accumulate);
    check_launch("dense_bias_gradient");
  }
}

}  // namespace cuda
}  // namespace flowvae
