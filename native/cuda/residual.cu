// Residual flows on the GPU (see flowvae/residual.h for the mathematics and
// layouts, flowvae/cuda/residual.h for the interface).
//
// One thread per row runs the cpu's row algorithm: the primal pass, the
// tangent passes (exact log-det) or vector-Jacobian products (estimator), the
// LU in float64, and in backward the tangent adjoints and the primal adjoint.
// The row's vectors live in a global scratch (rows per launch bounded by
// ScratchFloats). Backward writes each row's network gradient into a scratch
// that column_sums.cuh adds up in float64 in a fixed order (no atomics). The
// inverse runs its fixed-point iteration and log-det in float64.
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>

#include "column_sums.cuh"
#include "common.cuh"
#include "flowvae/cuda/residual.h"

namespace flowvae {
namespace cuda {
namespace {

using detail::Finite;

constexpr int kThreads = 128;

struct Shape {
  int layers, d, hidden, net, width;  // width: the widest layer (≥ d)
  int in[kResidualMaxLayers], out[kResidualMaxLayers];
  int w_off[kResidualMaxLayers], b_off[kResidualMaxLayers], h_off[kResidualMaxLayers];
};

Shape MakeShape(const uint32_t* sizes, std::size_t layers) {
  if (layers < 1 || layers > kResidualMaxLayers) throw std::invalid_argument("residual: too many layers for cuda");
  Shape s{};
  s.layers = static_cast<int>(layers);
  s.d = static_cast<int>(sizes[0]);
  int w = 0, h = 0, width = s.d;
  for (int l = 0; l < s.layers; ++l) {
    const int m = static_cast<int>(sizes[l]), n = static_cast<int>(sizes[l + 1]);
    s.in[l] = m;
    s.out[l] = n;
    s.w_off[l] = w;
    s.b_off[l] = w + n * m;
    w += n * (m + 1);
    s.h_off[l] = h;
    if (l + 1 < s.layers) h += n;
    width = std::max(width, n);
  }
  s.hidden = h;
  s.net = w;
  s.width = width;
  return s;
}

// Values of one row's scratch of T for `tangents` tangents, and of float64.
__host__ __device__ inline std::size_t RowValues(const Shape& s, int tangents) {
  return static_cast<std::size_t>(5 * s.hidden + s.d + 2 * s.width + tangents * (s.hidden + s.d) + 3 * s.d);
}
__host__ __device__ inline std::size_t RowDoubles(const Shape& s, bool exact) {
  return static_cast<std::size_t>((exact ? 2 * s.d * s.d : 0) + 2 * s.d);
}

template <class T>
__device__ inline void Activate(int kind, T a, T* f, T* d1, T* d2) {
  if (kind == 0) {
    const T e = exp(-fabs(a));
    const T sg = a >= 0 ? T(1) / (T(1) + e) : e / (T(1) + e);
    const T ds = sg * (T(1) - sg);
    const T k = T(1) / T(1.1);
    *f = a * sg * k;
    *d1 = (sg + a * ds) * k;
    *d2 = ds * (T(2) + a * (T(1) - T(2) * sg)) * k;
  } else if (a > 0) {
    *f = a;
    *d1 = T(1);
    *d2 = T(0);
  } else {
    const T e = exp(a);
    *f = expm1(a);
    *d1 = e;
    *d2 = e;
  }
}

template <class T>
struct Row {
  const Shape* s;
  const float* net;
  int kind;
  T *pre, *act, *d1, *d2, *inject, *g, *t0, *t1, *tan, *jac, *v, *r, *rn;
  double *lu, *inv, *col, *w;

  __device__ Row(const Shape* shape, const float* n, int k, T* ts, double* ds, int tangents, bool exact)
      : s(shape), net(n), kind(k) {
    const int h = s->hidden, d = s->d;
    pre = ts;
    act = pre + h;
    d1 = act + h;
    d2 = d1 + h;
    inject = d2 + h;
    g = inject + h;
    t0 = g + d;
    t1 = t0 + s->width;
    tan = t1 + s->width;
    jac = tan + tangents * h;
    v = jac + tangents * d;
    r = v + d;
    rn = r + d;
    lu = ds;
    inv = lu + (exact ? d * d : 0);
    col = inv + (exact ? d * d : 0);
    w = col + d;
  }

