// Fixed-size thread pool shared by all cpu kernels.
//
// parallel_for(n, grain, fn) splits [0, n) into contiguous chunks of at least
// `grain` items and calls fn(begin, end) on each, using the calling thread as
// one of the workers. Problems smaller than two grains run inline, so small
// calls pay no synchronisation. If the pool is already busy (a kernel called
// from another worker_thread at the same time) the call runs inline on its
// own thread instead of waiting: results never depend on the thread count.
#pragma once
#include <algorithm>
#include <cstddef>
#include <functional>
#include <vector>

namespace flowvae {

// Number of threads kernels may use (>= 1). Default: hardware concurrency,
// or FLOWVAE_NUM_THREADS when set to a positive integer.
int num_threads();
void set_num_threads(int n);

using RangeFn = std::function<void(std::size_t begin, std::size_t end)>;
void parallel_for(std::size_t n, std::size_t grain, const RangeFn& fn);

// Calls fn(t, T) once on each of T = min(num_threads(), max_tasks) threads.
void parallel_tasks(int max_tasks, const std::function<void(int task, int ntasks)>& fn);

// Size of the fixed chunks a deterministic reduction over n items uses: a
// multiple of `unit`, giving at most `max_chunks` chunks. It depends only on
// n, so partial sums kept per chunk (not per thread) and combined in chunk
// order give the same bits at any thread count.
std::size_t reduction_chunk(std::size_t n, std::size_t unit, std::size_t max_chunks);

// A deterministic parallel reduction over n items: splits [0, n) into the
// fixed chunks of reduction_chunk(n, unit, max_chunks), gives each chunk its
// own zeroed slice of `stride` doubles in *partials and calls
// fn(begin, end, slice) on it, in parallel. Returns the number of chunks;
// summing the slices in order gives the same bits at any thread count.
// `partials` belongs to the caller (workers write through its data pointer).
template <typename ChunkFn>
std::size_t reduce_in_chunks(std::size_t n, std::size_t unit, std::size_t max_chunks, std::size_t stride,
                             std::vector<double>* partials, ChunkFn&& fn) {
  const std::size_t chunk = reduction_chunk(n, unit, max_chunks);
  const std::size_t chunks = (n + chunk - 1) / chunk;
  partials->resize(chunks * stride);
  double* const base = partials->data();
  parallel_for(chunks, 1, [&](std::size_t c0, std::size_t c1) {
    for (std::size_t c = c0; c < c1; ++c) {
      double* slice = base + c * stride;
      std::fill(slice, slice + stride, 0.0);
      fn(c * chunk, std::min((c + 1) * chunk, n), slice);
    }
  });
  return chunks;
}

}  // namespace flowvae
