// Philox4x32-10 streams on the cpu. The block function and the float64 math
// are flowvae/philox.h, shared with the GPU; it repeats, operation for
// operation, src/backend/reference/rng.ts (the file is compiled with
// -ffp-contract=off, so no FMA contraction changes the rounding), which is
// what makes the streams bit-identical across backends.
#include "flowvae/rng.h"

#include "flowvae/parallel.h"
#include "flowvae/philox.h"

namespace flowvae {
namespace {

// Fills out[0, n) with elements offset.. of the stream, block by block,
// in parallel over ranges of blocks (the values do not depend on the split).
template <typename T, void (*Lanes)(const uint32_t*, double*)>
void Fill(uint64_t seed, uint64_t offset, T* out, std::size_t n) {
  if (n == 0) return;
  const uint64_t first_block = offset / 4;
  const uint64_t last_block = (offset + n - 1) / 4;
  const std::size_t blocks = static_cast<std::size_t>(last_block - first_block + 1);
  parallel_for(blocks, 4096, [&](std::size_t begin, std::size_t end) {
    uint32_t words[4];
    double values[4];
    for (std::size_t b = begin; b < end; ++b) {
      const uint64_t block = first_block + b;
      philox::StreamBlock(block, seed, words);
      Lanes(words, values);
      for (int lane = 0; lane < 4; ++lane) {
        const uint64_t j = block * 4 + static_cast<uint64_t>(lane);
        if (j < offset || j >= offset + n) continue;
        out[j - offset] = static_cast<T>(values[lane]);
      }
    }
  });
}

}  // namespace

void philox4x32_10(const uint32_t c[4], const uint32_t k[2], uint32_t out[4]) {
  philox::Block(c[0], c[1], c[2], c[3], k[0], k[1], out);
}

void rng_normal(uint64_t seed, uint64_t offset, float* out, std::size_t n) {
  Fill<float, philox::NormalLanes>(seed, offset, out, n);
}
void rng_normal(uint64_t seed, uint64_t offset, double* out, std::size_t n) {
  Fill<double, philox::NormalLanes>(seed, offset, out, n);
}
void rng_uniform(uint64_t seed, uint64_t offset, float* out, std::size_t n) {
  Fill<float, philox::UniformLanes>(seed, offset, out, n);
}
void rng_uniform(uint64_t seed, uint64_t offset, double* out, std::size_t n) {
  Fill<double, philox::UniformLanes>(seed, offset, out, n);
}

}  // namespace flowvae