  template <class In>
  __device__ void Primal(const In* x) {
    for (int l = 0; l < s->layers; ++l) {
      const int m = s->in[l], n = s->out[l];
      const bool last = l + 1 == s->layers;
      T* a = last ? g : pre + s->h_off[l];
      const float* wl = net + s->w_off[l];
      const float* b = net + s->b_off[l];
      for (int i = 0; i < n; ++i) {
        T acc = static_cast<T>(b[i]);
        for (int j = 0; j < m; ++j)
          acc += static_cast<T>(wl[i * m + j]) * (l == 0 ? static_cast<T>(x[j]) : act[s->h_off[l - 1] + j]);
        a[i] = acc;
      }
      if (!last) {
        const int h = s->h_off[l];
        for (int i = 0; i < n; ++i) Activate<T>(kind, a[i], &act[h + i], &d1[h + i], &d2[h + i]);
      }
    }
  }

  __device__ void Vjp(const T* in, T* out) {
    T* cur = t0;
    T* nxt = t1;
    for (int i = 0; i < s->d; ++i) cur[i] = in[i];
    for (int l = s->layers - 1; l >= 0; --l) {
      const int m = s->in[l], n = s->out[l];
      const float* wl = net + s->w_off[l];
      for (int j = 0; j < m; ++j) {
        T acc = 0;
        for (int i = 0; i < n; ++i) acc += static_cast<T>(wl[i * m + j]) * cur[i];
        nxt[j] = l > 0 ? acc * d1[s->h_off[l - 1] + j] : acc;
      }
      T* t = cur;
      cur = nxt;
      nxt = t;
    }
    for (int i = 0; i < s->d; ++i) out[i] = cur[i];
  }

  // Tangents e_t (vec null) or vec.
  __device__ void Tangent(const T* vec, int count) {
    const int h = s->hidden;
    for (int t = 0; t < count; ++t) {
      T* tb = tan + t * h;
      for (int l = 0; l < s->layers; ++l) {
        const int m = s->in[l], n = s->out[l];
        const bool last = l + 1 == s->layers;
        T* a = last ? jac + t * s->d : tb + s->h_off[l];
        const float* wl = net + s->w_off[l];
        for (int i = 0; i < n; ++i) {
          T acc = 0;
          if (l == 0) {
            if (vec) {
              for (int j = 0; j < m; ++j) acc += static_cast<T>(wl[i * m + j]) * vec[j];
            } else {
              acc = static_cast<T>(wl[i * m + t]);
            }
          } else {
            const int po = s->h_off[l - 1];
            for (int j = 0; j < m; ++j) acc += static_cast<T>(wl[i * m + j]) * d1[po + j] * tb[po + j];
          }
          a[i] = acc;
        }
      }
    }
  }

  __device__ void TangentBackward(int t, const T* vec, const float* wv, T scale, float* dnet) {
    const T* tb = tan + t * s->hidden;
    T* cur = t0;
    T* nxt = t1;
    for (int i = 0; i < s->d; ++i) cur[i] = scale * static_cast<T>(wv[i]);
    for (int l = s->layers - 1; l >= 0; --l) {
      const int m = s->in[l], n = s->out[l];
      float* dw = dnet + s->w_off[l];
      if (l == 0) {
        for (int i = 0; i < n; ++i) {
          if (vec) {
            for (int j = 0; j < m; ++j) dw[i * m + j] += static_cast<float>(cur[i] * vec[j]);
          } else {
            dw[i * m + t] += static_cast<float>(cur[i]);
          }
        }
        break;
      }
      const int po = s->h_off[l - 1];
      const float* wl = net + s->w_off[l];
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < m; ++j) dw[i * m + j] += static_cast<float>(cur[i] * d1[po + j] * tb[po + j]);
      for (int j = 0; j < m; ++j) {
        T acc = 0;
        for (int i = 0; i < n; ++i) acc += static_cast<T>(wl[i * m + j]) * cur[i];
        inject[po + j] += d2[po + j] * tb[po + j] * acc;
        nxt[j] = acc * d1[po + j];
      }
      T* tmp = cur;
      cur = nxt;
      nxt = tmp;
    }
  }

