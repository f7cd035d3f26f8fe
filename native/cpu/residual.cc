// Residual-flow kernels (see flowvae/residual.h), row by row.
//
// Every matrix-vector product is written as a sum of scaled rows (axpy over
// contiguous memory), which the compiler vectorizes without reordering any
// sum: W·x reads a transposed copy of each W made once per call, Wᵀ·r reads
// W itself. Forward and backward keep the row state in float (log-det sums,
// the LU and the series in float64); the inverse runs entirely in float64 so
// its fixed-point iteration can reach tolerances below float32 rounding.
// Workspaces are allocated once per chunk of rows, never per row.
#include "flowvae/residual.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "flowvae/parallel.h"

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

template <class T>
inline void Activate(int kind, T a, T* f, T* d1, T* d2) {
  if (kind == 0) {
    const T e = std::exp(-std::fabs(a));
    const T s = a >= 0 ? T(1) / (T(1) + e) : e / (T(1) + e);
    const T ds = s * (T(1) - s);
    const T k = T(1) / T(1.1);
    *f = a * s * k;
    *d1 = (s + a * ds) * k;
    *d2 = ds * (T(2) + a * (T(1) - T(2) * s)) * k;
  } else if (a > 0) {
    *f = a;
    *d1 = T(1);
    *d2 = T(0);
  } else {
    const T e = std::exp(a);
    *f = std::expm1(a);
    *d1 = e;
    *d2 = e;
  }
}

// out[0:n] += c · row[0:n]
template <class T>
inline void Axpy(T* out, T c, const float* row, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] += c * static_cast<T>(row[i]);
}

// One row's passes through g, state in T.
template <class T>
class RowNet {
 public:
  RowNet(const Shape& s, const float* net, const float* wt, int kind, std::size_t tangents)
      : s_(s), net_(net), wt_(wt), kind_(kind) {
    std::size_t width = s.d;
    for (std::size_t l = 0; l < s.layers; ++l) width = std::max(width, s.out[l]);
    pre.resize(s.hidden);
    act.resize(s.hidden);
    d1.resize(s.hidden);
    d2.resize(s.hidden);
    inject.resize(s.hidden);
    g.resize(s.d);
    t0_.resize(width);
    t1_.resize(width);
    tan.resize(tangents * s.hidden);
    jac.resize(tangents * s.d);
  }

  // Primal pass at x[0:D].
  template <class In>
  void Primal(const In* x) {
    for (std::size_t l = 0; l < s_.layers; ++l) {
      const std::size_t m = s_.in[l], n = s_.out[l];
      const bool last = l + 1 == s_.layers;
      T* a = last ? g.data() : pre.data() + s_.h_off[l];
      const float* b = net_ + s_.b_off[l];
      for (std::size_t i = 0; i < n; ++i) a[i] = static_cast<T>(b[i]);
      const float* wt = wt_ + s_.w_off[l];
      for (std::size_t j = 0; j < m; ++j) {
        const T in = l == 0 ? static_cast<T>(x[j]) : act[s_.h_off[l - 1] + j];
        Axpy(a, in, wt + j * n, n);
      }
      if (!last) {
        const std::size_t h = s_.h_off[l];
        for (std::size_t i = 0; i < n; ++i) Activate<T>(kind_, a[i], &act[h + i], &d1[h + i], &d2[h + i]);
      }
    }
  }

  // out = Jᵀ r.
  void Vjp(const T* r, T* out) {
    T* cur = t0_.data();
    T* nxt = t1_.data();
    std::copy(r, r + s_.d, cur);
    for (std::size_t l = s_.layers; l-- > 0;) {
      const std::size_t m = s_.in[l], n = s_.out[l];
      const float* w = net_ + s_.w_off[l];
      std::fill(nxt, nxt + m, T(0));
      for (std::size_t i = 0; i < n; ++i) Axpy(nxt, cur[i], w + i * m, m);
      if (l > 0) {
        const T* dd = d1.data() + s_.h_off[l - 1];
        for (std::size_t j = 0; j < m; ++j) nxt[j] *= dd[j];
      }
      std::swap(cur, nxt);
    }
    std::copy(cur, cur + s_.d, out);
  }

