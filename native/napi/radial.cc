// Bindings of the radial kernels (native/cpu/radial.cc); argument checks in flow_args.h.
#include "flowvae/radial.h"

#include "args.h"
#include "flow_args.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

Napi::Value Forward(const Napi::CallbackInfo& info) {
  return StackForward<radial_forward, radial_param_size>(info, "radialForward");
}

Napi::Value Backward(const Napi::CallbackInfo& info) {
  return StackBackward<radial_backward, radial_param_size>(info, "radialBackward", "x");
}

Napi::Value Inverse(const Napi::CallbackInfo& info) {
  return StackInverse<radial_inverse, radial_param_size>(info, "radialInverse");
}

}  // namespace

void RegisterRadial(Napi::Env env, Napi::Object exports) {
  exports.Set("radialForward", Napi::Function::New(env, Forward, "radialForward"));
  exports.Set("radialBackward", Napi::Function::New(env, Backward, "radialBackward"));
  exports.Set("radialInverse", Napi::Function::New(env, Inverse, "radialInverse"));
}

}  // namespace napi
}  // namespace flowvae
