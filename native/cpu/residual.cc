// Residual-flow kernels (see flowvae/residual.h), row by row.
//
// Every matrix-vector product is written as a sum of scaled rows (axpy over
// contiguous memory), which the compiler vectorizes without reordering any
// sum: W·x reads a transposed copy of each W made once per call, Wᵀ·r reads
// W itself. Forward and backward keep the row state in float (log-det sums,
// the LU and the series in float64); the inverse runs entirely in float64 so
// its fixed-point iteration can reach tolerances below float32 rounding.
// Workspaces are allocated once per chunk of rows, never per row. The row
// functions (residual_rows.inc) are compiled for baseline x86-64 and for AVX2,
// picked at run time; both give the same bits.
#include "flowvae/residual.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "flowvae/cpu_features.h"
#include "flowvae/parallel.h"
#include "flowvae/simd_ops.h"

namespace flowvae {
namespace {

struct Shape {
  std::size_t layers = 0, d = 0, hidden = 0, net = 0;
  std::vector<std::size_t> in, out, w_off, b_off, h_off;
};

Shape MakeShape(const uint32_t* sizes, std::size_t layers) {
  Shape s;
  s.layers = layers;
  s.d = sizes[0];
  std::size_t w = 0, h = 0;
  for (std::size_t l = 0; l < layers; ++l) {
    const std::size_t m = sizes[l], n = sizes[l + 1];
    s.in.push_back(m);
    s.out.push_back(n);
    s.w_off.push_back(w);
    s.b_off.push_back(w + n * m);
    w += n * (m + 1);
    if (l + 1 < layers) {
      s.h_off.push_back(h);
      h += n;
    }
  }
  s.hidden = h;
  s.net = w;
  return s;
}

// Transposed copies of every weight: wt[w_off[l] + j·n + i] = W_l[i, j] (biases unused).
void Transpose(const Shape& s, const float* net, std::vector<float>* wt) {
  wt->assign(s.net, 0.0f);
  for (std::size_t l = 0; l < s.layers; ++l) {
    const std::size_t m = s.in[l], n = s.out[l];
    const float* w = net + s.w_off[l];
    float* t = wt->data() + s.w_off[l];
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < m; ++j) t[j * n + i] = w[i * m + j];
  }
}

// log|det a| of a [n, n] by LU with partial pivoting (in place); a⁻¹ into inv when non-null.
double LuLogAbsDet(double* a, std::size_t n, double* inv, std::size_t* perm, double* col) {
  double log_det = 0;
  for (std::size_t i = 0; i < n; ++i) perm[i] = i;
  for (std::size_t k = 0; k < n; ++k) {
    std::size_t p = k;
    for (std::size_t i = k + 1; i < n; ++i)
      if (std::fabs(a[i * n + k]) > std::fabs(a[p * n + k])) p = i;
    if (a[p * n + k] == 0) return -std::numeric_limits<double>::infinity();
    if (p != k) {
      for (std::size_t j = 0; j < n; ++j) std::swap(a[k * n + j], a[p * n + j]);
      std::swap(perm[k], perm[p]);
    }
    const double piv = a[k * n + k];
    log_det += std::log(std::fabs(piv));
    for (std::size_t i = k + 1; i < n; ++i) {
      const double f = (a[i * n + k] /= piv);
      if (f != 0)
        for (std::size_t j = k + 1; j < n; ++j) a[i * n + j] -= f * a[k * n + j];
    }
  }
  if (inv) {
    for (std::size_t c = 0; c < n; ++c) {
      for (std::size_t i = 0; i < n; ++i) col[i] = perm[i] == c ? 1.0 : 0.0;
      for (std::size_t i = 0; i < n; ++i) {
        double s = col[i];
        for (std::size_t j = 0; j < i; ++j) s -= a[i * n + j] * col[j];
        col[i] = s;
      }
      for (std::size_t i = n; i-- > 0;) {
        double s = col[i];
        for (std::size_t j = i + 1; j < n; ++j) s -= a[i * n + j] * col[j];
        col[i] = s / a[i * n + i];
      }
      for (std::size_t i = 0; i < n; ++i) inv[i * n + c] = col[i];
    }
  }
  return log_det;
}

// A row's series length: floored, clamped to [0, kResidualMaxTerms], NaN as 0.
inline std::size_t SeriesLength(float t) {
  if (!(t > 0)) return 0;
  if (t >= static_cast<float>(kResidualMaxTerms)) return kResidualMaxTerms;
  return static_cast<std::size_t>(t);
}

inline double SeriesWeight(std::size_t k, double p, std::size_t exact_terms) {
  return k <= exact_terms ? 1.0 : std::pow(1.0 - p, -static_cast<double>(k - exact_terms));
}

// Rows per parallel work item: enough multiply-adds (~1e5) to pay for a thread.
std::size_t Grain(const Shape& s, std::size_t tangents) {
  const std::size_t per_row = (tangents + 1) * (s.net + 1);
  return std::max<std::size_t>(1, 131072 / per_row);
}

namespace scalar {
#include "residual_rows.inc"
}  // namespace scalar

#if FLOWVAE_SIMD_X86
FLOWVAE_TARGET_AVX2
namespace avx2 {
#include "residual_rows.inc"
}  // namespace avx2
FLOWVAE_TARGET_END
inline bool UseAvx2() { return simd_level() != SimdLevel::kScalar; }
#else
namespace avx2 = scalar;
inline bool UseAvx2() { return false; }
#endif

}  // namespace

