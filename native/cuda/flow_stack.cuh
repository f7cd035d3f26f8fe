// What the planar and radial cuda stacks (planar.cu, radial.cu) share: the
// sizes of a call, a row's load into a WarpRow and its store with the finite
// check, the per-row bad count, and the host side (slot and amortized
// dispatch, the chunked backward with its float64 column sums). The family
// files keep their mathematics: the per-layer kernels and their arguments.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include "column_sums.cuh"
#include "common.cuh"

namespace flowvae {
namespace cuda {
namespace stack {

using detail::Finite;
using detail::kWarp;
using detail::LaneCount;
using detail::WarpAny;
using detail::WarpRow;

struct Sizes {
  std::size_t batch, dim, layers;
  std::size_t layer_params;  // parameters per layer
  __host__ __device__ std::size_t row_params() const { return layers * layer_params; }
};

// A long row (N == 0) lives in memory: this lane's first element of `row`.
template <class T, int N>
__device__ __forceinline__ void PlaceRow(WarpRow<T, N>& z, T* row, int lane, std::size_t D) {
  if constexpr (N == 0) {
    z.mem = row + lane;
    z.count = LaneCount(D);
  }
}

// z = src[0, D); register slots past the row's end hold 0.
template <class T, int N>
__device__ __forceinline__ void LoadRow(WarpRow<T, N>& z, const float* src, int lane, std::size_t D) {
#pragma unroll
  for (int i = 0; i < z.size(); ++i) {
    const std::size_t d = lane + kWarp * i;
    if (d < D)
      z[i] = src[d];
    else if constexpr (N > 0)
      z[i] = T(0);
  }
}

// Writes a register row to dst (a long row already lives there); true when
// any of this lane's elements is not finite.
template <int N>
__device__ __forceinline__ bool StoreRow(WarpRow<float, N>& z, float* dst, int lane, std::size_t D) {
  bool bad = false;
#pragma unroll
  for (int i = 0; i < z.size(); ++i) {
    const std::size_t d = lane + kWarp * i;
    if (d < D) {
      if constexpr (N > 0) dst[d] = z[i];
      bad = bad || !Finite(z[i]);
    }
  }
  return bad;
}

// Counts the row as bad once when any lane found it so (every lane must call).
__device__ __forceinline__ void CountBadRow(bool bad, int lane, unsigned long long* counter) {
  bad = WarpAny(bad);
  if (lane == 0 && bad) atomicAdd(counter, 1ull);
}

// Lane 0 records layer k of a forward row: the value backward reads from
// the stash and, when they are asked for, the layer's log-det.
__device__ __forceinline__ void RecordLayer(float* stash, float* layer_log_det, std::size_t row, std::size_t K,
                                            std::size_t k, float stashed, float log_det, int lane) {
  if (lane == 0) {
    stash[row * K + k] = stashed;
    if (layer_log_det) layer_log_det[row * K + k] = log_det;
  }
}

// The end of a forward row: y stored, the row's log-det written, and the row
// counted when anything is not finite.
template <int N>
__device__ __forceinline__ void FinishForwardRow(WarpRow<float, N>& z, float total, float* y, int lane, std::size_t D,
                                                 float* log_det_out, unsigned long long* counter) {
  const bool bad = StoreRow(z, y, lane, D) || !Finite(total);
  if (lane == 0) *log_det_out = total;
  CountBadRow(bad, lane, counter);
}

// The end of an inverse row: x in float32, and its log-det, or NaN (and the
// row counted) when the solve failed or anything is not finite.
template <int N>
__device__ __forceinline__ void FinishInverseRow(WarpRow<double, N>& z, bool ok, double log_det, float* x, int lane,
                                                 std::size_t D, float* log_det_out, unsigned long long* counter) {
  bool finite = ok && isfinite(log_det);
#pragma unroll
  for (int i = 0; i < z.size(); ++i) {
    const std::size_t d = lane + kWarp * i;
    if (d < D) {
      const float v = static_cast<float>(z[i]);
      x[d] = v;
      finite = finite && Finite(v);
    }
  }
  finite = !WarpAny(!finite);
  if (lane == 0) {
    *log_det_out = finite ? static_cast<float>(log_det) : nanf("");
    if (!finite) atomicAdd(counter, 1ull);
  }
}

// ---- host ----------------------------------------------------------------------

// Calls launch(slots, amortized) with both as compile-time constants
// (std::integral_constant), for kernels templated on them.
template <class Launch>
void DispatchRows(std::size_t dim, bool amortized, Launch&& launch) {
  detail::DispatchSlots(dim, [&](auto slots) {
    if (amortized) {
      launch(slots, std::true_type{});
    } else {
      launch(slots, std::false_type{});
    }
  });
}

// Runs a backward in launches of as many rows as the scratch holds: per row,
// the row's shared-parameter gradient (shared parameters only) and
// `row_scratch_floats` of the family's own. launch(r0, r1, grad_rows,
// row_scratch) runs rows [r0, r1): grad_rows is d_params when amortized,
// else a per-row scratch that is summed here in float64 in a fixed order
// (column_sums.cuh, deterministic, no atomics) and added into d_params.
template <class LaunchChunk>
void BackwardInChunks(const Sizes& s, bool amortized, std::size_t row_scratch_floats, float* d_params,
                      const char* sum_kernel, LaunchChunk&& launch) {
  const std::size_t P = s.row_params();
  const std::size_t per_row = (amortized ? 0 : P) + row_scratch_floats;
  std::size_t chunk = per_row == 0 ? s.batch : std::max<std::size_t>(1, detail::ScratchFloats() / per_row);
  chunk = std::min({chunk, s.batch, detail::kMaxColumnRows});
  DeviceBuffer<float> grad_scratch;
  DeviceBuffer<double> grad_sum;
  if (!amortized) {
    grad_scratch = DeviceBuffer<float>(chunk * P);
    grad_sum = DeviceBuffer<double>(P);
    fill_zero(grad_sum.get(), P * sizeof(double));
  }
  DeviceBuffer<float> row_scratch(chunk * row_scratch_floats);
  for (std::size_t r0 = 0; r0 < s.batch; r0 += chunk) {
    const std::size_t r1 = std::min(s.batch, r0 + chunk);
    launch(r0, r1, amortized ? d_params : grad_scratch.get(), row_scratch.get());
    if (!amortized) detail::AccumulateColumns(grad_scratch.get(), r1 - r0, P, grad_sum.get(), sum_kernel);
  }
  if (!amortized) detail::AddToFloat(grad_sum.get(), P, d_params, sum_kernel);
}

}  // namespace stack
}  // namespace cuda
}  // namespace flowvae
