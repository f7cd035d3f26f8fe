// Bindings of the spline kernels (native/cpu/spline.cc).
//
//   splineForward(x, params, y, logDet, batch, dim, width, start, bins, bound)
//   splineInverse(y, params, x, logDet, batch, dim, width, start, bins, bound)
//   splineBackward(x, params, dy, dLogDet, dx, dParams, batch, dim, width, start, bins, bound)
//
// x, y, dy, dx are [batch, dim] and the kernels work on columns
// [start, start + width); params and dParams are [batch, 3·bins − 1, width].
// Sizes are checked first (array lengths derive from them), then the arrays
// in argument order; no output may share memory with another argument.
#include <cmath>
#include <string>

#include "args.h"
#include "flow_args.h"
#include "flowvae/spline.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

// An integer in [lo, hi]; TypeError when not a number, RangeError otherwise.
std::size_t IntegerBetween(const Napi::CallbackInfo& info, std::size_t i, const char* name, std::size_t lo,
                           std::size_t hi) {
  Napi::Value v = info[i];
  const std::string what = "integer between " + std::to_string(lo) + " and " + std::to_string(hi);
  if (!v.IsNumber()) ThrowTypeError(info.Env(), Expected(what, name, v));
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != std::floor(d))
    ThrowRangeError(info.Env(), Expected(what, name, v));
  return static_cast<std::size_t>(d);
}

struct SplineSizes {
  std::size_t batch, dim, width, start, bins;
  float bound;
  std::size_t values;  // batch·dim
  std::size_t params;  // batch·(3·bins − 1)·width
};

SplineSizes ReadSizes(const Napi::CallbackInfo& info, std::size_t first) {
  Napi::Env env = info.Env();
  SplineSizes s{};
  s.batch = Size(info, first, "batch");
  s.dim = Size(info, first + 1, "dim");
  s.width = Size(info, first + 2, "width");
  if (s.width > s.dim)
    ThrowRangeError(env, Expected("integer between 0 and " + std::to_string(s.dim), "width", info[first + 2]));
  s.start = IntegerBetween(info, first + 3, "start", 0, s.dim - s.width);
  s.bins = IntegerBetween(info, first + 4, "bins", 1, kSplineMaxBins);
  Napi::Value b = info[first + 5];
  const char* bound_what = "number in [1e-30, 1e+30]";
  if (!b.IsNumber()) ThrowTypeError(env, Expected(bound_what, "bound", b));
  const double bound = b.As<Napi::Number>().DoubleValue();
  if (!(bound >= 1e-30 && bound <= 1e30)) ThrowRangeError(env, Expected(bound_what, "bound", b));
  s.bound = static_cast<float>(bound);
  s.values = Product(env, s.batch, s.dim, "batch * dim");
  s.params = Product(env, Product(env, s.batch, 3 * s.bins - 1, "params"), s.width, "params");
  return s;
}

Napi::Value Forward(const Napi::CallbackInfo& info) {
  Arity(info, 10, "splineForward");
  const SplineSizes s = ReadSizes(info, 4);
  const Buffer x = In(info, 0, "x", s.values);
  const Buffer params = In(info, 1, "params", s.params);
  const Buffer y = Out(info, 2, "y", s.values, {x, params});
  const Buffer log_det = Out(info, 3, "logDet", s.batch, {x, params, y});
  spline_forward(x.data, params.data, y.data, log_det.data, s.batch, s.dim, s.width, s.start, s.bins, s.bound);
  return info.Env().Undefined();
}

Napi::Value Inverse(const Napi::CallbackInfo& info) {
  Arity(info, 10, "splineInverse");
  const SplineSizes s = ReadSizes(info, 4);
  const Buffer y = In(info, 0, "y", s.values);
  const Buffer params = In(info, 1, "params", s.params);
  const Buffer x = Out(info, 2, "x", s.values, {y, params});
  const Buffer log_det = Out(info, 3, "logDet", s.batch, {y, params, x});
  spline_inverse(y.data, params.data, x.data, log_det.data, s.batch, s.dim, s.width, s.start, s.bins, s.bound);
  return info.Env().Undefined();
}

Napi::Value Backward(const Napi::CallbackInfo& info) {
  Arity(info, 12, "splineBackward");
  const SplineSizes s = ReadSizes(info, 6);
  const Buffer x = In(info, 0, "x", s.values);
  const Buffer params = In(info, 1, "params", s.params);
  const Buffer dy = In(info, 2, "dy", s.values);
  const Buffer d_log_det = In(info, 3, "dLogDet", s.batch);
  const Buffer dx = Out(info, 4, "dx", s.values, {x, params, dy, d_log_det});
  const Buffer d_params = Out(info, 5, "dParams", s.params, {x, params, dy, d_log_det, dx});
  spline_backward(x.data, params.data, dy.data, d_log_det.data, dx.data, d_params.data, s.batch, s.dim, s.width,
                  s.start, s.bins, s.bound);
  return info.Env().Undefined();
}

}  // namespace

void RegisterSpline(Napi::Env env, Napi::Object exports) {
  exports.Set("splineForward", Napi::Function::New(env, Forward, "splineForward"));
  exports.Set("splineBackward", Napi::Function::New(env, Backward, "splineBackward"));
  exports.Set("splineInverse", Napi::Function::New(env, Inverse, "splineInverse"));
}

}  // namespace napi
}  // namespace flowvae
