// cuda bindings of the radial kernels (native/cuda/radial.cu): the cpu bindings'
// checks and names (flow_args.h), then the staged call (flow_stack.h).
// The radial kernel recomputes the radii from x: the stash is checked but not uploaded.
#include "flowvae/cuda/radial.h"

#include "flow_stack.h"
#include "register.h"

namespace flowvae {
namespace napi {

void RegisterCudaRadial(Napi::Env env, Napi::Object cuda) {
  cuda_stack::Register<kRadialStack, cuda::radial_forward, cuda::radial_backward, /*kReadsStash=*/false,
                       cuda::radial_inverse>(env, cuda);
}

}  // namespace napi
}  // namespace flowvae
