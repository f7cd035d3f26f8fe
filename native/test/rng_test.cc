// Philox known answers and stream consistency across offsets and types.
#include <cmath>
#include <vector>

#include "check.h"
#include "flowvae/rng.h"

void test_rng() {
  const uint32_t c[4] = {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u};
  const uint32_t k[2] = {0xa4093822u, 0x299f31d0u};
  const uint32_t want[4] = {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u};
  uint32_t out[4];
  flowvae::philox4x32_10(c, k, out);
  for (int i = 0; i < 4; ++i) CHECK(out[i] == want[i]);

  for (std::size_t n : {1, 2, 3, 5, 1001, 70001}) {
    std::vector<double> whole(n + 3);
    flowvae::rng_normal(77, 0, whole.data(), whole.size());
    for (uint64_t offset : {0, 1, 2, 3}) {
      std::vector<float> part(n);
      flowvae::rng_normal(77, offset, part.data(), n);
      bool same = true;
      for (std::size_t i = 0; i < n; ++i) same = same && part[i] == static_cast<float>(whole[i + offset]);
      CHECK(same);
    }
    std::vector<float> u(n);
    flowvae::rng_uniform(5, 9, u.data(), n);
    bool inside = true;
    for (float v : u) inside = inside && v > 0.0f && v < 1.0f;
    CHECK(inside);
  }
  flowvae::rng_normal(1, 0, static_cast<float*>(nullptr), 0);  // n = 0 touches nothing
}
