// The stack shared by the planar and radial families (planar.cc, radial.cc):
// per-call argument structs, the ISA dispatch and the batch drivers. A family
// file holds only its mathematics: the row functions, its shared-parameter
// preparation and the chain rule of its shared gradients.
//
// Rows go to the thread pool in blocks of kBlock; each block runs through
// all K layers in the family's SIMD row functions. Shared-parameter backward
// sums its gradients in float64 partials, one per fixed chunk of rows (not
// per task), combined in chunk order, so the gradients are the same bits at
// any thread count and when a busy pool makes the call run inline.
//
// A family is a struct of static members:
//   Shared                               its shared parameters, prepared per call
//   TlsShared()                          this thread's Shared
//   Prepare(params, dim, layers, Shared*)  folds shared parameters
//   ParamSize(dim)                       parameters per layer (one row's, when amortized)
//   PartialSize(dim, layers)             float64 sums per chunk of rows
//   Finalize(params, shared, sums, dim, layers, d_params)
//                                        chain rule from the batch sums, added into d_params
//   template <class Isa> ForwardShared, ForwardAmortized, BackwardShared,
//                        BackwardAmortized
//                                        the row functions at the widths of Isa
//                                        (Avx512, Avx2, Baseline), always inlined
//                                        into this file's target-attributed entry points
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <vector>

#include "flowvae/cpu_features.h"
#include "flowvae/parallel.h"
#include "lane_math.h"

namespace flowvae {
namespace stack {

constexpr std::size_t kBlock = 16;  // rows per parallel work item; a multiple of every group width
// Shared-parameter gradient sums run in float32 over at most this many rows
// at a time, then continue in float64 (a multiple of every group width).
constexpr std::size_t kFlushRows = 512;

// The widths of each instruction set: W rows per group (one SIMD lane per
// row), CM floats per main chunk over dim and C per tail chunk (CM = 2·C on
// AVX-512: its 16-float chunks fold into 8 lanes).
struct Avx512 {
  static constexpr int kLanes = 16, kChunk = 16, kTail = 8;
};
struct Avx2 {
  static constexpr int kLanes = 8, kChunk = 8, kTail = 8;
};
struct Baseline {
  static constexpr int kLanes = 4, kChunk = 4, kTail = 4;
};

// Two row groups run interleaved in the shared-parameter row functions: a
// layer's chain is serial within a group, so a single group leaves the core
// waiting on latency; the second group's independent chain fills those cycles.
constexpr int kSharedGroups = 2;

// What a family's row functions read and write. Both families list the same
// fields; Shared is the family's prepared shared parameters (null when amortized).
template <class Shared>
struct ForwardArgs {
  const float* x;
  const float* params;
  float* y;
  float* log_det;
  float* layer_log_det;
  float* stash;
  std::size_t dim, layers;
  const Shared* shared;
};

template <class Shared>
struct BackwardArgs {
  const float* saved;  // what backward rebuilds the layers from (planar: the output y; radial: the input x)
  const float* stash;
  const float* params;
  const float* dy;
  const float* d_log_det;
  float* dx;
  float* d_params;
  std::size_t dim, layers;
  const Shared* shared;
  bool stream_grads;  // amortized: write d_params with streaming stores (see Backward)
};

inline double SoftplusD(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); }
inline double SigmoidD(double x) {
  const double e = std::exp(-std::fabs(x));
  return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

// Folds a vector of 2·CT (or CT) floats into CT lanes, preserving the lane total.
template <int CT, class V>
FLOWVAE_LANE_INLINE typename lanes::Vec<CT>::F Fold(const V& v) {
  using FT = typename lanes::Vec<CT>::F;
  if constexpr (sizeof(V) == sizeof(FT)) {
    return v;
  } else {
    static_assert(sizeof(V) == 2 * sizeof(FT), "fold by halves only");
    FT lo, hi;
    std::memcpy(&lo, &v, sizeof(FT));
    std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof(FT), sizeof(FT));
    return lo + hi;
  }
}

// ---- dispatch ----------------------------------------------------------------
//
// One entry point per family, row function and instruction set: the target
// attribute sits on these, and the family's row functions inline into them.

template <class Family>
using ForwardFn = std::size_t (*)(const ForwardArgs<typename Family::Shared>&, std::size_t, std::size_t);
template <class Family>
using BackwardSharedFn = std::size_t (*)(const BackwardArgs<typename Family::Shared>&, std::size_t, std::size_t,
                                         double*);
template <class Family>
using BackwardAmortizedFn = std::size_t (*)(const BackwardArgs<typename Family::Shared>&, std::size_t, std::size_t);

#define FLOWVAE_STACK_ENTRY_POINTS(Isa, TARGET)                                                                        \
  template <class Family>                                                                                              \
  TARGET std::size_t ForwardShared##Isa(const ForwardArgs<typename Family::Shared>& a, std::size_t b, std::size_t e) { \
    return Family::template ForwardShared<Isa>(a, b, e);                                                               \
  }                                                                                                                    \
  template <class Family>                                                                                              \
  TARGET std::size_t ForwardAmortized##Isa(const ForwardArgs<typename Family::Shared>& a, std::size_t b,               \
                                           std::size_t e) {                                                            \
    return Family::template ForwardAmortized<Isa>(a, b, e);                                                            \
  }                                                                                                                    \
  template <class Family>                                                                                              \
  TARGET std::size_t BackwardShared##Isa(const BackwardArgs<typename Family::Shared>& a, std::size_t b, std::size_t e, \
                                         double* p) {                                                                  \
    return Family::template BackwardShared<Isa>(a, b, e, p);                                                           \
  }                                                                                                                    \
  template <class Family>                                                                                              \
  TARGET std::size_t BackwardAmortized##Isa(const BackwardArgs<typename Family::Shared>& a, std::size_t b,             \
                                            std::size_t e) {                                                           \
    return Family::template BackwardAmortized<Isa>(a, b, e);                                                           \
  }