  // Tangent pass for `count` tangents: e_t when v is null, else v.
  // tan[t·hidden + …] = hidden pre-activation tangents, jac[t·D + i] = (J v_t)_i.
  void Tangent(const T* v, std::size_t count) {
    for (std::size_t t = 0; t < count; ++t) {
      T* tb = tan.data() + t * s_.hidden;
      for (std::size_t l = 0; l < s_.layers; ++l) {
        const std::size_t m = s_.in[l], n = s_.out[l];
        const bool last = l + 1 == s_.layers;
        T* a = last ? jac.data() + t * s_.d : tb + s_.h_off[l];
        const float* wt = wt_ + s_.w_off[l];
        if (l == 0 && !v) {
          for (std::size_t i = 0; i < n; ++i) a[i] = static_cast<T>(wt[t * n + i]);
          continue;
        }
        std::fill(a, a + n, T(0));
        for (std::size_t j = 0; j < m; ++j) {
          const T in = l == 0 ? v[j] : d1[s_.h_off[l - 1] + j] * tb[s_.h_off[l - 1] + j];
          Axpy(a, in, wt + j * n, n);
        }
      }
    }
  }

  // Adds ∂/∂(net, a) of scale·wᵀ J v_t (after Tangent): weights into d_net, pre-activation terms into inject.
  template <class G>
  void TangentBackward(std::size_t t, const T* v, const float* w, T scale, G* d_net) {
    const T* tb = tan.data() + t * s_.hidden;
    T* cur = t0_.data();
    T* nxt = t1_.data();
    for (std::size_t i = 0; i < s_.d; ++i) cur[i] = scale * static_cast<T>(w[i]);
    for (std::size_t l = s_.layers; l-- > 0;) {
      const std::size_t m = s_.in[l], n = s_.out[l];
      G* dw = d_net + s_.w_off[l];
      if (l == 0) {
        for (std::size_t i = 0; i < n; ++i) {
          if (v) {
            for (std::size_t j = 0; j < m; ++j) dw[i * m + j] += static_cast<G>(cur[i] * v[j]);
          } else {
            dw[i * m + t] += static_cast<G>(cur[i]);
          }
        }
        break;
      }
      const std::size_t po = s_.h_off[l - 1];
      const float* wrow = net_ + s_.w_off[l];
      T* hd = nxt;  // the adjoint of the layer's input tangent
      std::fill(hd, hd + m, T(0));
      for (std::size_t i = 0; i < n; ++i) {
        const T ci = cur[i];
        G* dwi = dw + i * m;
        for (std::size_t j = 0; j < m; ++j) dwi[j] += static_cast<G>(ci * d1[po + j] * tb[po + j]);
        Axpy(hd, ci, wrow + i * m, m);
      }
      for (std::size_t j = 0; j < m; ++j) {
        inject[po + j] += d2[po + j] * tb[po + j] * hd[j];
        hd[j] *= d1[po + j];
      }
      std::swap(cur, nxt);
    }
  }

  // Primal backward from dy plus inject: accumulates d_net, writes dx.
  template <class G>
  void PrimalBackward(const float* x, const float* dy, G* d_net, float* dx) {
    T* cur = t0_.data();
    T* nxt = t1_.data();
    for (std::size_t i = 0; i < s_.d; ++i) cur[i] = static_cast<T>(dy[i]);
    for (std::size_t l = s_.layers; l-- > 0;) {
      const std::size_t m = s_.in[l], n = s_.out[l];
      const float* w = net_ + s_.w_off[l];
      G* dw = d_net + s_.w_off[l];
      G* db = d_net + s_.b_off[l];
      const std::size_t po = l > 0 ? s_.h_off[l - 1] : 0;
      std::fill(nxt, nxt + m, T(0));
      for (std::size_t i = 0; i < n; ++i) {
        const T ci = cur[i];
        db[i] += static_cast<G>(ci);
        G* dwi = dw + i * m;
        if (l > 0) {
          for (std::size_t j = 0; j < m; ++j) dwi[j] += static_cast<G>(ci * act[po + j]);
        } else {
          for (std::size_t j = 0; j < m; ++j) dwi[j] += static_cast<G>(ci * static_cast<T>(x[j]));
        }
        Axpy(nxt, ci, w + i * m, m);
      }
      if (l > 0)
        for (std::size_t j = 0; j < m; ++j) nxt[j] = nxt[j] * d1[po + j] + inject[po + j];
      std::swap(cur, nxt);
    }
    for (std::size_t i = 0; i < s_.d; ++i) dx[i] = static_cast<float>(static_cast<T>(dy[i]) + cur[i]);
  }

