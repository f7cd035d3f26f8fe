// Helpers shared by the cuda kernel files: launch shapes, warp reductions,
// and the rows-in-registers layout of the row-wise kernels.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <type_traits>

#include "flowvae/cuda/runtime.h"

namespace flowvae {
namespace cuda {
namespace detail {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;

// Blocks for a grid-stride loop over `work` items with `per_block` items per
// block per pass (capped: the loop covers the rest).
inline unsigned GridFor(std::size_t work, std::size_t per_block) {
  const std::size_t blocks = (work + per_block - 1) / per_block;
  return static_cast<unsigned>(std::max<std::size_t>(1, std::min<std::size_t>(blocks, 65535)));
}

// Sum over the warp, the same bits in every lane (a butterfly: each step adds
// two equal partial sums in swapped order, and addition commutes).
template <class T>
__device__ __forceinline__ T WarpSum(T v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

__device__ __forceinline__ bool WarpAny(bool v) { return __any_sync(kFullMask, v) != 0; }

// The global warp index and the number of warps in the grid.
__device__ __forceinline__ std::size_t WarpIndex() {
  return (static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
}
__device__ __forceinline__ std::size_t WarpCount() { return static_cast<std::size_t>(gridDim.x) * blockDim.x / kWarp; }

// One row of a row-wise kernel, spread over the 32 lanes of a warp: lane l
// holds elements d = l + 32·i for i < size(). With N > 0 the elements live in
// registers (the row stays on chip across all layers of a flow stack); with
// N = 0 (rows longer than 32·kMaxRegisterSlots) they live in a global
// memory row, this lane's elements `stride` apart.
template <class T, int N>
struct WarpRow {
  T reg[N > 0 ? N : 1];
  T* mem = nullptr;
  int count = 0;

  __device__ __forceinline__ T& operator[](int i) {
    if constexpr (N > 0) {
      return reg[i];
    } else {
      return mem[static_cast<std::size_t>(i) * kWarp];
    }
  }
  __device__ __forceinline__ int size() const {
    if constexpr (N > 0) {
      return N;
    } else {
      return count;
    }
  }
};

// Register slots per lane of the in-register rows: dimensions up to 32·8 = 256.
constexpr int kMaxRegisterSlots = 8;

// Slots per lane for a row of `dim` elements (0: the row lives in memory).
inline int SlotsFor(std::size_t dim) {
  if (dim <= 32) return 1;
  if (dim <= 64) return 2;
  if (dim <= 128) return 4;
  if (dim <= 256) return 8;
  return 0;
}

// Elements per lane of a row of `dim` elements.
__host__ __device__ inline int LaneCount(std::size_t dim) { return static_cast<int>((dim + kWarp - 1) / kWarp); }

// Calls f(std::integral_constant<int, N>) with N = SlotsFor(dim).
template <class F>
void DispatchSlots(std::size_t dim, F&& f) {
  switch (SlotsFor(dim)) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 8: f(std::integral_constant<int, 8>{}); break;
    default: f(std::integral_constant<int, 0>{}); break;
  }
}

// Row-wise kernels run 4 warps (4 rows at a time) per block.
constexpr int kRowsPerBlock = 4;
constexpr int kRowThreads = kRowsPerBlock * kWarp;

inline unsigned RowGrid(std::size_t rows) { return GridFor(rows, kRowsPerBlock); }

// Floats of scratch one launch of a flow-stack backward may use (16 Mi floats,
// 64 MiB; larger batches run in several launches). FLOWVAE_CUDA_SCRATCH_FLOATS
// overrides it, so that tests can force many launches on small problems.
inline std::size_t ScratchFloats() {
  static const std::size_t n = [] {
    const char* v = std::getenv("FLOWVAE_CUDA_SCRATCH_FLOATS");
    const long long parsed = v ? std::atoll(v) : 0;
    return parsed > 0 ? static_cast<std::size_t>(parsed) : std::size_t{16} << 20;
  }();
  return n;
}

// Numerically stable scalar helpers (float and double).
template <class T>
__device__ __forceinline__ T Softplus(T x) {
  return (x > T(0) ? x : T(0)) + log1p(exp(-fabs(x)));
}
template <class T>
__device__ __forceinline__ T Sigmoid(T x) {
  const T e = exp(-fabs(x));
  return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

__device__ __forceinline__ bool Finite(float v) { return isfinite(v); }
__device__ __forceinline__ bool Finite(double v) { return isfinite(v); }

}  // namespace detail
}  // namespace cuda
}  // namespace flowvae