FLOWVAE_STACK_ENTRY_POINTS(Avx512, FLOWVAE_TARGET_AVX512)
FLOWVAE_STACK_ENTRY_POINTS(Avx2, FLOWVAE_TARGET_AVX2)
FLOWVAE_STACK_ENTRY_POINTS(Baseline, )
#undef FLOWVAE_STACK_ENTRY_POINTS

template <class Family>
ForwardFn<Family> PickForward(bool amortized) {
  switch (simd_level()) {
    case SimdLevel::kAvx512: return amortized ? ForwardAmortizedAvx512<Family> : ForwardSharedAvx512<Family>;
    case SimdLevel::kAvx2: return amortized ? ForwardAmortizedAvx2<Family> : ForwardSharedAvx2<Family>;
    default: return amortized ? ForwardAmortizedBaseline<Family> : ForwardSharedBaseline<Family>;
  }
}

template <class Family>
BackwardSharedFn<Family> PickBackwardShared() {
  switch (simd_level()) {
    case SimdLevel::kAvx512: return BackwardSharedAvx512<Family>;
    case SimdLevel::kAvx2: return BackwardSharedAvx2<Family>;
    default: return BackwardSharedBaseline<Family>;
  }
}

template <class Family>
BackwardAmortizedFn<Family> PickBackwardAmortized() {
  switch (simd_level()) {
    case SimdLevel::kAvx512: return BackwardAmortizedAvx512<Family>;
    case SimdLevel::kAvx2: return BackwardAmortizedAvx2<Family>;
    default: return BackwardAmortizedBaseline<Family>;
  }
}

// ---- batch drivers -------------------------------------------------------------

// Blocks per parallel chunk: enough work (~1e5 multiply-adds) to pay for waking a thread.
inline std::size_t GrainBlocks(std::size_t dim, std::size_t layers) {
  const std::size_t per_block = kBlock * layers * (dim + 8);
  return std::max<std::size_t>(1, 131072 / std::max<std::size_t>(per_block, 1));
}

// Runs `fn(args, row_begin, row_end)` (returning a count of bad rows) over the batch in blocks.
template <class Fn, class Args>
std::size_t OverBlocks(Fn fn, const Args& args, std::size_t batch, std::size_t dim, std::size_t layers) {
  std::atomic<std::size_t> bad{0};
  const std::size_t blocks = (batch + kBlock - 1) / kBlock;
  parallel_for(blocks, GrainBlocks(dim, layers), [&](std::size_t b0, std::size_t b1) {
    const std::size_t n = fn(args, b0 * kBlock, std::min(b1 * kBlock, batch));
    if (n) bad += n;
  });
  return bad.load();
}