  std::vector<T> pre, act, d1, d2, inject, g, tan, jac;

 private:
  const Shape& s_;
  const float* net_;
  const float* wt_;
  int kind_;
  std::vector<T> t0_, t1_;
};

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

// The log-det of the row last passed through Primal, writing the stash tail when non-null.
template <class T>
class LogDetRow {
 public:
  LogDetRow(RowNet<T>* row, std::size_t d, bool exact, double p, std::size_t exact_terms)
      : row_(row), d_(d), exact_(exact), p_(p), exact_terms_(exact_terms) {
    if (exact) {
      lu_.resize(d * d);
      inv_.resize(d * d);
      col_.resize(d);
      perm_.resize(d);
    }
    v_.resize(d);
    r_.resize(d);
    rn_.resize(d);
    w_.resize(d);
  }

  double Compute(const float* noise, float terms, float* tail) {
    const std::size_t d = d_;
    if (exact_) {
      row_->Tangent(nullptr, d);
      for (std::size_t i = 0; i < d; ++i)
        for (std::size_t t = 0; t < d; ++t)
          lu_[i * d + t] = (i == t ? 1.0 : 0.0) + static_cast<double>(row_->jac[t * d + i]);
      const double ld = LuLogAbsDet(lu_.data(), d, tail ? inv_.data() : nullptr, perm_.data(), col_.data());
      if (tail)
        for (std::size_t i = 0; i < d * d; ++i) tail[i] = static_cast<float>(inv_[i]);
      return ld;
    }
    const std::size_t n = SeriesLength(terms);
    std::vector<double>& w = w_;
    for (std::size_t i = 0; i < d; ++i) {
      v_[i] = static_cast<T>(noise[i]);
      r_[i] = v_[i];
      w[i] = static_cast<double>(v_[i]);
    }
    double log_det = 0;
    for (std::size_t k = 1; k <= n; ++k) {
      row_->Vjp(r_.data(), rn_.data());
      std::swap(r_, rn_);
      const double coef = SeriesWeight(k, p_, exact_terms_);
      double vr = 0;
      for (std::size_t i = 0; i < d; ++i) {
        vr += static_cast<double>(v_[i]) * static_cast<double>(r_[i]);
        w[i] += (k % 2 == 0 ? coef : -coef) * static_cast<double>(r_[i]);
      }
      log_det += ((k % 2 == 1 ? 1.0 : -1.0) / static_cast<double>(k)) * coef * vr;
    }
    if (tail) {
      for (std::size_t i = 0; i < d; ++i) {
        tail[i] = static_cast<float>(v_[i]);
        tail[d + i] = static_cast<float>(w[i]);
      }
    }
    return log_det;
  }

 private:
  RowNet<T>* row_;
  std::size_t d_;
  bool exact_;
  double p_;
  std::size_t exact_terms_;
  std::vector<double> lu_, inv_, col_, w_;
  std::vector<std::size_t> perm_;
  std::vector<T> v_, r_, rn_;
};

// Rows per parallel work item: enough multiply-adds (~1e5) to pay for a thread.
std::size_t Grain(const Shape& s, std::size_t tangents) {
  const std::size_t per_row = (tangents + 1) * (s.net + 1);
  return std::max<std::size_t>(1, 131072 / per_row);
}

inline bool Finite(float v) { return std::isfinite(v); }

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
  const std::size_t d = s.d;
  std::vector<float> wt;
  Transpose(s, net, &wt);
  std::atomic<std::size_t> bad{0};
  parallel_for(batch, Grain(s, exact ? d : 4), [&](std::size_t r0, std::size_t r1) {
    RowNet<float> row(s, net, wt.data(), activation, exact ? d : 1);
    LogDetRow<float> ld(&row, d, exact, p, exact_terms);
    std::size_t n_bad = 0;
    for (std::size_t r = r0; r < r1; ++r) {
      const float* xr = x + r * d;
      float* yr = y + r * d;
      float* sr = stash + r * width;
      row.Primal(xr);
      bool ok = true;
      for (std::size_t i = 0; i < d; ++i) {
        yr[i] = xr[i] + row.g[i];
        ok = ok && Finite(yr[i]);
      }
      std::copy(row.pre.begin(), row.pre.end(), sr);
      log_det[r] = static_cast<float>(ld.Compute(exact ? nullptr : noise + r * d, exact ? 0.0f : terms[r], sr + s.hidden));
      if (!ok || !Finite(log_det[r])) ++n_bad;
    }
    if (n_bad) bad += n_bad;
  });
  return bad.load();
}

