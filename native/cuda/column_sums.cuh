// Deterministic batch sums for the shared-parameter gradients of the flow
// stacks: each row kernel writes its row's parameter gradient into a
// [rows, cols] scratch, and these kernels add the rows up in float64 in an
// order fixed by the row count (segments of kSegment rows, then the segments
// in order): no atomics, the same bits on every run.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "common.cuh"

namespace flowvae {
namespace cuda {
namespace detail {
namespace {

constexpr std::size_t kSegment = 256;

// partial[seg, col] = Σ over the segment's rows of rows[r, col].
__global__ void SegmentSumKernel(const float* rows, std::size_t n_rows, std::size_t cols, double* partial) {
  const std::size_t col = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  const std::size_t seg = blockIdx.y;
  if (col >= cols) return;
  const std::size_t r0 = seg * kSegment;
  const std::size_t r1 = r0 + kSegment < n_rows ? r0 + kSegment : n_rows;
  double s = 0;
  for (std::size_t r = r0; r < r1; ++r) s += rows[r * cols + col];
  partial[seg * cols + col] = s;
}

// acc[col] += Σ_seg partial[seg, col], segments in order.
__global__ void AddSegmentsKernel(const double* partial, std::size_t segments, std::size_t cols, double* acc) {
  for (std::size_t col = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; col < cols;
       col += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    double s = acc[col];
    for (std::size_t seg = 0; seg < segments; ++seg) s += partial[seg * cols + col];
    acc[col] = s;
  }
}

// out[i] = float(out[i] + acc[i]): the float64 batch sum added to the caller's gradient.
__global__ void AddToFloatKernel(const double* acc, std::size_t n, float* out) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    out[i] = static_cast<float>(static_cast<double>(out[i]) + acc[i]);
}

// Most rows per call of AccumulateColumns (grid.y counts segments).
constexpr std::size_t kMaxColumnRows = 65535 * kSegment;

// acc[cols] += column sums of rows[n_rows, cols] (n_rows <= kMaxColumnRows).
inline void AccumulateColumns(const float* rows, std::size_t n_rows, std::size_t cols, double* acc,
                              const char* kernel) {
  if (n_rows == 0 || cols == 0) return;
  const std::size_t segments = (n_rows + kSegment - 1) / kSegment;
  DeviceBuffer<double> partial(segments * cols);
  const dim3 grid(static_cast<unsigned>((cols + 127) / 128), static_cast<unsigned>(segments));
  SegmentSumKernel<<<grid, 128, 0, stream()>>>(rows, n_rows, cols, partial.get());
  check_launch(kernel);
  AddSegmentsKernel<<<GridFor(cols, 128), 128, 0, stream()>>>(partial.get(), segments, cols, acc);
  check_launch(kernel);
}

inline void AddToFloat(const double* acc, std::size_t n, float* out, const char* kernel) {
  if (n == 0) return;
  AddToFloatKernel<<<GridFor(n, 256), 256, 0, stream()>>>(acc, n, out);
  check_launch(kernel);
}

}  // namespace
}  // namespace detail
}  // namespace cuda
}  // namespace flowvae
