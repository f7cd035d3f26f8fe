// Residual-flow kernels (see flowvae/residual.h).
//
// Forward and backward run over blocks of rows with every product an sgemm
// (dense.h): the primal pass, the stacked tangents of the exact log-det, the
// estimator's vector-Jacobian products and all adjoints; elementwise steps
// and the LU (float64) run per row. The inverse iterates one row at a time in
// float64 (residual_rows.inc, compiled for baseline x86-64 and AVX2), so its
// fixed point can reach tolerances below float32 rounding. Workspaces are
// allocated once per parallel task, never per row.
#include "flowvae/residual.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "flowvae/cpu_features.h"
#include "flowvae/dense.h"
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

// ---- Forward and backward over blocks of rows, every product an sgemm ----
//
// A block of R rows goes through g layer by layer as matrices: the primal
// pass [R, width], the D (exact) or 1 (estimator) tangents of each row
// stacked [R·T, width], the estimator's vector-Jacobian products [R, D], and
// in backward the adjoints of both, with weight gradients as Aᵀ·B products
// accumulated over the block. Elementwise steps (activations, their
// derivatives, the log-det) run row by row as in residual_rows.inc.

// Rows per block: R·T ≤ 2048 stacked tangents, at most 64 rows.
std::size_t BlockRows(const Shape& s, bool exact) {
  const std::size_t t = exact ? s.d : 1;
  return std::max<std::size_t>(1, std::min<std::size_t>(64, 2048 / t));
}

template <class T>
inline void ActivateScalar(int kind, T a, T* f, T* d1, T* d2) {
  if (kind == 0) {
    const T e = std::exp(-std::fabs(a));
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
    const T e = std::exp(a);
    *f = std::expm1(a);
    *d1 = e;
    *d2 = e;
  }
}

class Block {
 public:
  Block(const Shape& s, const float* net, int kind, bool exact)
      : s_(s), net_(net), kind_(kind), exact_(exact), t_(exact ? s.d : 1), rows_(BlockRows(s, exact)) {
    std::size_t width = s.d;
    for (std::size_t l = 0; l < s.layers; ++l) width = std::max(width, s.out[l]);
    width_ = width;
    const std::size_t rt = rows_ * t_;
    pre_.resize(rows_ * s.hidden);
    act_.resize(rows_ * s.hidden);
    d1_.resize(rows_ * s.hidden);
    d2_.resize(rows_ * s.hidden);
    inject_.resize(rows_ * s.hidden);
    g_.resize(rows_ * s.d);
    tan_.resize(rt * s.hidden);
    th_.resize(rt * width);
    adj0_.resize(rt * width);
    adj1_.resize(rt * width);
    jac_.resize(rt * s.d);
    v_.resize(rows_ * s.d);
    lu_.resize(exact ? s.d * s.d : 0);
    inv_.resize(exact ? s.d * s.d : 0);
    col_.resize(s.d);
    perm_.resize(s.d);
  }

  std::size_t rows() const { return rows_; }

  // Primal pass for rows x[0 : n] (row stride D).
  void Primal(const float* x, std::size_t n) {
    for (std::size_t l = 0; l < s_.layers; ++l) {
      const std::size_t m = s_.in[l], o = s_.out[l];
      const bool last = l + 1 == s_.layers;
      const float* in = l == 0 ? x : act_.data() + rows_ * s_.h_off[l - 1];
      float* a = last ? g_.data() : pre_.data() + rows_ * s_.h_off[l];
      sgemm(false, true, n, o, m, 1.0f, in, net_ + s_.w_off[l], 0.0f, a);
      const float* b = net_ + s_.b_off[l];
      for (std::size_t r = 0; r < n; ++r)
        for (std::size_t i = 0; i < o; ++i) a[r * o + i] += b[i];
      if (!last) {
        const std::size_t h = rows_ * s_.h_off[l];
        for (std::size_t k = 0; k < n * o; ++k)
          ActivateScalar<float>(kind_, a[k], &act_[h + k], &d1_[h + k], &d2_[h + k]);
      }
    }
  }

