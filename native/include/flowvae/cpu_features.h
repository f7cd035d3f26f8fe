// Run-time CPU feature detection: the prebuilt binary targets baseline x86-64
// and picks AVX2/FMA or AVX-512 code paths when the running CPU has them.
#pragma once

#include <cstddef>

namespace flowvae {

enum class SimdLevel { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// Best level supported by this CPU, capped by FLOWVAE_SIMD=scalar|avx2|avx512.
SimdLevel simd_level();
const char* simd_level_name(SimdLevel level);

// Size of the last-level cache one core sees: FLOWVAE_CACHE_BYTES if set,
// else Linux sysfs, else 32 MiB. Kernels whose data outgrows it write their
// large outputs with streaming stores, as memcpy does for large copies.
std::size_t last_level_cache_bytes();

}  // namespace flowvae
