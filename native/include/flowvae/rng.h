// Counter-based random streams (Philox4x32-10), bit-identical to the
// TypeScript reference (src/backend/reference/rng.ts), which defines them.
// Element j of the stream for `seed` depends only on (seed, j).
#pragma once
#include <cstddef>
#include <cstdint>

namespace flowvae {

// One Philox4x32-10 block: counter c[4], key k[2] -> out[4].
void philox4x32_10(const uint32_t c[4], const uint32_t k[2], uint32_t out[4]);

// out[i] = element offset + i: standard normals (Box-Muller, portable float64 math).
void rng_normal(uint64_t seed, uint64_t offset, float* out, std::size_t n);
void rng_normal(uint64_t seed, uint64_t offset, double* out, std::size_t n);

// out[i] = element offset + i: uniforms (2*(r >> 9) + 1) * 2^-24 in (0, 1).
void rng_uniform(uint64_t seed, uint64_t offset, float* out, std::size_t n);
void rng_uniform(uint64_t seed, uint64_t offset, double* out, std::size_t n);

}  // namespace flowvae