  // Tangents of the n rows: e_t (exact) or v_ (estimator). Fills tan_ and jac_ ([n·T, D], row (r, t) = J v_t).
  void Tangent(std::size_t n) {
    const std::size_t nt = n * t_;
    for (std::size_t l = 0; l < s_.layers; ++l) {
      const std::size_t m = s_.in[l], o = s_.out[l];
      const bool last = l + 1 == s_.layers;
      float* a = last ? jac_.data() : tan_.data() + rows_ * t_ * s_.h_off[l];
      const float* w = net_ + s_.w_off[l];
      if (l == 0) {
        if (exact_) {
          for (std::size_t r = 0; r < n; ++r)
            for (std::size_t t = 0; t < t_; ++t)
              for (std::size_t i = 0; i < o; ++i) a[(r * t_ + t) * o + i] = w[i * m + t];
        } else {
          sgemm(false, true, n, o, m, 1.0f, v_.data(), w, 0.0f, a);
        }
        continue;
      }
      Hdot(l - 1, n);
      sgemm(false, true, nt, o, m, 1.0f, th_.data(), w, 0.0f, a);
    }
  }

  // The exact log-det of row r (after Tangent), (I + J)⁻¹ into tail when non-null.
  double ExactLogDet(std::size_t r, float* tail) {
    const std::size_t d = s_.d;
    for (std::size_t i = 0; i < d; ++i)
      for (std::size_t t = 0; t < d; ++t)
        lu_[i * d + t] = (i == t ? 1.0 : 0.0) + static_cast<double>(jac_[(r * d + t) * d + i]);
    const double ld = LuLogAbsDet(lu_.data(), d, tail ? inv_.data() : nullptr, perm_.data(), col_.data());
    if (tail)
      for (std::size_t i = 0; i < d * d; ++i) tail[i] = static_cast<float>(inv_[i]);
    return ld;
  }

  // cur [n, D] ← cur · J (each row times its Jacobian: rᵀ J), the activation
  // derivatives of hidden layer l at d1 + rows_·h_off[l]; uses adj0_/adj1_.
  void Vjp(float* cur, std::size_t n, const float* d1) {
    const float* in = cur;
    float* bufs[2] = {adj0_.data(), adj1_.data()};
    int which = 0;
    for (std::size_t l = s_.layers; l-- > 0;) {
      const std::size_t m = s_.in[l], o = s_.out[l];
      float* out = l == 0 && in != cur ? cur : bufs[which];
      // out [n, m] = in [n, o] · W_l [o, m]
      sgemm(false, false, n, m, o, 1.0f, in, net_ + s_.w_off[l], 0.0f, out);
      if (l > 0) {
        const float* dd = d1 + rows_ * s_.h_off[l - 1];
        for (std::size_t k = 0; k < n * m; ++k) out[k] *= dd[k];
      }
      in = out;
      which ^= 1;
    }
    if (in != cur) std::copy(in, in + n * s_.d, cur);  // a single layer went through a buffer
  }

