// LSTM kernels against a double-precision loop of the same mathematics:
// batch 1, one step, zero steps, hidden sizes off the vector width (7, 13,
// 33), ragged lengths with empty rows, null optional arguments, 1 and 2
// threads (bit-identical), and the stash and work arrays started as NaN so a
// read of anything the kernels did not write shows up. Arrays are exactly
// sized: under ASan any access past them aborts.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "check.h"
#include "flowvae/lstm.h"
#include "flowvae/parallel.h"

namespace {

using flowvae::test::Random;

struct Case {
  std::size_t batch, steps, in_dim, hidden;
  std::vector<uint32_t> lengths;  // empty: null (full length)
  bool with_state, with_bias;
};

struct Data {
  std::vector<float> x, h0, c0, w_ih, w_hh, b_ih, b_hh, dy, dhn, dcn;
};

struct Result {
  std::vector<float> y, hn, cn, dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh;
};

const float* OrNull(const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }

Data MakeData(const Case& c, Random& rng) {
  const std::size_t B = c.batch, T = c.steps, I = c.in_dim, H = c.hidden;
  const double k = 1.0 / std::sqrt(static_cast<double>(H));
  Data d;
  d.x = rng.floats(B * T * I, -2, 2);
  if (c.with_state) d.h0 = rng.floats(B * H), d.c0 = rng.floats(B * H, -2, 2);
  d.w_ih = rng.floats(4 * H * I, -k, k);
  d.w_hh = rng.floats(4 * H * H, -k, k);
  if (c.with_bias) d.b_ih = rng.floats(4 * H, -k, k), d.b_hh = rng.floats(4 * H, -k, k);
  d.dy = rng.floats(B * T * H);
  d.dhn = rng.floats(B * H);
  d.dcn = rng.floats(B * H);
  return d;
}

Result Run(const Case& c, const Data& d) {
  const std::size_t B = c.batch, T = c.steps, I = c.in_dim, H = c.hidden;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Result r;
  r.y.assign(B * T * H, nan);
  r.hn.assign(B * H, nan);
  r.cn.assign(B * H, nan);
  r.dx.assign(B * T * I, nan);
  r.dh0.assign(B * H, nan);
  r.dc0.assign(B * H, nan);
  r.dw_ih.assign(4 * H * I, nan);
  r.dw_hh.assign(4 * H * H, nan);
  r.db_ih.assign(4 * H, nan);
  r.db_hh.assign(4 * H, nan);
  std::vector<float> stash(flowvae::lstm_stash_size(B, T, H), nan), work(flowvae::lstm_work_size(B, T, H), nan);
  const uint32_t* lengths = c.lengths.empty() ? nullptr : c.lengths.data();
  flowvae::lstm_forward(d.x.data(), lengths, OrNull(d.h0), OrNull(d.c0), d.w_ih.data(), d.w_hh.data(), OrNull(d.b_ih),
                        OrNull(d.b_hh), r.y.data(), r.hn.data(), r.cn.data(), stash.data(), B, T, I, H);
  flowvae::lstm_backward(d.x.data(), lengths, d.w_ih.data(), d.w_hh.data(), stash.data(), d.dy.data(), d.dhn.data(),
                         d.dcn.data(), r.dx.data(), r.dh0.data(), r.dc0.data(), r.dw_ih.data(), r.dw_hh.data(),
                         r.db_ih.data(), r.db_hh.data(), work.data(), B, T, I, H, false);
  return r;
}

double Sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// The same mathematics in double, row by row.
Result Reference(const Case& c, const Data& d) {
  const std::size_t B = c.batch, T = c.steps, I = c.in_dim, H = c.hidden, G = 4 * H;
  std::vector<double> y(B * T * H, 0.0), hn(B * H), cn(B * H), dx(B * T * I, 0.0), dh0(B * H), dc0(B * H),
      dw_ih(G * I, 0.0), dw_hh(G * H, 0.0), db(G, 0.0);
  for (std::size_t b = 0; b < B; ++b) {
    const std::size_t len = c.lengths.empty() ? T : c.lengths[b];
    std::vector<double> h(H), cc(H), act(len * G), hp(len * H), cp(len * H), tcs(len * H);
    for (std::size_t j = 0; j < H; ++j)
      h[j] = d.h0.empty() ? 0 : d.h0[b * H + j], cc[j] = d.c0.empty() ? 0 : d.c0[b * H + j];
    for (std::size_t t = 0; t < len; ++t) {
      const std::size_t r = b * T + t;
      std::vector<double> pre(G);
      for (std::size_t k = 0; k < G; ++k) {
        double v = (d.b_ih.empty() ? 0 : d.b_ih[k]) + (d.b_hh.empty() ? 0 : d.b_hh[k]);
        for (std::size_t p = 0; p < I; ++p) v += static_cast<double>(d.w_ih[k * I + p]) * d.x[r * I + p];
        for (std::size_t p = 0; p < H; ++p) v += static_cast<double>(d.w_hh[k * H + p]) * h[p];
        pre[k] = v;
      }
      for (std::size_t j = 0; j < H; ++j) {
        hp[t * H + j] = h[j], cp[t * H + j] = cc[j];
        const double i = Sigmoid(pre[j]), f = Sigmoid(pre[H + j]), g = std::tanh(pre[2 * H + j]),
                     o = Sigmoid(pre[3 * H + j]);
        cc[j] = f * cc[j] + i * g;
        const double tc = std::tanh(cc[j]);
        h[j] = o * tc;
        y[r * H + j] = h[j];
        act[t * G + j] = i, act[t * G + H + j] = f, act[t * G + 2 * H + j] = g, act[t * G + 3 * H + j] = o;
        tcs[t * H + j] = tc;
      }
    }
    std::vector<double> dh(H), dc(H), dg(G);
    for (std::size_t j = 0; j < H; ++j)
      hn[b * H + j] = h[j], cn[b * H + j] = cc[j], dh[j] = d.dhn[b * H + j], dc[j] = d.dcn[b * H + j];
    for (std::size_t t = len; t-- > 0;) {
      const std::size_t r = b * T + t;
      for (std::size_t j = 0; j < H; ++j) {
        const double i = act[t * G + j], f = act[t * G + H + j], g = act[t * G + 2 * H + j], o = act[t * G + 3 * H + j];
        const double tc = tcs[t * H + j];
        const double dhv = dh[j] + d.dy[r * H + j];
        const double dct = dc[j] + dhv * o * (1 - tc * tc);
        dg[j] = dct * g * i * (1 - i);
        dg[H + j] = dct * cp[t * H + j] * f * (1 - f);
        dg[2 * H + j] = dct * i * (1 - g * g);
        dg[3 * H + j] = dhv * tc * o * (1 - o);
        dc[j] = dct * f;
      }
      for (std::size_t p = 0; p < H; ++p) {
        double v = 0;
        for (std::size_t k = 0; k < G; ++k) v += dg[k] * d.w_hh[k * H + p];
        dh[p] = v;
      }
      for (std::size_t k = 0; k < G; ++k) {
        for (std::size_t p = 0; p < I; ++p)
          dx[r * I + p] += dg[k] * d.w_ih[k * I + p], dw_ih[k * I + p] += dg[k] * d.x[r * I + p];
        for (std::size_t p = 0; p < H; ++p) dw_hh[k * H + p] += dg[k] * hp[t * H + p];
        db[k] += dg[k];
      }
    }
    for (std::size_t j = 0; j < H; ++j) dh0[b * H + j] = dh[j], dc0[b * H + j] = dc[j];
  }
  auto f = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  return Result{f(y), f(hn), f(cn), f(dx), f(dh0), f(dc0), f(dw_ih), f(dw_hh), f(db), f(db)};
}

// |got − want| <= tol · max(1, max|want|): the float32 kernels against float64 (errors
// measured ≈ 5e-7 of the largest entry; 1e-5 leaves a margin for other ISAs).
void CheckClose(const std::vector<float>& got, const std::vector<float>& want) {
  CHECK(got.size() == want.size());
  if (got.size() != want.size()) return;
  double scale = 1;
  for (float v : want) scale = std::fmax(scale, std::fabs(v));
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(std::fabs(got[i] - want[i]) <= 1e-5 * scale);
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

}  // namespace

void test_lstm() {
  Random rng(18);
  const Case cases[] = {
      {1, 1, 3, 7, {}, true, true},
      {5, 6, 4, 13, {6, 0, 3, 1, 5}, true, true},
      {3, 4, 1, 16, {}, false, false},
      {2, 3, 0, 9, {3, 2}, true, true},
      {7, 9, 10, 33, {9, 8, 1, 9, 4, 2, 7}, true, true},
      {2, 0, 3, 5, {0, 0}, true, true},
      {0, 4, 3, 5, {}, true, true},
      {3, 60, 2, 7, {60, 37, 11}, true, true},
      {40, 5, 6, 20, {}, true, true},
  };
  const int saved = flowvae::num_threads();
  for (const Case& c : cases) {
    const Data d = MakeData(c, rng);
    const Result want = Reference(c, d);
    flowvae::set_num_threads(1);
    const Result one = Run(c, d);
    flowvae::set_num_threads(2);
    const Result two = Run(c, d);
    for (const auto member : {&Result::y, &Result::hn, &Result::cn, &Result::dx, &Result::dh0, &Result::dc0,
                              &Result::dw_ih, &Result::dw_hh, &Result::db_ih, &Result::db_hh}) {
      CheckClose(one.*member, want.*member);
      CHECK(SameBits(one.*member, two.*member));
    }
  }
  flowvae::set_num_threads(saved);
}