  __device__ void PrimalBackward(const float* x, const float* dy, float* dnet, float* dx) {
    T* cur = t0;
    T* nxt = t1;
    for (int i = 0; i < s->d; ++i) cur[i] = static_cast<T>(dy[i]);
    for (int l = s->layers - 1; l >= 0; --l) {
      const int m = s->in[l], n = s->out[l];
      const float* wl = net + s->w_off[l];
      float* dw = dnet + s->w_off[l];
      float* db = dnet + s->b_off[l];
      const int po = l > 0 ? s->h_off[l - 1] : 0;
      for (int i = 0; i < n; ++i) {
        db[i] += static_cast<float>(cur[i]);
        for (int j = 0; j < m; ++j)
          dw[i * m + j] += static_cast<float>(cur[i] * (l > 0 ? act[po + j] : static_cast<T>(x[j])));
      }
      for (int j = 0; j < m; ++j) {
        T acc = 0;
        for (int i = 0; i < n; ++i) acc += static_cast<T>(wl[i * m + j]) * cur[i];
        nxt[j] = l > 0 ? acc * d1[po + j] + inject[po + j] : acc;
      }
      T* tmp = cur;
      cur = nxt;
      nxt = tmp;
    }
    for (int i = 0; i < s->d; ++i) dx[i] = static_cast<float>(static_cast<T>(dy[i]) + cur[i]);
  }