  // Estimator log-dets of the n rows (noise, terms from row 0 of the block); v | w into stash tails.
  // Rows are taken in order of decreasing series length, so the rows still in
  // their series at term k are a prefix and each product covers only them.
  void Estimate(const float* noise, const float* terms, double p, std::size_t exact_terms, float* stash,
                std::size_t stash_width, float* log_det, std::size_t n) {
    const std::size_t d = s_.d;
    order_.resize(n);
    for (std::size_t r = 0; r < n; ++r) order_[r] = r;
    std::stable_sort(order_.begin(), order_.end(),
                     [&](std::size_t a, std::size_t b) { return SeriesLength(terms[a]) > SeriesLength(terms[b]); });
    // Activation derivatives and noise in that order.
    d1p_.resize(d1_.size());
    for (std::size_t l = 0; l + 1 < s_.layers; ++l) {
      const std::size_t o = s_.out[l], base = rows_ * s_.h_off[l];
      for (std::size_t q = 0; q < n; ++q)
        std::copy(d1_.begin() + base + order_[q] * o, d1_.begin() + base + (order_[q] + 1) * o,
                  d1p_.begin() + base + q * o);
    }
    std::vector<double>& w = wblock_;
    std::vector<double>& sum = sums_;
    w.assign(n * d, 0.0);
    sum.assign(n, 0.0);
    for (std::size_t q = 0; q < n; ++q) {
      const float* vr = noise + order_[q] * d;
      std::copy(vr, vr + d, v_.data() + q * d);
      std::copy(vr, vr + d, jac_.data() + q * d);  // jac_ holds the running rᵀ J^k, [n, D]
      for (std::size_t i = 0; i < d; ++i) w[q * d + i] = vr[i];
    }
    const std::size_t most = n ? SeriesLength(terms[order_[0]]) : 0;
    std::size_t active = n;
    for (std::size_t k = 1; k <= most; ++k) {
      while (active > 0 && SeriesLength(terms[order_[active - 1]]) < k) --active;
      Vjp(jac_.data(), active, d1p_.data());
      const double coef = SeriesWeight(k, p, exact_terms);
      for (std::size_t q = 0; q < active; ++q) {
        double vr = 0;
        for (std::size_t i = 0; i < d; ++i) {
          const double ri = jac_[q * d + i];
          vr += static_cast<double>(v_[q * d + i]) * ri;
          w[q * d + i] += (k % 2 == 0 ? coef : -coef) * ri;
        }
        sum[q] += ((k % 2 == 1 ? 1.0 : -1.0) / static_cast<double>(k)) * coef * vr;
      }
    }
    for (std::size_t q = 0; q < n; ++q) {
      const std::size_t r = order_[q];
      log_det[r] = static_cast<float>(sum[q]);
      float* tail = stash + r * stash_width + s_.hidden;
      for (std::size_t i = 0; i < d; ++i) {
        tail[i] = v_[q * d + i];
        tail[d + i] = static_cast<float>(w[q * d + i]);
      }
    }
  }

  // Copies the block's hidden pre-activations into rows of the stash.
  void StashPre(float* stash, std::size_t stash_width, std::size_t n) const {
    for (std::size_t l = 0; l + 1 < s_.layers; ++l) {
      const std::size_t o = s_.out[l];
      const float* a = pre_.data() + rows_ * s_.h_off[l];
      for (std::size_t r = 0; r < n; ++r) std::copy(a + r * o, a + (r + 1) * o, stash + r * stash_width + s_.h_off[l]);
    }
  }

  const float* g() const { return g_.data(); }

