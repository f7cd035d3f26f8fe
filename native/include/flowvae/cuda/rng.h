// Philox streams on the GPU (native/cuda/rng.cu): bit-identical to
// flowvae/rng.h (the same code, flowvae/philox.h). `out` is device memory.
#pragma once
#include <cstddef>
#include <cstdint>

namespace flowvae {
namespace cuda {

void rng_normal(uint64_t seed, uint64_t offset, float* out, std::size_t n);
void rng_uniform(uint64_t seed, uint64_t offset, float* out, std::size_t n);

}  // namespace cuda
}  // namespace flowvae
