// Bindings of the elementwise kernels (native/cpu/elementwise.cc).
#include "flowvae/elementwise.h"

#include <cmath>
#include <string>

#include "args.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

// The activation's index in ACTIVATIONS (src/backend/kernels/elementwise.ts).
Activation ActivationArg(const Napi::CallbackInfo& info, std::size_t i, const char* name) {
  static const std::string what = "integer in [0, " + std::to_string(kNumActivations - 1) + "]";
  Napi::Value v = info[i];
  if (!v.IsNumber()) ThrowTypeError(info.Env(), Expected(what, name, v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= kNumActivations - 1) || d != std::floor(d)) ThrowRangeError(info.Env(), Expected(what, name, v));
  return static_cast<Activation>(static_cast<int>(d));
}

// elementwiseForward(kind, x, y, n, alpha)
Napi::Value Forward(const Napi::CallbackInfo& info) {
  Arity(info, 5, "elementwiseForward");
  const Activation kind = ActivationArg(info, 0, "kind");
  const std::size_t n = Size(info, 3, "n");
  const float* x = F32(info, 1, "x", n);
  float* y = F32(info, 2, "y", n);
  const double alpha = Number(info, 4, "alpha");
  elementwise_forward(kind, x, y, n, static_cast<float>(alpha));
  return info.Env().Undefined();
}

// elementwiseBackward(kind, x, y, dy, dx, n, alpha)
Napi::Value Backward(const Napi::CallbackInfo& info) {
  Arity(info, 7, "elementwiseBackward");
  const Activation kind = ActivationArg(info, 0, "kind");
  const std::size_t n = Size(info, 5, "n");
  const float* x = F32(info, 1, "x", n);
  const float* y = F32(info, 2, "y", n);
  const float* dy = F32(info, 3, "dy", n);
  float* dx = F32(info, 4, "dx", n);
  const double alpha = Number(info, 6, "alpha");
  elementwise_backward(kind, x, y, dy, dx, n, static_cast<float>(alpha));
  return info.Env().Undefined();
}

}  // namespace

void RegisterElementwise(Napi::Env env, Napi::Object exports) {
  exports.Set("elementwiseForward", Napi::Function::New(env, Forward, "elementwiseForward"));
  exports.Set("elementwiseBackward", Napi::Function::New(env, Backward, "elementwiseBackward"));
}

}  // namespace napi
}  // namespace flowvae
