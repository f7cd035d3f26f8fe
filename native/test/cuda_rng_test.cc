// The stream as the cuda backend computes it (native/cuda/rng.cu: element j is
// lane j % 4 of block j / 4, from flowvae/philox.h), run on the host: it must
// give the cpu kernels' streams (block ranges, lanes clipped at both ends) bit
// for bit, so the GPU (same code, no FMA contraction, IEEE float64) gives them too.
#include <cstring>
#include <vector>

#include "check.h"
#include "flowvae/philox.h"
#include "flowvae/rng.h"

namespace {

// Element j of the stream from the host/device code, as native/cuda/rng.cu computes it.
template <bool kNormal>
double Element(uint64_t seed, uint64_t j) {
  uint32_t words[4];
  double values[4];
  flowvae::philox::StreamBlock(j / 4, seed, words);
  if (kNormal) {
    flowvae::philox::NormalLanes(words, values);
  } else {
    flowvae::philox::UniformLanes(words, values);
  }
  return values[j % 4];
}

bool SameBits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

}  // namespace

void test_cuda_rng() {
  // Seeds with both key words used; offsets across a 2^32 block boundary.
  const uint64_t seeds[] = {0, 1, 77, 0x123456789abcdull, 9007199254740991ull};
  const uint64_t offsets[] = {0, 3, 1000001, 4ull * 4294967295ull - 5};
  constexpr std::size_t n = 4099;
  std::vector<double> normals(n), uniforms(n);
  for (uint64_t seed : seeds) {
    for (uint64_t offset : offsets) {
      flowvae::rng_normal(seed, offset, normals.data(), n);
      flowvae::rng_uniform(seed, offset, uniforms.data(), n);
      bool same_normals = true, same_uniforms = true;
      for (std::size_t i = 0; i < n; ++i) {
        same_normals = same_normals && SameBits(Element<true>(seed, offset + i), normals[i]);
        same_uniforms = same_uniforms && SameBits(Element<false>(seed, offset + i), uniforms[i]);
      }
      CHECK(same_normals);
      CHECK(same_uniforms);
    }
  }
}
