// Bindings of the residual-flow kernels (native/cpu/residual.cc).
//
// Sizes are checked first (the layer widths in `sizes`, then the lengths they
// imply), then arrays in argument order, each into a local so the first bad
// argument is the one named. Outputs must not share memory with any other
// argument. forward, backward and inverse return their bad-row counts.
#include <string>

#include "args.h"
#include "flow_args.h"
#include "flowvae/residual.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

constexpr std::size_t kMaxLayers = 64;

struct Net {
  const uint32_t* sizes;
  std::size_t layers, dim, net;
  int activation;
};

constexpr const char* kSizesWhat = "layer widths [D, H..., D] as a Uint32Array of 2 to 65 integers in [1, 65536]";

// Reads sizes (argument i, a Uint32Array [L + 1]) and the activation index (argument i + 1).
Net ReadNet(const Napi::CallbackInfo& info, std::size_t i) {
  Napi::Env env = info.Env();
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
    ThrowTypeError(env, Expected(kSizesWhat, "sizes", v));
  const std::size_t len = v.As<Napi::Uint32Array>().ElementLength();
  if (len < 2 || len > kMaxLayers + 1) ThrowRangeError(env, Expected(kSizesWhat, "sizes", v), "ERR_SHAPE");
  Net n{};
  n.sizes = U32(info, i, "sizes", len);
  n.layers = len - 1;
  for (std::size_t l = 0; l < len; ++l) {
    if (n.sizes[l] < 1 || n.sizes[l] > 65536) ThrowRangeError(env, Expected(kSizesWhat, "sizes", v));
  }
  if (n.sizes[n.layers] != n.sizes[0]) ThrowRangeError(env, Expected(kSizesWhat, "sizes", v));
  n.dim = n.sizes[0];
  n.net = residual_net_size(n.sizes, n.layers);
  n.activation = static_cast<int>(SizeBetween(info, i + 1, "activation", 0, 1));
  return n;
}

struct Series {
  Buffer noise, terms;
  double p;
  std::size_t exact_terms;
  bool exact;
};

// noise, terms (arguments i, i + 1: both null, or [batch, dim] and [batch]), p, exactTerms.
Series ReadSeries(const Napi::CallbackInfo& info, std::size_t i, const Net& n, std::size_t batch) {
  Napi::Env env = info.Env();
  Series s{};
  s.noise = Buffer{OptF32(info, i, "noise", Product(env, batch, n.dim, "noise")), batch * n.dim, "noise"};
  s.exact = info[i].IsNull() || info[i].IsUndefined();
  if (s.exact) {
    if (!info[i + 1].IsNull() && !info[i + 1].IsUndefined())
      ThrowTypeError(env, Expected("null (no noise: the exact log-det)", "terms", info[i + 1]));
    s.terms = Buffer{nullptr, 0, "terms"};
    if (n.dim > kResidualExactMaxDim)
      ThrowRangeError(env, Expected("Float32Array (the estimator's noise: the exact log-det takes D ≤ " +
                                        std::to_string(kResidualExactMaxDim) + ")",
                                    "noise", info[i]));
  } else {
    // Series lengths: each floored and clamped to [0, kResidualMaxTerms] by the kernel (NaN counts as 0).
    s.terms = In(info, i + 1, "terms", batch);
  }
  s.p = Number(info, i + 2, "p");
  if (!(s.p > 0 && s.p <= 1)) ThrowRangeError(env, Expected("number in (0, 1]", "p", info[i + 2]));
  s.exact_terms = SizeBetween(info, i + 3, "exactTerms", 0, kResidualMaxTerms);
  return s;
}

// normalize(weight, u, v, out, sigma, rows, cols, c, iterations)
Napi::Value Normalize(const Napi::CallbackInfo& info) {
  Arity(info, 9, "residualNormalize");
  const std::size_t rows = PositiveSize(info, 5, "rows"), cols = PositiveSize(info, 6, "cols");
  const std::size_t n = Product(info.Env(), rows, cols, "rows * cols");
  const double c = Number(info, 7, "c");
  if (!(c > 0)) ThrowRangeError(info.Env(), Expected("positive finite number", "c", info[7]));
  const std::size_t iterations = SizeBetween(info, 8, "iterations", 0, 1000000);
  const Buffer weight = In(info, 0, "weight", n);
  const Buffer u = Out(info, 1, "u", rows, {weight});
  const Buffer v = Out(info, 2, "v", cols, {weight, u});
  const Buffer out = Out(info, 3, "out", n, {weight, u, v});
  const Buffer sigma = Out(info, 4, "sigma", 1, {weight, u, v, out});
  residual_normalize(weight.data, u.data, v.data, out.data, sigma.data, rows, cols, static_cast<float>(c), iterations);
  return info.Env().Undefined();
}

// normalizeBackward(weight, u, v, sigma, dOut, dWeight, rows, cols, c)
Napi::Value NormalizeBackward(const Napi::CallbackInfo& info) {
  Arity(info, 9, "residualNormalizeBackward");
  const std::size_t rows = PositiveSize(info, 6, "rows"), cols = PositiveSize(info, 7, "cols");
  const std::size_t n = Product(info.Env(), rows, cols, "rows * cols");
  const double sigma = Number(info, 3, "sigma");
  const double c = Number(info, 8, "c");
  const Buffer weight = In(info, 0, "weight", n);
  const Buffer u = In(info, 1, "u", rows);
  const Buffer v = In(info, 2, "v", cols);
  const Buffer d_out = In(info, 4, "dOut", n);
  const Buffer d_weight = Out(info, 5, "dWeight", n, {weight, u, v, d_out});
  residual_normalize_backward(weight.data, u.data, v.data, static_cast<float>(sigma), d_out.data, d_weight.data, rows,
                              cols, static_cast<float>(c));
  return info.Env().Undefined();
}