  // Backward of n rows: the network gradient added into acc (float), dx written.
  void Backward(const float* x, const float* stash, std::size_t stash_width, const float* dy, const float* d_log_det,
                float* dx, float* acc, std::size_t n) {
    const std::size_t d = s_.d, nt = n * t_;
    std::fill(inject_.begin(), inject_.end(), 0.0f);
    bool any = false;
    for (std::size_t r = 0; r < n; ++r) any = any || d_log_det[r] != 0;
    if (any) {
      if (!exact_)
        for (std::size_t r = 0; r < n; ++r)
          std::copy(stash + r * stash_width + s_.hidden, stash + r * stash_width + s_.hidden + d, v_.data() + r * d);
      Tangent(n);
      // Adjoint of J v_t: scale_r · w_{r,t} (row t of (I + J)⁻¹, or the Neumann vector).
      float* adj = adj0_.data();
      float* nxt = adj1_.data();
      for (std::size_t r = 0; r < n; ++r) {
        const float* tail = stash + r * stash_width + s_.hidden + (exact_ ? 0 : d);
        for (std::size_t t = 0; t < t_; ++t)
          for (std::size_t i = 0; i < d; ++i) adj[(r * t_ + t) * d + i] = d_log_det[r] * tail[t * d + i];
      }
      for (std::size_t l = s_.layers; l-- > 1;) {
        const std::size_t m = s_.in[l], o = s_.out[l];
        const std::size_t po = s_.h_off[l - 1];
        Hdot(l - 1, n);
        sgemm(true, false, o, m, nt, 1.0f, adj, th_.data(), 1.0f, acc + s_.w_off[l]);
        sgemm(false, false, nt, m, o, 1.0f, adj, net_ + s_.w_off[l], 0.0f, nxt);
        const float* ta = tan_.data() + rows_ * t_ * po;
        const float* dd1 = d1_.data() + rows_ * po;
        const float* dd2 = d2_.data() + rows_ * po;
        float* inj = inject_.data() + rows_ * po;
        for (std::size_t r = 0; r < n; ++r)
          for (std::size_t t = 0; t < t_; ++t) {
            float* h = nxt + (r * t_ + t) * m;
            const float* tr = ta + (r * t_ + t) * m;
            for (std::size_t j = 0; j < m; ++j) {
              inj[r * m + j] += dd2[r * m + j] * tr[j] * h[j];
              h[j] *= dd1[r * m + j];
            }
          }
        std::swap(adj, nxt);
      }
      const std::size_t o0 = s_.out[0];
      float* dw0 = acc + s_.w_off[0];
      if (exact_) {
        for (std::size_t r = 0; r < n; ++r)
          for (std::size_t t = 0; t < t_; ++t)
            for (std::size_t i = 0; i < o0; ++i) dw0[i * d + t] += adj[(r * t_ + t) * o0 + i];
      } else {
        sgemm(true, false, o0, d, n, 1.0f, adj, v_.data(), 1.0f, dw0);
      }
    }
    // Primal adjoint.
    float* cur = adj0_.data();
    float* nxt = adj1_.data();
    std::copy(dy, dy + n * d, cur);
    for (std::size_t l = s_.layers; l-- > 0;) {
      const std::size_t m = s_.in[l], o = s_.out[l];
      const float* in = l == 0 ? x : act_.data() + rows_ * s_.h_off[l - 1];
      sgemm(true, false, o, m, n, 1.0f, cur, in, 1.0f, acc + s_.w_off[l]);
      float* db = acc + s_.b_off[l];
      for (std::size_t r = 0; r < n; ++r)
        for (std::size_t i = 0; i < o; ++i) db[i] += cur[r * o + i];
      sgemm(false, false, n, m, o, 1.0f, cur, net_ + s_.w_off[l], 0.0f, nxt);
      if (l > 0) {
        const std::size_t po = rows_ * s_.h_off[l - 1];
        for (std::size_t k = 0; k < n * m; ++k) nxt[k] = nxt[k] * d1_[po + k] + inject_[po + k];
      }
      std::swap(cur, nxt);
    }
    for (std::size_t k = 0; k < n * d; ++k) dx[k] = dy[k] + cur[k];
  }

 private:
  // th_ [n·T, m] = φ'(a_l) ⊙ tangents of hidden layer l (each row's φ' for its T tangents).
  void Hdot(std::size_t l, std::size_t n) {
    const std::size_t m = s_.out[l];
    const float* ta = tan_.data() + rows_ * t_ * s_.h_off[l];
    const float* dd = d1_.data() + rows_ * s_.h_off[l];
    for (std::size_t r = 0; r < n; ++r)
      for (std::size_t t = 0; t < t_; ++t)
        for (std::size_t j = 0; j < m; ++j) th_[(r * t_ + t) * m + j] = dd[r * m + j] * ta[(r * t_ + t) * m + j];
  }

  const Shape& s_;
  const float* net_;
  int kind_;
  bool exact_;
  std::size_t t_, rows_, width_ = 0;
  std::vector<float> pre_, act_, d1_, d1p_, d2_, inject_, g_, tan_, th_, adj0_, adj1_, jac_, v_;
  std::vector<std::size_t> order_;
  std::vector<double> lu_, inv_, col_, wblock_, sums_;
  std::vector<std::size_t> perm_;
};

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

