#include "flowvae/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace flowvae {
namespace {

int default_threads() {
  if (const char* env = std::getenv("FLOWVAE_NUM_THREADS")) {
    char* end = nullptr;
    long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n > 0 && n <= 1024) return static_cast<int>(n);
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

// True on a thread while it runs a pool job: a kernel called from inside
// another kernel's parallel region then runs inline instead of re-entering
// the pool (whose busy mutex the caller thread may already hold).
thread_local bool t_in_job = false;

struct JobScope {
  bool saved;
  JobScope() : saved(t_in_job) { t_in_job = true; }
  ~JobScope() { t_in_job = saved; }
};

// How long a thread polls before it blocks: a worker waiting for the next
// job, the caller waiting for the workers to finish. Waking a blocked thread
// costs 30-50 us on these virtual machines, more than many kernels take, and
// kernels come back to back (a layer's forward, its activation, the next
// layer), so a short poll keeps workers on hand for the next call.
constexpr std::chrono::microseconds kSpin(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// Polls `ready` for up to kSpin; true if it became true.
template <class Ready>
bool spin_until(Ready ready) {
  auto start = std::chrono::steady_clock::now();
  for (unsigned i = 1;; ++i) {
    if (ready()) return true;
    cpu_relax();
    if (i % 64 == 0 && std::chrono::steady_clock::now() - start > kSpin) return ready();
  }
}

// Workers poll, then sleep on a condition variable between jobs. A job is a
// function called as job(task, ntasks) on `ntasks` threads, task 0 being the
// caller.
class Pool {
 public:
  ~Pool() { resize(0); }

  // Runs job on `ntasks` threads; returns false (without running) if the pool
  // is in use by another caller thread.
  bool try_run(int ntasks, const std::function<void(int, int)>& job) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    ensure_workers(ntasks - 1);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &job;
      job_tasks_ = ntasks;
      pending_.store(ntasks - 1, std::memory_order_relaxed);
      generation_.store(generation_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }
    wake_.notify_all();
    job(0, ntasks);
    if (!spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
    }
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = nullptr;
    return true;
  }

  void resize(int workers) {
    std::lock_guard<std::mutex> busy(busy_);
    if (workers >= static_cast<int>(threads_.size())) return ensure_workers(workers);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_.store(true, std::memory_order_relaxed);
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
    stop_.store(false, std::memory_order_relaxed);
    ensure_workers(workers);
  }

 private:
  // Called with busy_ held and no job in flight. A new worker starts from the
  // current generation, so it picks up the next job even if that job is
  // published before the thread first runs.
  void ensure_workers(int workers) {
    unsigned long generation = generation_.load(std::memory_order_relaxed);
    while (static_cast<int>(threads_.size()) < workers) {
      int index = static_cast<int>(threads_.size());
      threads_.emplace_back([this, index, generation] { worker_loop(index + 1, generation); });
    }
  }

  void worker_loop(int task, unsigned long seen) {
    for (;;) {
      const std::function<void(int, int)>* job = nullptr;
      int ntasks = 0;
      // Poll for the next job for a while before sleeping; the job itself is
      // always read under the mutex.
      spin_until(
          [&] { return stop_.load(std::memory_order_relaxed) || generation_.load(std::memory_order_acquire) != seen; });
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_.load(std::memory_order_relaxed) || generation_.load() != seen; });
        if (stop_.load(std::memory_order_relaxed)) return;
        seen = generation_.load(std::memory_order_relaxed);
        job = job_;
        ntasks = job_tasks_;
      }
      if (task < ntasks) {
        {
          JobScope scope;
          (*job)(task, ntasks);
        }
        if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
          // Under the mutex, so a caller that checked pending_ and is about
          // to block cannot miss the notification.
          std::lock_guard<std::mutex> lock(mutex_);
          done_.notify_one();
        }
      }
    }
  }

  std::mutex busy_;   // held by the caller thread that owns the pool for a job
  std::mutex mutex_;  // guards the fields below (the atomics are written under it, polled without it)
  std::condition_variable wake_, done_;
  std::vector<std::thread> threads_;
  const std::function<void(int, int)>* job_ = nullptr;
  int job_tasks_ = 0;
  std::atomic<int> pending_{0};  // workers still running the current job
  std::atomic<unsigned long> generation_{0};
  std::atomic<bool> stop_{false};
};

Pool& pool() {
  // Intentionally leaked: worker threads must not be joined during static
  // destruction at process exit, when Node may already have torn down.
  static Pool* instance = new Pool();
  return *instance;
}

std::atomic<int> g_threads{0};

}  // namespace

int num_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  if (n == 0) {
    n = default_threads();
    g_threads.store(n, std::memory_order_relaxed);
  }
  return n;
}

void set_num_threads(int n) {
  if (n < 1) n = 1;
  g_threads.store(n, std::memory_order_relaxed);
}

void parallel_tasks(int max_tasks, const std::function<void(int, int)>& fn) {
  int ntasks = std::max(1, std::min(num_threads(), max_tasks));
  if (ntasks == 1 || t_in_job) {
    fn(0, 1);
    return;
  }
  JobScope scope;
  if (!pool().try_run(ntasks, fn)) fn(0, 1);
}

void parallel_for(std::size_t n, std::size_t grain, const RangeFn& fn) {
  if (n == 0) return;
  if (grain == 0) grain = 1;
  std::size_t max_chunks = (n + grain - 1) / grain;
  int ntasks = static_cast<int>(std::min<std::size_t>(max_chunks, static_cast<std::size_t>(num_threads())));
  if (ntasks <= 1) {
    fn(0, n);
    return;
  }
  parallel_tasks(ntasks, [&](int task, int tasks) {
    std::size_t begin = n * static_cast<std::size_t>(task) / static_cast<std::size_t>(tasks);
    std::size_t end = n * static_cast<std::size_t>(task + 1) / static_cast<std::size_t>(tasks);
    if (begin < end) fn(begin, end);
  });
}

std::size_t reduction_chunk(std::size_t n, std::size_t unit, std::size_t max_chunks) {
  if (unit == 0) unit = 1;
  if (max_chunks == 0) max_chunks = 1;
  const std::size_t units = (n + unit - 1) / unit;
  const std::size_t units_per_chunk = std::max<std::size_t>(1, (units + max_chunks - 1) / max_chunks);
  return units_per_chunk * unit;
}

}  // namespace flowvae
