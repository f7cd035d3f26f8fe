#include "flowvae/parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

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

// Workers sleep on a condition variable between jobs. A job is a function
// called as job(task, ntasks) on `ntasks` threads, task 0 being the caller.
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
      pending_ = ntasks - 1;
      ++generation_;
    }
    wake_.notify_all();
    job(0, ntasks);
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return pending_ == 0; });
    job_ = nullptr;
    return true;
  }

  void resize(int workers) {
    std::lock_guard<std::mutex> busy(busy_);
    if (workers >= static_cast<int>(threads_.size())) return ensure_workers(workers);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
    stop_ = false;
    ensure_workers(workers);
  }

 private:
  // Called with busy_ held and no job in flight. A new worker starts from the
  // current generation, so it picks up the next job even if that job is
  // published before the thread first runs.
  void ensure_workers(int workers) {
    unsigned long generation;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      generation = generation_;
    }
    while (static_cast<int>(threads_.size()) < workers) {
      int index = static_cast<int>(threads_.size());
      threads_.emplace_back([this, index, generation] { worker_loop(index + 1, generation); });
    }
  }

  void worker_loop(int task, unsigned long seen) {
    for (;;) {
      const std::function<void(int, int)>* job = nullptr;
      int ntasks = 0;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        job = job_;
        ntasks = job_tasks_;
      }
      if (task < ntasks) {
        {
          JobScope scope;
          (*job)(task, ntasks);
        }
        std::lock_guard<std::mutex> lock(mutex_);
        if (--pending_ == 0) done_.notify_one();
      }
    }
  }

  std::mutex busy_;   // held by the caller thread that owns the pool for a job
  std::mutex mutex_;  // guards the fields below
  std::condition_variable wake_, done_;
  std::vector<std::thread> threads_;
  const std::function<void(int, int)>* job_ = nullptr;
  int job_tasks_ = 0;
  int pending_ = 0;
  unsigned long generation_ = 0;
  bool stop_ = false;
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

}  // namespace flowvae