std::size_t residual_net_size(const uint32_t* sizes, std::size_t layers) {
  std::size_t n = 0;
  for (std::size_t l = 0; l < layers; ++l) n += static_cast<std::size_t>(sizes[l + 1]) * (sizes[l] + 1);
  return n;
}

std::size_t residual_stash_size(const uint32_t* sizes, std::size_t layers, bool exact) {
  std::size_t n = 0;
  for (std::size_t l = 1; l < layers; ++l) n += sizes[l];
  const std::size_t d = sizes[0];
  return n + (exact ? d * d : 2 * d);
}

void residual_normalize(const float* weight, float* u, float* v, float* out, float* sigma, std::size_t rows,
                        std::size_t cols, float c, std::size_t iterations) {
  std::vector<double> tv(cols), tu(rows);
  for (std::size_t it = 0; it < iterations; ++it) {
    std::fill(tv.begin(), tv.end(), 0.0);
    for (std::size_t i = 0; i < rows; ++i) {
      const double ui = u[i];
      for (std::size_t j = 0; j < cols; ++j) tv[j] += static_cast<double>(weight[i * cols + j]) * ui;
    }
    double nv = 0;
    for (double t : tv) nv += t * t;
    if (!(nv > 0) || !std::isfinite(nv)) break;
    nv = std::sqrt(nv);
    double nu = 0;
    for (std::size_t i = 0; i < rows; ++i) {
      double s = 0;
      for (std::size_t j = 0; j < cols; ++j) s += static_cast<double>(weight[i * cols + j]) * (tv[j] / nv);
      tu[i] = s;
      nu += s * s;
    }
    if (!(nu > 0) || !std::isfinite(nu)) break;
    nu = std::sqrt(nu);
    for (std::size_t j = 0; j < cols; ++j) v[j] = static_cast<float>(tv[j] / nv);
    for (std::size_t i = 0; i < rows; ++i) u[i] = static_cast<float>(tu[i] / nu);
  }
  double s = 0;
  for (std::size_t i = 0; i < rows; ++i) {
    double wi = 0;
    for (std::size_t j = 0; j < cols; ++j) wi += static_cast<double>(weight[i * cols + j]) * v[j];
    s += static_cast<double>(u[i]) * wi;
  }
  sigma[0] = static_cast<float>(s);
  const double scale = s > c ? c / s : 1.0;
  for (std::size_t i = 0; i < rows * cols; ++i) out[i] = static_cast<float>(weight[i] * scale);
}