void residual_normalize_backward(const float* weight, const float* u, const float* v, float sigma, const float* d_out,
                                 float* d_weight, std::size_t rows, std::size_t cols, float c) {
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
                             int activation, const float* noise, const float* terms, double p, std::size_t exact_terms,
                             float* y, float* log_det, float* stash, std::size_t batch) {
  if (batch == 0) return 0;
  const Shape s = MakeShape(sizes, layers);
  const bool exact = noise == nullptr;
  const std::size_t width = residual_stash_size(sizes, layers, exact);
  const std::size_t d = s.d, rows = BlockRows(s, exact);
  const std::size_t blocks = (batch + rows - 1) / rows;
  std::atomic<std::size_t> bad{0};
  parallel_for(blocks, 1, [&](std::size_t b0, std::size_t b1) {
    Block blk(s, net, activation, exact);
    std::size_t n_bad = 0;
    for (std::size_t b = b0; b < b1; ++b) {
      const std::size_t r0 = b * rows, n = std::min(rows, batch - r0);
      blk.Primal(x + r0 * d, n);
      blk.StashPre(stash + r0 * width, width, n);
      if (exact) {
        blk.Tangent(n);
        for (std::size_t r = 0; r < n; ++r)
          log_det[r0 + r] = static_cast<float>(blk.ExactLogDet(r, stash + (r0 + r) * width + s.hidden));
      } else {
        blk.Estimate(noise + r0 * d, terms + r0, p, exact_terms, stash + r0 * width, width, log_det + r0, n);
      }
      for (std::size_t r = r0; r < r0 + n; ++r) {
        bool ok = std::isfinite(log_det[r]);
        for (std::size_t i = 0; i < d; ++i) {
          y[r * d + i] = x[r * d + i] + blk.g()[(r - r0) * d + i];
          ok = ok && std::isfinite(y[r * d + i]);
        }
        if (!ok) ++n_bad;
      }
    }
    if (n_bad) bad += n_bad;
  });
  return bad.load();
}

std::size_t residual_backward(const float* x, const float* net, const uint32_t* sizes, std::size_t layers,
                              int activation, bool exact, const float* stash, const float* dy, const float* d_log_det,
                              float* dx, float* d_net, std::size_t batch) {
  if (batch == 0) return 0;
  const Shape s = MakeShape(sizes, layers);
  const std::size_t width = residual_stash_size(sizes, layers, exact);
  const std::size_t d = s.d, rows = BlockRows(s, exact);
  std::atomic<std::size_t> bad{0};
  std::vector<double> partials;
  // Fixed chunks of whole blocks (a function of the sizes only), each summing its
  // blocks' gradients in float64 in order, the chunks then added in order:
  // the same bits at any thread count.
  const std::size_t chunks =
      reduce_in_chunks(batch, rows, 16, s.net, &partials, [&](std::size_t c0, std::size_t c1, double* slice) {
        Block blk(s, net, activation, exact);
        std::vector<float> acc(s.net);
        std::size_t n_bad = 0;
        for (std::size_t r0 = c0; r0 < c1; r0 += rows) {
          const std::size_t n = std::min(rows, c1 - r0);
          std::fill(acc.begin(), acc.end(), 0.0f);
          blk.Primal(x + r0 * d, n);
          blk.Backward(x + r0 * d, stash + r0 * width, width, dy + r0 * d, d_log_det + r0, dx + r0 * d, acc.data(), n);
          for (std::size_t k = 0; k < s.net; ++k) slice[k] += static_cast<double>(acc[k]);
          for (std::size_t r = r0; r < r0 + n; ++r) {
            for (std::size_t i = 0; i < d; ++i) {
              if (!std::isfinite(dx[r * d + i])) {
                ++n_bad;
                break;
              }
            }
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
                             int activation, const float* noise, const float* terms, double p, std::size_t exact_terms,
                             double tol, std::size_t max_iterations, float* x, float* log_det, std::size_t batch) {
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
