// cuda bindings of the radial kernels (native/cuda/radial.cu): the cpu bindings'
// checks (flow_args.h), then the staged call (flow_stack.h).
#include "flowvae/cuda/radial.h"

#include "flow_stack.h"
#include "flowvae/radial.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

Napi::Value Forward(const Napi::CallbackInfo& info) {
  return cuda_stack::Forward<cuda::radial_forward, radial_param_size>(info, "radialForward");
}

Napi::Value Backward(const Napi::CallbackInfo& info) {
  // The kernel recomputes the radii from x: the stash is checked but not uploaded.
  return cuda_stack::Backward<cuda::radial_backward, radial_param_size, false>(info, "radialBackward", "x");
}

Napi::Value Inverse(const Napi::CallbackInfo& info) {
  return cuda_stack::Inverse<cuda::radial_inverse, radial_param_size>(info, "radialInverse");
}

}  // namespace

void RegisterCudaRadial(Napi::Env env, Napi::Object cuda) {
  cuda_call::Export<Forward>(env, cuda, "radialForward");
  cuda_call::Export<Backward>(env, cuda, "radialBackward");
  cuda_call::Export<Inverse>(env, cuda, "radialInverse");
}

}  // namespace napi
}  // namespace flowvae
