// Bindings of the planar kernels (native/cpu/planar.cc); argument checks and
// names in flow_args.h, shared with the other flow stacks.
#include "flowvae/planar.h"

#include "flow_args.h"
#include "register.h"

namespace flowvae {
namespace napi {

void RegisterPlanar(Napi::Env env, Napi::Object exports) {
  RegisterStack<kPlanarStack, planar_forward, planar_backward, planar_inverse>(env, exports);
}

}  // namespace napi
}  // namespace flowvae
