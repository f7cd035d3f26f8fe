// cuda bindings of the planar kernels (native/cuda/planar.cu): the cpu bindings'
// checks (flow_args.h), then the staged call (flow_stack.h).
#include "flowvae/cuda/planar.h"

#include "flow_stack.h"
#include "flowvae/planar.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

Napi::Value Forward(const Napi::CallbackInfo& info) {
  return cuda_stack::Forward<cuda::planar_forward, planar_param_size>(info, "planarForward");
}

Napi::Value Backward(const Napi::CallbackInfo& info) {
  return cuda_stack::Backward<cuda::planar_backward, planar_param_size, true>(info, "planarBackward", "y");
}

Napi::Value Inverse(const Napi::CallbackInfo& info) {
  return cuda_stack::Inverse<cuda::planar_inverse, planar_param_size>(info, "planarInverse");
}

}  // namespace

void RegisterCudaPlanar(Napi::Env env, Napi::Object cuda) {
  cuda_call::Export<Forward>(env, cuda, "planarForward");
  cuda_call::Export<Backward>(env, cuda, "planarBackward");
  cuda_call::Export<Inverse>(env, cuda, "planarInverse");
}

}  // namespace napi
}  // namespace flowvae
