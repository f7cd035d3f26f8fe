// Philox streams on the GPU (see flowvae/cuda/rng.h). One thread per Philox
// block of four elements; the arithmetic is flowvae/philox.h (the cpu's), compiled
// with -fmad=false (CMakeLists.txt) so every float64 product and sum rounds
// separately, as on the cpu.
#include <cuda_runtime.h>

#include "common.cuh"
#include "flowvae/cuda/rng.h"
#include "flowvae/philox.h"

namespace flowvae {
namespace cuda {
namespace {

template <bool kNormal>
__global__ void FillKernel(uint64_t seed, uint64_t offset, float* out, uint64_t n, uint64_t first_block,
                           uint64_t blocks) {
  for (uint64_t b = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; b < blocks;
       b += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const uint64_t block = first_block + b;
    uint32_t words[4];
    double values[4];
    philox::StreamBlock(block, seed, words);
    if (kNormal) {
      philox::NormalLanes(words, values);
    } else {
      philox::UniformLanes(words, values);
    }
#pragma unroll
    for (int lane = 0; lane < 4; ++lane) {
      const uint64_t j = block * 4 + lane;
      if (j >= offset && j < offset + n) out[j - offset] = static_cast<float>(values[lane]);
    }
  }
}

template <bool kNormal>
void Fill(uint64_t seed, uint64_t offset, float* out, std::size_t n, const char* name) {
  if (n == 0) return;
  const uint64_t first_block = offset / 4;
  const uint64_t blocks = (offset + n - 1) / 4 - first_block + 1;
  FillKernel<kNormal><<<detail::GridFor(blocks, 256), 256, 0, stream()>>>(seed, offset, out, n, first_block, blocks);
  check_launch(name);
}

}  // namespace

void rng_normal(uint64_t seed, uint64_t offset, float* out, std::size_t n) {
  Fill<true>(seed, offset, out, n, "rng_normal");
}
void rng_uniform(uint64_t seed, uint64_t offset, float* out, std::size_t n) {
  Fill<false>(seed, offset, out, n, "rng_uniform");
}

}  // namespace cuda
}  // namespace flowvae
