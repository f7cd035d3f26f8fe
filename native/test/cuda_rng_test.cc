// The host/device rng code of the cuda backend (flowvae/cuda/philox.h), run
// on the host: it must give the cpu kernels' streams bit for bit, so the GPU
// (same code, no FMA contraction, IEEE float64) gives them too.
#include <cstring>
#include <vector>

#include "check.h"
#include "flowvae/cuda/philox.h"
#include "flowvae/rng.h"

namespace {

// Element j of the stream from the host/device code, as native/cuda/rng.cu computes it.
template <bool kNormal>
double Element(uint64_t seed, uint64_t j) {
  uint32_t words[4];
  double values[4];
  flowvae::cuda::philox::StreamBlock(j / 4, seed, words);
  if (kNormal) {
    flowvae::cuda::philox::NormalLanes(words, values);
  } else {
    flowvae::cuda::philox::UniformLanes(words, values);
  }
  return values[j % 4];
}

bool SameBits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

}  // namespace

void test_cuda_rng() {
  const uint32_t c[4] = {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u};
  const uint32_t k[2] = {0xa4093822u, 0x299f31d0u};
  uint32_t host[4], port[4];
  flowvae::philox4x32_10(c, k, host);
  flowvae::cuda::philox::Block(c[0], c[1], c[2], c[3], k[0], k[1], port);
  for (int i = 0; i < 4; ++i) CHECK(host[i] == port[i]);

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
