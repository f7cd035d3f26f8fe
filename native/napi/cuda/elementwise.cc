// cuda bindings of the activations (native/cuda/elementwise.cu), with the
// checks of native/napi/elementwise.cc. x and y (dy and dx) may be the same
// array: inputs are uploaded before any output is downloaded.
#include "flowvae/cuda/elementwise.h"

#include <cmath>
#include <string>

#include "../args.h"
#include "call.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

using cuda_call::Call;

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
  Call call("elementwiseForward");
  const float* d_x = call.In(x, n);
  float* d_y = call.Out(y, n);
  cuda::elementwise_forward(kind, d_x, d_y, n, static_cast<float>(alpha));
  call.Finish();
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
  Call call("elementwiseBackward");
  const float* d_x = call.In(x, n);
  const float* d_y = call.In(y, n);
  const float* d_dy = call.In(dy, n);
  float* d_dx = call.Out(dx, n);
  cuda::elementwise_backward(kind, d_x, d_y, d_dy, d_dx, n, static_cast<float>(alpha));
  call.Finish();
  return info.Env().Undefined();
}

}  // namespace

void RegisterCudaElementwise(Napi::Env env, Napi::Object cuda) {
  cuda_call::Export<Forward>(env, cuda, "elementwiseForward");
  cuda_call::Export<Backward>(env, cuda, "elementwiseBackward");
}

}  // namespace napi
}  // namespace flowvae