// forward(x, net, sizes, activation, noise, terms, p, exactTerms, y, logDet, stash, batch)
Napi::Value Forward(const Napi::CallbackInfo& info) {
  Arity(info, 12, "residualForward");
  Napi::Env env = info.Env();
  const std::size_t batch = Size(info, 11, "batch");
  const Net n = ReadNet(info, 2);
  const std::size_t values = Product(env, batch, n.dim, "batch * dim");
  const Buffer x = In(info, 0, "x", values);
  const Buffer net = In(info, 1, "net", n.net);
  const Series s = ReadSeries(info, 4, n, batch);
  const std::size_t width = residual_stash_size(n.sizes, n.layers, s.exact);
  const Buffer y = Out(info, 8, "y", values, {x, net, s.noise, s.terms});
  const Buffer log_det = Out(info, 9, "logDet", batch, {x, net, s.noise, s.terms, y});
  const Buffer stash =
      Out(info, 10, "stash", Product(env, batch, width, "stash"), {x, net, s.noise, s.terms, y, log_det});
  const std::size_t bad = residual_forward(x.data, net.data, n.sizes, n.layers, n.activation, s.noise.data,
                                           s.terms.data, s.p, s.exact_terms, y.data, log_det.data, stash.data, batch);
  return Napi::Number::New(env, static_cast<double>(bad));
}

// backward(x, net, sizes, activation, exact, stash, dy, dLogDet, dx, dNet, batch)
Napi::Value Backward(const Napi::CallbackInfo& info) {
  Arity(info, 11, "residualBackward");
  Napi::Env env = info.Env();
  const std::size_t batch = Size(info, 10, "batch");
  const Net n = ReadNet(info, 2);
  const bool exact = Bool(info, 4, "exact");
  if (exact && n.dim > kResidualExactMaxDim)
    ThrowRangeError(env, Expected("false (the exact log-det takes D ≤ " + std::to_string(kResidualExactMaxDim) + ")",
                                  "exact", info[4]));
  const std::size_t values = Product(env, batch, n.dim, "batch * dim");
  const std::size_t width = residual_stash_size(n.sizes, n.layers, exact);
  const Buffer x = In(info, 0, "x", values);
  const Buffer net = In(info, 1, "net", n.net);
  const Buffer stash = In(info, 5, "stash", Product(env, batch, width, "stash"));
  const Buffer dy = In(info, 6, "dy", values);
  const Buffer d_log_det = In(info, 7, "dLogDet", batch);
  const Buffer dx = Out(info, 8, "dx", values, {x, net, stash, dy, d_log_det});
  const Buffer d_net = Out(info, 9, "dNet", n.net, {x, net, stash, dy, d_log_det, dx});
  const std::size_t bad = residual_backward(x.data, net.data, n.sizes, n.layers, n.activation, exact, stash.data,
                                            dy.data, d_log_det.data, dx.data, d_net.data, batch);
  return Napi::Number::New(env, static_cast<double>(bad));
}

// inverse(y, net, sizes, activation, noise, terms, p, exactTerms, tol, maxIterations, x, logDet, batch)
Napi::Value Inverse(const Napi::CallbackInfo& info) {
  Arity(info, 13, "residualInverse");
  Napi::Env env = info.Env();
  const std::size_t batch = Size(info, 12, "batch");
  const Net n = ReadNet(info, 2);
  const std::size_t values = Product(env, batch, n.dim, "batch * dim");
  const Buffer y = In(info, 0, "y", values);
  const Buffer net = In(info, 1, "net", n.net);
  const Series s = ReadSeries(info, 4, n, batch);
  const double tol = Number(info, 8, "tol");
  if (!(tol > 0)) ThrowRangeError(env, Expected("positive finite number", "tol", info[8]));
  const std::size_t max_iterations = SizeBetween(info, 9, "maxIterations", 1, 1000000);
  const Buffer x = Out(info, 10, "x", values, {y, net, s.noise, s.terms});
  const Buffer log_det = Out(info, 11, "logDet", batch, {y, net, s.noise, s.terms, x});
  const std::size_t bad =
      residual_inverse(y.data, net.data, n.sizes, n.layers, n.activation, s.noise.data, s.terms.data, s.p,
                       s.exact_terms, tol, max_iterations, x.data, log_det.data, batch);
  return Napi::Number::New(env, static_cast<double>(bad));
}

}  // namespace

void RegisterResidual(Napi::Env env, Napi::Object exports) {
  exports.Set("residualNormalize", Napi::Function::New(env, Normalize, "residualNormalize"));
  exports.Set("residualNormalizeBackward", Napi::Function::New(env, NormalizeBackward, "residualNormalizeBackward"));
  exports.Set("residualForward", Napi::Function::New(env, Forward, "residualForward"));
  exports.Set("residualBackward", Napi::Function::New(env, Backward, "residualBackward"));
  exports.Set("residualInverse", Napi::Function::New(env, Inverse, "residualInverse"));
}

}  // namespace napi
}  // namespace flowvae
