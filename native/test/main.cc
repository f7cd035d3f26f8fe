// Native kernel test driver: runs every family's test_<family>() that is
// linked in. Each family's test lives in native/test/<family>_test.cc; the
// declarations are weak so a family without a test file still links.
#include <cstdio>
#include <cstdlib>

#include "check.h"
#include "flowvae/cpu_features.h"
#include "flowvae/parallel.h"

#define FLOWVAE_FAMILY_TEST(name) void test_##name() __attribute__((weak));
#define FLOWVAE_FAMILIES(X) \
  X(parallel) X(rng) X(dense) X(elementwise) X(adam) X(planar) X(radial) X(sylvester) X(autoregressive) \
  X(coupling) X(spline) X(glow) X(residual) X(gaussian) X(likelihood) X(lstm) X(cuda_rng) X(lane_math)
FLOWVAE_FAMILIES(FLOWVAE_FAMILY_TEST)

struct Family {
  const char* name;
  void (*run)();
};

int main() {
#define FLOWVAE_FAMILY_ENTRY(name) {#name, test_##name},
  const Family families[] = {FLOWVAE_FAMILIES(FLOWVAE_FAMILY_ENTRY)};
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