void residual_normalize_backward(const float* weight, const float* u, const float* v, float sigma,
                                 const float* d_out, float* d_weight, std::size_t rows, std::size_t cols, float c) {
  const std::size_t n = rows * cols;
  if (!(sigma > c)) {
    for (std::size_t i = 0; i < n; ++i) d_weight[i] += d_out[i];
    return;
  }
  double gw = 0;
  for (std::size_t i = 0; i < n; ++i) gw += static_cast<double>(d_out[i]) * weight[i];
  const double a = static_cast<double>(c) / sigma;
  const double b = static_cast<double>(c) / (static_cast<double>(sigma) * sigma) * gw;
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j)
      d_weight[i * cols + j] += static_cast<float>(a * d_out[i * cols + j] - b * u[i] * v[j]);
}

std::size_t residual_forward(const float* x, const float* net, const uint32_t* sizes, std::size_t layers,
                             int activation, const float* noise, const float* terms, double p,
                             std::size_t exact_terms, float* y, float* log_det, float* stash, std::size_t batch) {
  if (batch == 0) return 0;
  const Shape s = MakeShape(sizes, layers);
  const bool exact = noise == nullptr;
  const std::size_t width = residual_stash_size(sizes, layers, exact);
  std::vector<float> wt;
  Transpose(s, net, &wt);
  const bool vec = UseAvx2();
  std::atomic<std::size_t> bad{0};
  parallel_for(batch, Grain(s, exact ? s.d : 4), [&](std::size_t r0, std::size_t r1) {
    const std::size_t n = (vec ? avx2::ForwardRows : scalar::ForwardRows)(
        s, x, net, wt.data(), activation, noise, terms, p, exact_terms, y, log_det, stash, width, r0, r1);
    if (n) bad += n;
  });
  return bad.load();
}

std::size_t residual_backward(const float* x, const float* net, const uint32_t* sizes, std::size_t layers,
                              int activation, bool exact, const float* stash, const float* dy,
                              const float* d_log_det, float* dx, float* d_net, std::size_t batch) {
  if (batch == 0) return 0;
  const Shape s = MakeShape(sizes, layers);
  const std::size_t width = residual_stash_size(sizes, layers, exact);
  std::vector<float> wt;
  Transpose(s, net, &wt);
  const bool vec = UseAvx2();
  std::atomic<std::size_t> bad{0};
  std::vector<double> partials;
  // Fixed chunks of rows (a function of the sizes only), summed in order: the same bits at any thread count.
  const std::size_t chunk_rows = std::max<std::size_t>(8, Grain(s, exact ? s.d : 2));
  const std::size_t max_chunks = std::min<std::size_t>(16, (batch + chunk_rows - 1) / chunk_rows);
  const std::size_t chunks = reduce_in_chunks(
      batch, 1, std::max<std::size_t>(1, max_chunks), s.net, &partials,
      [&](std::size_t r0, std::size_t r1, double* slice) {
        const std::size_t n = (vec ? avx2::BackwardRows : scalar::BackwardRows)(
            s, x, net, wt.data(), activation, exact, stash, width, dy, d_log_det, dx, slice, r0, r1);
        if (n) bad += n;
      });
  for (std::size_t k = 0; k < s.net; ++k) {
    double sum = 0;
    for (std::size_t c = 0; c < chunks; ++c) sum += partials[c * s.net + k];
    d_net[k] += static_cast<float>(sum);
  }
  return bad.load();
}

std::size_t residual_inverse(const float* y, const float* net, const uint32_t* sizes, std::size_t layers,
                             int activation, const float* noise, const float* terms, double p,
                             std::size_t exact_terms, double tol, std::size_t max_iterations, float* x,
                             float* log_det, std::size_t batch) {
  if (batch == 0) return 0;
  const Shape s = MakeShape(sizes, layers);
  std::vector<float> wt;
  Transpose(s, net, &wt);
  const bool vec = UseAvx2();
  std::atomic<std::size_t> bad{0};
  parallel_for(batch, 1, [&](std::size_t r0, std::size_t r1) {
    const std::size_t n = (vec ? avx2::InverseRows : scalar::InverseRows)(
        s, y, net, wt.data(), activation, noise, terms, p, exact_terms, tol, max_iterations, x, log_det, r0, r1);
    if (n) bad += n;
  });
  return bad.load();
}

}  // namespace flowvae
