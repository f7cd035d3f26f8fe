#include "flowvae/cpu_features.h"

#include <cstdlib>
#include <cstring>

namespace flowvae {
namespace {

SimdLevel detect() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  SimdLevel level = SimdLevel::kScalar;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) level = SimdLevel::kAvx2;
  if (level == SimdLevel::kAvx2 && __builtin_cpu_supports("avx512f")) level = SimdLevel::kAvx512;
#else
  SimdLevel level = SimdLevel::kScalar;
#endif
  if (const char* cap = std::getenv("FLOWVAE_SIMD")) {
    SimdLevel limit = level;
    if (std::strcmp(cap, "scalar") == 0) limit = SimdLevel::kScalar;
    else if (std::strcmp(cap, "avx2") == 0) limit = SimdLevel::kAvx2;
    if (static_cast<int>(limit) < static_cast<int>(level)) level = limit;
  }
  return level;
}

}  // namespace

SimdLevel simd_level() {
  static const SimdLevel level = detect();
  return level;
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512: return "avx512";
    case SimdLevel::kAvx2: return "avx2";
    default: return "scalar";
  }
}

}  // namespace flowvae
