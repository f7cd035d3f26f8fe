// The thread pool: every index visited exactly once, at any thread count,
// including repeated resizing and nested small calls.
#include <atomic>
#include <vector>

#include "check.h"
#include "flowvae/parallel.h"

void test_parallel() {
  for (int threads : {1, 2, 3, 8}) {
    flowvae::set_num_threads(threads);
    for (std::size_t n : {0, 1, 7, 1000, 100003}) {
      for (std::size_t grain : {1, 64, 100000}) {
        std::vector<std::atomic<int>> hits(n);
        flowvae::parallel_for(n, grain, [&](std::size_t b, std::size_t e) {
          for (std::size_t i = b; i < e; ++i) hits[i].fetch_add(1);
        });
        bool all_once = true;
        for (auto& h : hits) all_once = all_once && h.load() == 1;
        CHECK(all_once);
      }
    }
    // Many short jobs back to back exercise the wake-up path.
    std::atomic<long> sum{0};
    for (int rep = 0; rep < 200; ++rep) {
      flowvae::parallel_tasks(threads, [&](int task, int) { sum.fetch_add(task + 1); });
    }
    CHECK(sum.load() > 0);
    // A parallel region inside another runs inline and still covers every index.
    std::vector<std::atomic<int>> nested(64 * 100);
    flowvae::parallel_for(64, 1, [&](std::size_t b, std::size_t e) {
      for (std::size_t i = b; i < e; ++i) {
        flowvae::parallel_for(100, 1, [&](std::size_t b2, std::size_t e2) {
          for (std::size_t j = b2; j < e2; ++j) nested[i * 100 + j].fetch_add(1);
        });
      }
    });
    bool nested_once = true;
    for (auto& h : nested) nested_once = nested_once && h.load() == 1;
    CHECK(nested_once);
  }
  flowvae::set_num_threads(2);
}
