// cuda bindings of the planar kernels (native/cuda/planar.cu): the cpu bindings'
// checks and names (flow_args.h), then the staged call (flow_stack.h).
#include "flowvae/cuda/planar.h"

#include "flow_stack.h"
#include "register.h"

namespace flowvae {
namespace napi {

void RegisterCudaPlanar(Napi::Env env, Napi::Object cuda) {
  cuda_stack::Register<kPlanarStack, cuda::planar_forward, cuda::planar_backward, /*kReadsStash=*/true,
                       cuda::planar_inverse>(env, cuda);
}

}  // namespace napi
}  // namespace flowvae