std::size_t residual_backward(const float* x, const float* net, const uint32_t* sizes, std::size_t layers,
                              int activation, bool exact, const float* stash, const float* dy,
                              const float* d_log_det, float* dx, float* d_net, std::size_t batch) {
  if (batch == 0) return 0;
  const Shape s = MakeShape(sizes, layers);
  const std::size_t width = residual_stash_size(sizes, layers, exact);
  const std::size_t d = s.d;
  std::vector<float> wt;
  Transpose(s, net, &wt);
  std::atomic<std::size_t> bad{0};
  std::vector<double> partials;
  const std::size_t chunk_rows = std::max<std::size_t>(8, Grain(s, exact ? d : 2));
  const std::size_t max_chunks = std::max<std::size_t>(1, (batch + chunk_rows - 1) / chunk_rows);
  const std::size_t chunks =
      reduce_in_chunks(batch, 1, std::min<std::size_t>(max_chunks, 16), s.net, &partials,
                       [&](std::size_t r0, std::size_t r1, double* slice) {
                         RowNet<float> row(s, net, wt.data(), activation, exact ? d : 1);
                         std::vector<float> v(d);
                         std::size_t n_bad = 0;
                         for (std::size_t r = r0; r < r1; ++r) {
                           const float* tail = stash + r * width + s.hidden;
                           row.Primal(x + r * d);
                           std::fill(row.inject.begin(), row.inject.end(), 0.0f);
                           const float scale = d_log_det[r];
                           if (scale != 0) {
                             if (exact) {
                               row.Tangent(nullptr, d);
                               for (std::size_t t = 0; t < d; ++t)
                                 row.TangentBackward(t, nullptr, tail + t * d, scale, slice);
                             } else {
                               std::copy(tail, tail + d, v.begin());
                               row.Tangent(v.data(), 1);
                               row.TangentBackward(0, v.data(), tail + d, scale, slice);
                             }
                           }
                           row.PrimalBackward(x + r * d, dy + r * d, slice, dx + r * d);
                           for (std::size_t i = 0; i < d; ++i)
                             if (!Finite(dx[r * d + i])) {
                               ++n_bad;
                               break;
                             }
                         }
                         if (n_bad) bad += n_bad;
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
  const bool exact = noise == nullptr;
  const std::size_t d = s.d;
  std::vector<float> wt;
  Transpose(s, net, &wt);
  std::atomic<std::size_t> bad{0};
  parallel_for(batch, 1, [&](std::size_t r0, std::size_t r1) {
    RowNet<double> row(s, net, wt.data(), activation, exact ? d : 1);
    LogDetRow<double> ld(&row, d, exact, p, exact_terms);
    std::vector<double> z(d);
    std::size_t n_bad = 0;
    for (std::size_t r = r0; r < r1; ++r) {
      const float* yr = y + r * d;
      for (std::size_t i = 0; i < d; ++i) z[i] = yr[i];
      bool converged = false;
      for (std::size_t it = 0; it < max_iterations; ++it) {
        row.Primal(z.data());
        double delta = 0;
        for (std::size_t i = 0; i < d; ++i) {
          const double next = static_cast<double>(yr[i]) - row.g[i];
          const double dz = std::fabs(next - z[i]);
          if (!(dz <= delta)) delta = dz;  // NaN propagates
          z[i] = next;
        }
        if (delta != delta) break;
        if (delta <= tol) {
          converged = true;
          break;
        }
      }
      for (std::size_t i = 0; i < d; ++i) x[r * d + i] = static_cast<float>(z[i]);
      if (!converged) {
        log_det[r] = std::numeric_limits<float>::quiet_NaN();
        ++n_bad;
        continue;
      }
      row.Primal(z.data());
      log_det[r] = static_cast<float>(-ld.Compute(exact ? nullptr : noise + r * d, exact ? 0.0f : terms[r], nullptr));
      if (!Finite(log_det[r])) ++n_bad;
    }
    if (n_bad) bad += n_bad;
  });
  return bad.load();
}

}  // namespace flowvae
