// Batch drivers shared by the planar and radial stacks (planar.cc, radial.cc).
//
// Rows go to the thread pool in blocks of kBlock; each block runs through
// all K layers in the family's SIMD row functions. Shared-parameter backward
// sums its gradients in float64 partials, one per fixed chunk of rows (not
// per task), combined in chunk order, so the gradients are the same bits at
// any thread count and when a busy pool makes the call run inline.
//
// A family is a struct of static members:
//   Shared, ForwardArgs, BackwardArgs    its per-call data (the argument
//                                        structs list their fields in the
//                                        same order in both families)
//   TlsShared()                          this thread's Shared
//   Prepare(params, dim, layers, Shared*)  folds shared parameters
//   ParamSize(dim)                       parameters per layer (one row's, when amortized)
//   Forward(amortized), BackwardShared(), BackwardAmortized()
//                                        the row functions for this CPU
//   PartialSize(dim, layers)             float64 sums per chunk of rows
//   Finalize(params, shared, partials, chunks, dim, layers, d_params)
//                                        chain rule from the sums, added into d_params
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <vector>

#include "flowvae/cpu_features.h"
#include "flowvae/parallel.h"

namespace flowvae {
namespace stack {

constexpr std::size_t kBlock = 16;  // rows per parallel work item; a multiple of every group width
// Shared-parameter gradient sums run in float32 over at most this many rows
// at a time, then continue in float64 (a multiple of every group width).
constexpr std::size_t kFlushRows = 512;

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
std::size_t Forward(const float* x, const float* params, bool amortized, float* y, float* log_det,
                    float* layer_log_det, float* stash, std::size_t batch, std::size_t dim, std::size_t layers) {
  if (batch == 0) return 0;
  const typename Family::Shared* shared = nullptr;
  if (!amortized) {
    Family::Prepare(params, dim, layers, &Family::TlsShared());
    shared = &Family::TlsShared();
  }
  const typename Family::ForwardArgs args{x, params, y, log_det, layer_log_det, stash, dim, layers, shared};
  return OverBlocks(Family::Forward(amortized), args, batch, dim, layers);
}

// `in` is what the family's backward rebuilds the layers from (planar: the output y; radial: the input x).
template <class Family>
std::size_t Backward(const float* in, const float* stash, const float* params, bool amortized, const float* dy,
                     const float* d_log_det, float* dx, float* d_params, std::size_t batch, std::size_t dim,
                     std::size_t layers) {
  using BackwardArgs = typename Family::BackwardArgs;
  if (batch == 0) return 0;
  if (amortized) {
    // Parameters read and gradients written beyond the last-level cache: the
    // gradients will not be in cache for their reader anyway, and streaming
    // stores skip the read a normal store makes of each line it writes.
    const std::size_t bytes = 2 * batch * layers * Family::ParamSize(dim) * sizeof(float);
    const bool stream = bytes > last_level_cache_bytes();
    const BackwardArgs args{in, stash, params, dy, d_log_det, dx, d_params, dim, layers, nullptr, stream};
    return OverBlocks(Family::BackwardAmortized(), args, batch, dim, layers);
  }
  typename Family::Shared& shared = Family::TlsShared();
  Family::Prepare(params, dim, layers, &shared);
  const BackwardArgs args{in, stash, params, dy, d_log_det, dx, d_params, dim, layers, &shared, false};
  const auto fn = Family::BackwardShared();
  std::atomic<std::size_t> bad{0};
  // The buffer is the caller's (naming a thread_local inside a task would give each worker its own).
  thread_local std::vector<double> partials;
  const std::size_t chunks = reduce_in_chunks(batch, kFlushRows, 64, Family::PartialSize(dim, layers), &partials,
                                              [&](std::size_t r0, std::size_t r1, double* part) {
                                                const std::size_t n = fn(args, r0, r1, part);
                                                if (n) bad += n;
                                              });
  Family::Finalize(params, shared, partials.data(), static_cast<int>(chunks), dim, layers, d_params);
  return bad.load();
}

}  // namespace stack
}  // namespace flowvae
