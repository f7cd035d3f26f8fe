// Native kernel test driver: runs every family's test_<family>() that is
// linked in, for the families of native/families.def. Each family's test
// lives in native/test/<family>_test.cc (the flow stacks planar and radial
// share one table-driven suite, flow_stack_test.cc); the declarations are
// weak so a family without a test file still links.
#include <cstdio>
#include <cstdlib>

#include "check.h"
#include "flowvae/cpu_features.h"
#include "flowvae/parallel.h"

// Test-only entries (shared machinery, not kernel families) run around the
// families of native/families.def.
#define FLOWVAE_TESTS_BEFORE_FAMILIES(X) X(parallel) X(lane_math)
#define FLOWVAE_TESTS_AFTER_FAMILIES(X) X(cuda_rng)
#define FLOWVAE_TEST_DECLARATION(name) void test_##name() __attribute__((weak));
FLOWVAE_TESTS_BEFORE_FAMILIES(FLOWVAE_TEST_DECLARATION)
#define FLOWVAE_FAMILY(name, Name, cuda) FLOWVAE_TEST_DECLARATION(name)
#include "../families.def"
FLOWVAE_TESTS_AFTER_FAMILIES(FLOWVAE_TEST_DECLARATION)

struct Family {
  const char* name;
  void (*run)();
};

int main() {
#define FLOWVAE_TEST_ENTRY(name) {#name, test_##name},
  const Family families[] = {FLOWVAE_TESTS_BEFORE_FAMILIES(FLOWVAE_TEST_ENTRY)
#define FLOWVAE_FAMILY(name, Name, cuda) FLOWVAE_TEST_ENTRY(name)
#include "../families.def"
                                 FLOWVAE_TESTS_AFTER_FAMILIES(FLOWVAE_TEST_ENTRY)};
  std::printf("flowvae kernel tests (simd: %s, threads: %d)\n", flowvae::simd_level_name(flowvae::simd_level()),
              flowvae::num_threads());
  int ran = 0;
  for (const Family& f : families) {
    if (!f.run) continue;
    const int before_checks = flowvae::test::checks();
    const int before_failures = flowvae::test::failures();
    f.run();
    ++ran;
    std::printf("  %-15s %6d checks, %d failed\n", f.name, flowvae::test::checks() - before_checks,
                flowvae::test::failures() - before_failures);
  }
  std::printf("%d families, %d checks, %d failed\n", ran, flowvae::test::checks(), flowvae::test::failures());
  return flowvae::test::failures() == 0 && ran > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