  // log|det(I + J)| after Primal; tail (stash values after the hidden ones) or null.
  __device__ double LogDet(bool exact, const float* noise, float terms, double p, int exact_terms, float* tail,
                           int* perm) {
    const int d = s->d;
    if (exact) {
      Tangent(nullptr, d);
      for (int i = 0; i < d; ++i)
        for (int t = 0; t < d; ++t) lu[i * d + t] = (i == t ? 1.0 : 0.0) + static_cast<double>(jac[t * d + i]);
      double ld = 0;
      for (int i = 0; i < d; ++i) perm[i] = i;
      for (int k = 0; k < d; ++k) {
        int pv = k;
        for (int i = k + 1; i < d; ++i)
          if (fabs(lu[i * d + k]) > fabs(lu[pv * d + k])) pv = i;
        if (lu[pv * d + k] == 0) return -INFINITY;
        if (pv != k) {
          for (int j = 0; j < d; ++j) {
            const double tmp = lu[k * d + j];
            lu[k * d + j] = lu[pv * d + j];
            lu[pv * d + j] = tmp;
          }
          const int tp = perm[k];
          perm[k] = perm[pv];
          perm[pv] = tp;
        }
        const double piv = lu[k * d + k];
        ld += log(fabs(piv));
        for (int i = k + 1; i < d; ++i) {
          const double f = (lu[i * d + k] /= piv);
          if (f != 0)
            for (int j = k + 1; j < d; ++j) lu[i * d + j] -= f * lu[k * d + j];
        }
      }
      if (tail) {
        for (int c = 0; c < d; ++c) {
          for (int i = 0; i < d; ++i) col[i] = perm[i] == c ? 1.0 : 0.0;
          for (int i = 0; i < d; ++i) {
            double acc = col[i];
            for (int j = 0; j < i; ++j) acc -= lu[i * d + j] * col[j];
            col[i] = acc;
          }
          for (int i = d - 1; i >= 0; --i) {
            double acc = col[i];
            for (int j = i + 1; j < d; ++j) acc -= lu[i * d + j] * col[j];
            col[i] = acc / lu[i * d + i];
          }
          for (int i = 0; i < d; ++i) tail[i * d + c] = static_cast<float>(col[i]);
        }
      }
      return ld;
    }
    const int n = !(terms > 0) ? 0 : terms >= 1e6f ? 1000000 : static_cast<int>(terms);  // as SeriesLength on the cpu
    for (int i = 0; i < d; ++i) {
      v[i] = static_cast<T>(noise[i]);
      r[i] = v[i];
      w[i] = static_cast<double>(v[i]);
    }
    double ld = 0;
    for (int k = 1; k <= n; ++k) {
      Vjp(r, rn);
      T* tmp = r;
      r = rn;
      rn = tmp;
      const double coef = k <= exact_terms ? 1.0 : pow(1.0 - p, -static_cast<double>(k - exact_terms));
      double vr = 0;
      for (int i = 0; i < d; ++i) {
        vr += static_cast<double>(v[i]) * static_cast<double>(r[i]);
        w[i] += (k % 2 == 0 ? coef : -coef) * static_cast<double>(r[i]);
      }
      ld += ((k % 2 == 1 ? 1.0 : -1.0) / k) * coef * vr;
    }
    if (tail) {
      for (int i = 0; i < d; ++i) {
        tail[i] = static_cast<float>(v[i]);
        tail[d + i] = static_cast<float>(w[i]);
      }
    }
    return ld;
  }
};

struct Common {
  Shape s;
  const float* net;
  int kind;
  bool exact;
  const float* noise;
  const float* terms;
  double p;
  int exact_terms;
  std::size_t r0, r1, width;
  unsigned long long* bad;
};

__global__ void ForwardKernel(Common c, const float* x, float* y, float* log_det, float* stash, float* ts, double* ds,
                              int* perms) {
  const std::size_t k = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  const std::size_t r = c.r0 + k;
  if (r >= c.r1) return;
  const int d = c.s.d;
  const int tangents = c.exact ? d : 1;
  Row<float> row(&c.s, c.net, c.kind, ts + k * RowValues(c.s, tangents), ds + k * RowDoubles(c.s, c.exact), tangents,
                 c.exact);
  const float* xr = x + r * d;
  row.Primal(xr);
  bool ok = true;
  for (int i = 0; i < d; ++i) {
    y[r * d + i] = xr[i] + row.g[i];
    ok = ok && Finite(y[r * d + i]);
  }
  float* sr = stash + r * c.width;
  for (int i = 0; i < c.s.hidden; ++i) sr[i] = row.pre[i];
  const float ld =
      static_cast<float>(row.LogDet(c.exact, c.exact ? nullptr : c.noise + r * d, c.exact ? 0.0f : c.terms[r], c.p,
                                    c.exact_terms, sr + c.s.hidden, perms + k * d));
  log_det[r] = ld;
  if (!ok || !Finite(ld)) atomicAdd(c.bad, 1ull);
}

__global__ void BackwardKernel(Common c, const float* x, const float* stash, const float* dy, const float* d_log_det,
                               float* dx, float* grad_rows, float* ts, double* ds) {
  const std::size_t k = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  const std::size_t r = c.r0 + k;
  if (r >= c.r1) return;
  const int d = c.s.d;
  const int tangents = c.exact ? d : 1;
  Row<float> row(&c.s, c.net, c.kind, ts + k * RowValues(c.s, tangents), ds + k * RowDoubles(c.s, c.exact), tangents,
                 c.exact);
  float* dnet = grad_rows + k * c.s.net;
  for (int i = 0; i < c.s.net; ++i) dnet[i] = 0;
  const float* tail = stash + r * c.width + c.s.hidden;
  row.Primal(x + r * d);
  for (int i = 0; i < c.s.hidden; ++i) row.inject[i] = 0;
  const float scale = d_log_det[r];
  if (scale != 0) {
    if (c.exact) {
      row.Tangent(nullptr, d);
      for (int t = 0; t < d; ++t) row.TangentBackward(t, nullptr, tail + t * d, scale, dnet);
    } else {
      for (int i = 0; i < d; ++i) row.v[i] = tail[i];
      row.Tangent(row.v, 1);
      row.TangentBackward(0, row.v, tail + d, scale, dnet);
    }
  }
  row.PrimalBackward(x + r * d, dy + r * d, dnet, dx + r * d);
  bool ok = true;
  for (int i = 0; i < d; ++i) ok = ok && Finite(dx[r * d + i]);
  if (!ok) atomicAdd(c.bad, 1ull);
}

__global__ void InverseKernel(Common c, const float* y, double tol, std::size_t max_iterations, float* x,
                              float* log_det, double* ts, double* ds, int* perms) {
  const std::size_t k = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  const std::size_t r = c.r0 + k;
  if (r >= c.r1) return;
  const int d = c.s.d;
  const int tangents = c.exact ? d : 1;
  double* mine = ts + k * (RowValues(c.s, tangents) + d);
  Row<double> row(&c.s, c.net, c.kind, mine + d, ds + k * RowDoubles(c.s, c.exact), tangents, c.exact);
  double* z = mine;
  const float* yr = y + r * d;
  for (int i = 0; i < d; ++i) z[i] = yr[i];
  bool converged = false;
  for (std::size_t it = 0; it < max_iterations; ++it) {
    row.Primal(z);
    double delta = 0;
    for (int i = 0; i < d; ++i) {
      const double next = static_cast<double>(yr[i]) - row.g[i];
      const double dz = fabs(next - z[i]);
      if (!(dz <= delta)) delta = dz;
      z[i] = next;
    }
    if (delta != delta) break;
    if (delta <= tol) {
      converged = true;
      break;
    }
  }
  for (int i = 0; i < d; ++i) x[r * d + i] = static_cast<float>(z[i]);
  if (!converged) {
    log_det[r] = NAN;
    atomicAdd(c.bad, 1ull);
    return;
  }
  row.Primal(z);
  const float ld =
      static_cast<float>(-row.LogDet(c.exact, c.exact ? nullptr : c.noise + r * d, c.exact ? 0.0f : c.terms[r], c.p,
                                     c.exact_terms, nullptr, perms + k * d));
  log_det[r] = ld;
  if (!Finite(ld)) atomicAdd(c.bad, 1ull);
}

__global__ void NormalizeKernel(const float* weight, float* u, float* v, float* out, float* sigma, int rows, int cols,
                                float c, std::size_t iterations, double* tv, double* tu) {
  // One block; thread 0 computes the norms, all threads the products.
  __shared__ double norm;
  __shared__ bool stop;
  for (std::size_t it = 0; it < iterations; ++it) {
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
      double acc = 0;
      for (int i = 0; i < rows; ++i) acc += static_cast<double>(weight[i * cols + j]) * u[i];
      tv[j] = acc;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      double n2 = 0;
      for (int j = 0; j < cols; ++j) n2 += tv[j] * tv[j];
      stop = !(n2 > 0) || !isfinite(n2);
      norm = sqrt(n2);
    }
    __syncthreads();
    if (stop) break;
    const double nv = norm;
    for (int i = threadIdx.x; i < rows; i += blockDim.x) {
      double acc = 0;
      for (int j = 0; j < cols; ++j) acc += static_cast<double>(weight[i * cols + j]) * (tv[j] / nv);
      tu[i] = acc;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      double n2 = 0;
      for (int i = 0; i < rows; ++i) n2 += tu[i] * tu[i];
      stop = !(n2 > 0) || !isfinite(n2);
      norm = sqrt(n2);
    }
    __syncthreads();
    if (stop) break;
    const double nu = norm;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) v[j] = static_cast<float>(tv[j] / nv);
    for (int i = threadIdx.x; i < rows; i += blockDim.x) u[i] = static_cast<float>(tu[i] / nu);
    __syncthreads();
  }
  __shared__ double sig;
  if (threadIdx.x == 0) {
    double acc = 0;
    for (int i = 0; i < rows; ++i) {
      double wi = 0;
      for (int j = 0; j < cols; ++j) wi += static_cast<double>(weight[i * cols + j]) * v[j];
      acc += static_cast<double>(u[i]) * wi;
    }
    sig = acc;
    sigma[0] = static_cast<float>(acc);
  }
  __syncthreads();
  const double scale = sig > c ? c / sig : 1.0;
  for (std::size_t i = threadIdx.x; i < static_cast<std::size_t>(rows) * cols; i += blockDim.x)
    out[i] = static_cast<float>(weight[i] * scale);
}

