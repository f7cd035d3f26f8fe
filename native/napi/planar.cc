// Bindings of the planar kernels (native/cpu/planar.cc); argument checks in flow_args.h.
#include "flowvae/planar.h"

#include "args.h"
#include "flow_args.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

Napi::Value Forward(const Napi::CallbackInfo& info) {
  return StackForward<planar_forward, planar_param_size>(info, "planarForward");
}

Napi::Value Backward(const Napi::CallbackInfo& info) {
  return StackBackward<planar_backward, planar_param_size>(info, "planarBackward", "y");
}

Napi::Value Inverse(const Napi::CallbackInfo& info) {
  return StackInverse<planar_inverse, planar_param_size>(info, "planarInverse");
}

}  // namespace

void RegisterPlanar(Napi::Env env, Napi::Object exports) {
  exports.Set("planarForward", Napi::Function::New(env, Forward, "planarForward"));
  exports.Set("planarBackward", Napi::Function::New(env, Backward, "planarBackward"));
  exports.Set("planarInverse", Napi::Function::New(env, Inverse, "planarInverse"));
}

}  // namespace napi
}  // namespace flowvae
