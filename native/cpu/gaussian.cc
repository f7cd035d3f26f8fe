// Diagonal Gaussian kernels. Row sums accumulate in double: a row can hold
// thousands of terms and the ELBO is compared across backends to ~1e-5.
#include "flowvae/gaussian.h"

#include <cmath>

#include "flowvae/parallel.h"

namespace flowvae {
namespace {

constexpr double kLog2Pi = 1.8378770664093453;
// Rows per task: these kernels are cheap, so only large batches go parallel.
inline std::size_t RowGrain(std::size_t dim) { return dim == 0 ? 1 : 1 + 16384 / dim; }

}  // namespace

void gaussian_sample_diag(const float* mu, const float* logvar, const float* eps, float* z, float* logq,
                          std::size_t batch, std::size_t dim) {
  parallel_for(batch, RowGrain(dim), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      double s = 0;
      for (std::size_t j = r * dim; j < (r + 1) * dim; ++j) {
        z[j] = mu[j] + std::exp(0.5f * logvar[j]) * eps[j];
        s += kLog2Pi + static_cast<double>(logvar[j]) + static_cast<double>(eps[j]) * eps[j];
      }
      logq[r] = static_cast<float>(-0.5 * s);
    }
  });
}

void gaussian_sample_diag_backward(const float* logvar, const float* eps, const float* dz, const float* dlogq,
                                   float* dmu, float* dlogvar, std::size_t batch, std::size_t dim) {
  parallel_for(batch, RowGrain(dim), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      const float half_dlogq = 0.5f * dlogq[r];
      for (std::size_t j = r * dim; j < (r + 1) * dim; ++j) {
        dmu[j] = dz[j];
        dlogvar[j] = 0.5f * dz[j] * eps[j] * std::exp(0.5f * logvar[j]) - half_dlogq;
      }
    }
  });
}

void gaussian_log_standard(const float* x, float* out, std::size_t batch, std::size_t dim) {
  parallel_for(batch, RowGrain(dim), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      double s = 0;
      for (std::size_t j = r * dim; j < (r + 1) * dim; ++j) s += static_cast<double>(x[j]) * x[j];
      out[r] = static_cast<float>(-0.5 * (s + kLog2Pi * static_cast<double>(dim)));
    }
  });
}

void gaussian_log_standard_backward(const float* x, const float* dout, float* dx, std::size_t batch, std::size_t dim) {
  parallel_for(batch, RowGrain(dim), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      const float g = dout[r];
      for (std::size_t j = r * dim; j < (r + 1) * dim; ++j) dx[j] = -x[j] * g;
    }
  });
}

void gaussian_kl_standard(const float* mu, const float* logvar, float* out, std::size_t batch, std::size_t dim) {
  parallel_for(batch, RowGrain(dim), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      double s = 0;
      for (std::size_t j = r * dim; j < (r + 1) * dim; ++j) {
        const double lv = logvar[j];
        s += static_cast<double>(mu[j]) * mu[j] + std::expm1(lv) - lv;
      }
      out[r] = static_cast<float>(0.5 * s);
    }
  });
}

void gaussian_kl_standard_backward(const float* mu, const float* logvar, const float* dout, float* dmu, float* dlogvar,
                                   std::size_t batch, std::size_t dim) {
  parallel_for(batch, RowGrain(dim), [&](std::size_t r0, std::size_t r1) {
    for (std::size_t r = r0; r < r1; ++r) {
      const float g = dout[r];
      for (std::size_t j = r * dim; j < (r + 1) * dim; ++j) {
        dmu[j] = g * mu[j];
        dlogvar[j] = 0.5f * g * std::expm1(logvar[j]);
      }
    }
  });
}

}  // namespace flowvae