template <class Family>
std::size_t Forward(const float* x, const float* params, bool amortized, float* y, float* log_det, float* layer_log_det,
                    float* stash, std::size_t batch, std::size_t dim, std::size_t layers) {
  if (batch == 0) return 0;
  const typename Family::Shared* shared = nullptr;
  if (!amortized) {
    Family::Prepare(params, dim, layers, &Family::TlsShared());
    shared = &Family::TlsShared();
  }
  const ForwardArgs<typename Family::Shared> args{x, params, y, log_det, layer_log_det, stash, dim, layers, shared};
  return OverBlocks(PickForward<Family>(amortized), args, batch, dim, layers);
}

// `saved` is what the family's backward rebuilds the layers from (planar: the output y; radial: the input x).
template <class Family>
std::size_t Backward(const float* saved, const float* stash, const float* params, bool amortized, const float* dy,
                     const float* d_log_det, float* dx, float* d_params, std::size_t batch, std::size_t dim,
                     std::size_t layers) {
  using Args = BackwardArgs<typename Family::Shared>;
  if (batch == 0) return 0;
  if (amortized) {
    // Parameters read and gradients written beyond the last-level cache: the
    // gradients will not be in cache for their reader anyway, and streaming
    // stores skip the read a normal store makes of each line it writes.
    const std::size_t bytes = 2 * batch * layers * Family::ParamSize(dim) * sizeof(float);
    const bool stream = bytes > last_level_cache_bytes();
    const Args args{saved, stash, params, dy, d_log_det, dx, d_params, dim, layers, nullptr, stream};
    return OverBlocks(PickBackwardAmortized<Family>(), args, batch, dim, layers);
  }
  typename Family::Shared& shared = Family::TlsShared();
  Family::Prepare(params, dim, layers, &shared);
  const Args args{saved, stash, params, dy, d_log_det, dx, d_params, dim, layers, &shared, false};
  const auto fn = PickBackwardShared<Family>();
  std::atomic<std::size_t> bad{0};
  // The buffer is the caller's (naming a thread_local inside a task would give each worker its own).
  thread_local std::vector<double> partials;
  const std::size_t chunks = reduce_in_chunks(batch, kFlushRows, 64, Family::PartialSize(dim, layers), &partials,
                                              [&](std::size_t r0, std::size_t r1, double* part) {
                                                const std::size_t n = fn(args, r0, r1, part);
                                                if (n) bad += n;
                                              });
  // The chunks' sums combined in chunk order (the same bits at any thread count).
  const std::size_t stride = Family::PartialSize(dim, layers);
  thread_local std::vector<double> sums;
  sums.assign(stride, 0.0);
  for (std::size_t c = 0; c < chunks; ++c) {
    const double* part = partials.data() + c * stride;
    for (std::size_t i = 0; i < stride; ++i) sums[i] += part[i];
  }
  Family::Finalize(params, shared, sums.data(), dim, layers, d_params);
  return bad.load();
}

// Inverts the stack row by row in float64: invert_row(row, z, &log_det)
// turns z (the row of y) into x and returns false when it did not converge.
// Rows with a non-finite result get a NaN log_det; returns their count.
template <class InvertRow>
std::size_t Inverse(const float* y, float* x, float* log_det, std::size_t batch, std::size_t dim, std::size_t layers,
                    InvertRow invert_row) {
  if (batch == 0) return 0;
  const std::size_t D = dim, K = layers;
  std::atomic<std::size_t> bad{0};
  parallel_for(batch, std::max<std::size_t>(1, 65536 / (K * (D + 8) * 8)), [&](std::size_t r0, std::size_t r1) {
    thread_local std::vector<double> z;
    z.resize(D);
    std::size_t failed = 0;
    for (std::size_t r = r0; r < r1; ++r) {
      for (std::size_t d = 0; d < D; ++d) z[d] = y[r * D + d];
      double ld = 0;
      const bool ok = invert_row(r, z.data(), &ld);
      bool finite = ok && std::isfinite(ld);
      for (std::size_t d = 0; d < D; ++d) {
        x[r * D + d] = static_cast<float>(z[d]);
        finite = finite && std::isfinite(x[r * D + d]);
      }
      log_det[r] = finite ? static_cast<float>(ld) : std::nanf("");
      if (!finite) ++failed;
    }
    if (failed) bad += failed;
  });
  return bad.load();
}

}  // namespace stack
}  // namespace flowvae