std::size_t StashWidth(const Shape& s, bool exact) {
  return static_cast<std::size_t>(s.hidden) +
         (exact ? static_cast<std::size_t>(s.d) * s.d : 2 * static_cast<std::size_t>(s.d));
}

// Rows per launch: the scratch of a launch stays within ScratchFloats (at least one row).
std::size_t Chunk(std::size_t per_row_floats, std::size_t batch) {
  const std::size_t rows = std::max<std::size_t>(1, detail::ScratchFloats() / std::max<std::size_t>(1, per_row_floats));
  return std::min({batch, rows, std::size_t{65535} * kThreads});  // one thread per row, at most 65535 blocks
}

}  // namespace

void residual_normalize(const float* weight, float* u, float* v, float* out, float* sigma, std::size_t rows,
                        std::size_t cols, float c, std::size_t iterations) {
  DeviceBuffer<double> tv(cols), tu(rows);
  NormalizeKernel<<<1, 256, 0, stream()>>>(weight, u, v, out, sigma, static_cast<int>(rows), static_cast<int>(cols), c,
                                           iterations, tv.get(), tu.get());
  check_launch("residual_normalize");
}

void residual_forward(const float* x, const float* net, const uint32_t* sizes, std::size_t layers, int activation,
                      const float* noise, const float* terms, double p, std::size_t exact_terms, float* y,
                      float* log_det, float* stash, std::size_t batch, unsigned long long* bad) {
  if (batch == 0) return;
  const Shape s = MakeShape(sizes, layers);
  const bool exact = noise == nullptr;
  const int tangents = exact ? s.d : 1;
  const std::size_t per_row = RowValues(s, tangents) + 2 * RowDoubles(s, exact) + s.d;
  const std::size_t chunk = Chunk(per_row, batch);
  DeviceBuffer<float> ts(chunk * RowValues(s, tangents));
  DeviceBuffer<double> ds(chunk * RowDoubles(s, exact));
  DeviceBuffer<int> perms(chunk * s.d);
  for (std::size_t r0 = 0; r0 < batch; r0 += chunk) {
    const std::size_t r1 = std::min(batch, r0 + chunk);
    const Common c{s,  net, activation,           exact, noise, terms, p, static_cast<int>(exact_terms),
                   r0, r1,  StashWidth(s, exact), bad};
    ForwardKernel<<<detail::GridFor(r1 - r0, kThreads), kThreads, 0, stream()>>>(c, x, y, log_det, stash, ts.get(),
                                                                                 ds.get(), perms.get());
    check_launch("residual_forward");
  }
}

