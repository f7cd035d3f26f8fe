// Observation log-likelihoods. Row sums accumulate in double (784 terms per
// MNIST row); per-element math stays in float.
#include "flowvae/likelihood.h"

#include <cmath>

#include "flowvae/parallel.h"

namespace flowvae {
namespace {

constexpr double kLog2Pi = 1.8378770664093453;
inline std::size_t RowGrain(std::size_t dim) { return dim == 0 ? 1 : 1 + 16384 / dim; }

// log(1 + e^l) = max(l, 0) + log1p(e^-|l|): no overflow, no cancellation.
inline float Softplus(float l) { return std::fmax(l, 0.0f) + std::log1p(std::exp(-std::fabs(l))); }

inline float Sigmoid(float l) {
  if (l >= 0) return 1.0f / (1.0f + std::exp(-l));
  const float e = std::exp(l);
  return e / (1.0f + e);
}

}  // namespace

void likelihood_bernoulli(const float* x, const float* logits, float* out, std::size_t batch, std::size_t dim) {
  parallel_for(batch, RowGrain(dim), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      double s = 0;
      for (std::size_t j = r * dim; j < (r + 1) * dim; ++j) s += x[j] * logits[j] - Softplus(logits[j]);
      out[r] = static_cast<float>(s);
    }
  });
}

void likelihood_bernoulli_backward(const float* x, const float* logits, const float* dout, float* dlogits,
                                   std::size_t batch, std::size_t dim) {
  parallel_for(batch, RowGrain(dim), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      const float g = dout[r];
      for (std::size_t j = r * dim; j < (r + 1) * dim; ++j) dlogits[j] = g * (x[j] - Sigmoid(logits[j]));
    }
  });
}

void likelihood_gaussian(const float* x, const float* mean, const float* logvar, float* out, std::size_t batch,
                         std::size_t dim) {
  double logvar_sum = 0;
  for (std::size_t j = 0; j < dim; ++j) logvar_sum += logvar[j];
  parallel_for(batch, RowGrain(dim), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      double s = 0;
      for (std::size_t j = 0; j < dim; ++j) {
        const float d = x[r * dim + j] - mean[r * dim + j];
        s += d * d * std::exp(-logvar[j]);
      }
      out[r] = static_cast<float>(-0.5 * (s + logvar_sum + kLog2Pi * static_cast<double>(dim)));
    }
  });
}

void likelihood_gaussian_backward(const float* x, const float* mean, const float* logvar, const float* dout,
                                  float* dmean, float* dlogvar, std::size_t batch, std::size_t dim) {
  // dMean is row-parallel; the dLogvar reduction over rows runs in a fixed
  // order on one thread so the result does not depend on the thread count.
  parallel_for(batch, RowGrain(dim), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      for (std::size_t j = 0; j < dim; ++j) {
        const float d = x[r * dim + j] - mean[r * dim + j];
        dmean[r * dim + j] = dout[r] * d * std::exp(-logvar[j]);
      }
    }
  });
  if (!dlogvar) return;
  for (std::size_t j = 0; j < dim; ++j) {
    const float precision = std::exp(-logvar[j]);
    double s = 0;
    for (std::size_t r = 0; r < batch; ++r) {
      const float d = x[r * dim + j] - mean[r * dim + j];
      s += dout[r] * 0.5 * (d * d * precision - 1.0);
    }
    dlogvar[j] += static_cast<float>(s);
  }
}

}  // namespace flowvae
