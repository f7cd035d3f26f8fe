// Bindings of the planar kernels (native/cpu/planar.cc).
#include "flowvae/planar.h"

#include "args.h"
#include "flow_args.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

// Sizes shared by the three calls: batch, dim, layers, amortized at `first`.
struct PlanarSizes {
  std::size_t batch, dim, layers, row_params, params, values, per_layer;
  bool amortized;
};

PlanarSizes ReadSizes(const Napi::CallbackInfo& info, std::size_t first) {
  Napi::Env env = info.Env();
  PlanarSizes s{};
  s.batch = Size(info, first, "batch");
  s.dim = PositiveSize(info, first + 1, "dim");
  s.layers = PositiveSize(info, first + 2, "layers");
  s.amortized = Bool(info, first + 3, "amortized");
  s.row_params = Product(env, s.layers, planar_param_size(s.dim), "params");
  s.params = s.amortized ? Product(env, s.batch, s.row_params, "params") : s.row_params;
  s.values = Product(env, s.batch, s.dim, "x");
  s.per_layer = Product(env, s.batch, s.layers, "stash");
  return s;
}

// planarForward(x, params, y, logDet, layerLogDet | null, stash, batch, dim, layers, amortized) -> non-finite rows
Napi::Value Forward(const Napi::CallbackInfo& info) {
  Arity(info, 10, "planarForward");
  const PlanarSizes s = ReadSizes(info, 6);
  const Buffer x = In(info, 0, "x", s.values);
  const Buffer params = In(info, 1, "params", s.params);
  const Buffer y = Out(info, 2, "y", s.values, {x, params});
  const Buffer log_det = Out(info, 3, "logDet", s.batch, {x, params, y});
  const Buffer layer_log_det = OptOut(info, 4, "layerLogDet", s.per_layer, {x, params, y, log_det});
  const Buffer stash = Out(info, 5, "stash", s.per_layer, {x, params, y, log_det, layer_log_det});
  const std::size_t bad = planar_forward(x.data, params.data, s.amortized, y.data, log_det.data, layer_log_det.data,
                                         stash.data, s.batch, s.dim, s.layers);
  return Napi::Number::New(info.Env(), static_cast<double>(bad));
}

// planarBackward(y, stash, params, dy, dLogDet, dx, dParams, batch, dim, layers, amortized) -> non-finite rows
Napi::Value Backward(const Napi::CallbackInfo& info) {
  Arity(info, 11, "planarBackward");
  const PlanarSizes s = ReadSizes(info, 7);
  const Buffer y = In(info, 0, "y", s.values);
  const Buffer stash = In(info, 1, "stash", s.per_layer);
  const Buffer params = In(info, 2, "params", s.params);
  const Buffer dy = In(info, 3, "dy", s.values);
  const Buffer d_log_det = In(info, 4, "dLogDet", s.batch);
  const Buffer dx = Out(info, 5, "dx", s.values, {y, stash, params, dy, d_log_det});
  const Buffer d_params = Out(info, 6, "dParams", s.params, {y, stash, params, dy, d_log_det, dx});
  const std::size_t bad = planar_backward(y.data, stash.data, params.data, s.amortized, dy.data, d_log_det.data,
                                          dx.data, d_params.data, s.batch, s.dim, s.layers);
  return Napi::Number::New(info.Env(), static_cast<double>(bad));
}

// planarInverse(y, params, x, logDet, batch, dim, layers, amortized) -> rows that did not converge
Napi::Value Inverse(const Napi::CallbackInfo& info) {
  Arity(info, 8, "planarInverse");
  const PlanarSizes s = ReadSizes(info, 4);
  const Buffer y = In(info, 0, "y", s.values);
  const Buffer params = In(info, 1, "params", s.params);
  const Buffer x = Out(info, 2, "x", s.values, {y, params});
  const Buffer log_det = Out(info, 3, "logDet", s.batch, {y, params, x});
  const std::size_t bad =
      planar_inverse(y.data, params.data, s.amortized, x.data, log_det.data, s.batch, s.dim, s.layers);
  return Napi::Number::New(info.Env(), static_cast<double>(bad));
}

}  // namespace

void RegisterPlanar(Napi::Env env, Napi::Object exports) {
  exports.Set("planarForward", Napi::Function::New(env, Forward, "planarForward"));
  exports.Set("planarBackward", Napi::Function::New(env, Backward, "planarBackward"));
  exports.Set("planarInverse", Napi::Function::New(env, Inverse, "planarInverse"));
}

}  // namespace napi
}  // namespace flowvae