void residual_backward(const float* x, const float* net, const uint32_t* sizes, std::size_t layers, int activation,
                       bool exact, const float* stash, const float* dy, const float* d_log_det, float* dx, float* d_net,
                       std::size_t batch, unsigned long long* bad) {
  if (batch == 0) return;
  const Shape s = MakeShape(sizes, layers);
  const int tangents = exact ? s.d : 1;
  const std::size_t per_row = RowValues(s, tangents) + 2 * RowDoubles(s, exact) + s.net;
  const std::size_t chunk = std::min(Chunk(per_row, batch), detail::kMaxColumnRows);
  DeviceBuffer<float> ts(chunk * RowValues(s, tangents));
  DeviceBuffer<double> ds(chunk * RowDoubles(s, exact));
  DeviceBuffer<float> grad_rows(chunk * s.net);
  DeviceBuffer<double> grad_sum(s.net);
  fill_zero(grad_sum.get(), s.net * sizeof(double));
  for (std::size_t r0 = 0; r0 < batch; r0 += chunk) {
    const std::size_t r1 = std::min(batch, r0 + chunk);
    const Common c{s, net, activation, exact, nullptr, nullptr, 0.5, 0, r0, r1, StashWidth(s, exact), bad};
    BackwardKernel<<<detail::GridFor(r1 - r0, kThreads), kThreads, 0, stream()>>>(c, x, stash, dy, d_log_det, dx,
                                                                                  grad_rows.get(), ts.get(), ds.get());
    check_launch("residual_backward");
    detail::AccumulateColumns(grad_rows.get(), r1 - r0, s.net, grad_sum.get(), "residual_backward_sum");
  }
  detail::AddToFloat(grad_sum.get(), s.net, d_net, "residual_backward_sum");
}

void residual_inverse(const float* y, const float* net, const uint32_t* sizes, std::size_t layers, int activation,
                      const float* noise, const float* terms, double p, std::size_t exact_terms, double tol,
                      std::size_t max_iterations, float* x, float* log_det, std::size_t batch,
                      unsigned long long* bad) {
  if (batch == 0) return;
  const Shape s = MakeShape(sizes, layers);
  const bool exact = noise == nullptr;
  const int tangents = exact ? s.d : 1;
  const std::size_t per_row = 2 * (RowValues(s, tangents) + s.d + RowDoubles(s, exact)) + s.d;
  const std::size_t chunk = Chunk(per_row, batch);
  DeviceBuffer<double> ts(chunk * (RowValues(s, tangents) + s.d));
  DeviceBuffer<double> ds(chunk * RowDoubles(s, exact));
  DeviceBuffer<int> perms(chunk * s.d);
  for (std::size_t r0 = 0; r0 < batch; r0 += chunk) {
    const std::size_t r1 = std::min(batch, r0 + chunk);
    const Common c{s,  net, activation,           exact, noise, terms, p, static_cast<int>(exact_terms),
                   r0, r1,  StashWidth(s, exact), bad};
    InverseKernel<<<detail::GridFor(r1 - r0, kThreads), kThreads, 0, stream()>>>(c, y, tol, max_iterations, x, log_det,
                                                                                 ts.get(), ds.get(), perms.get());
    check_launch("residual_inverse");
  }
}

}  // namespace cuda
}  // namespace flowvae
