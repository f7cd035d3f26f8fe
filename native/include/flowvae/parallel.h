// Fixed-size thread pool shared by all cpu kernels.
//
// parallel_for(n, grain, fn) splits [0, n) into contiguous chunks of at least
// `grain` items and calls fn(begin, end) on each, using the calling thread as
// one of the workers. Problems smaller than two grains run inline, so small
// calls pay no synchronisation. If the pool is already busy (a kernel called
// from another worker_thread at the same time) the call runs inline on its
// own thread instead of waiting: results never depend on the thread count.
#pragma once
#include <cstddef>
#include <functional>

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

}  // namespace flowvae
