#include "flowvae/cpu_features.h"

#include <cstdio>
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
    if (std::strcmp(cap, "scalar") == 0)
      limit = SimdLevel::kScalar;
    else if (std::strcmp(cap, "avx2") == 0)
      limit = SimdLevel::kAvx2;
    if (static_cast<int>(limit) < static_cast<int>(level)) level = limit;
  }
  return level;
}

// The highest cache level listed for cpu0 ("32768K"), or 0.
std::size_t read_last_level_cache() {
  std::size_t best = 0;
  for (int index = 0; index < 8; ++index) {
    char path[96];
    std::snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/size", index);
    std::FILE* f = std::fopen(path, "r");
    if (!f) continue;
    unsigned long value = 0;
    char unit = 0;
    if (std::fscanf(f, "%lu%c", &value, &unit) >= 1) {
      const std::size_t bytes = value * (unit == 'K' ? 1024ul : unit == 'M' ? 1024ul * 1024 : 1ul);
      if (bytes > best) best = bytes;
    }
    std::fclose(f);
  }
  return best;
}

}  // namespace

std::size_t last_level_cache_bytes() {
  static const std::size_t bytes = [] {
    if (const char* set = std::getenv("FLOWVAE_CACHE_BYTES")) {
      char* end = nullptr;
      const unsigned long long v = std::strtoull(set, &end, 10);
      if (end != set && *end == '\0' && v > 0) return static_cast<std::size_t>(v);
    }
    const std::size_t read = read_last_level_cache();
    return read > 0 ? read : std::size_t{32} << 20;
  }();
  return bytes;
}

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
