// Bindings of the elementwise kernels (native/cpu/elementwise.cc); argument
// checks in elementwise_args.h.
#include "flowvae/elementwise.h"

#include "elementwise_args.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

Napi::Value Forward(const Napi::CallbackInfo& info) {
  const auto a = elementwise_args::ForwardArgs(info);
  elementwise_forward(a.kind, a.x, a.y, a.n, a.alpha);
  return info.Env().Undefined();
}

Napi::Value Backward(const Napi::CallbackInfo& info) {
  const auto a = elementwise_args::BackwardArgs(info);
  elementwise_backward(a.kind, a.x, a.y, a.dy, a.dx, a.n, a.alpha);
  return info.Env().Undefined();
}

}  // namespace

void RegisterElementwise(Napi::Env env, Napi::Object exports) {
  exports.Set("elementwiseForward", Napi::Function::New(env, Forward, "elementwiseForward"));
  exports.Set("elementwiseBackward", Napi::Function::New(env, Backward, "elementwiseBackward"));
}

}  // namespace napi
}  // namespace flowvae
