// Bindings of the radial kernels (native/cpu/radial.cc); argument checks and
// names in flow_args.h, shared with the other flow stacks.
#include "flowvae/radial.h"

#include "flow_args.h"
#include "register.h"

namespace flowvae {
namespace napi {

void RegisterRadial(Napi::Env env, Napi::Object exports) {
  RegisterStack<kRadialStack, radial_forward, radial_backward, radial_inverse>(env, exports);
}

}  // namespace napi
}  // namespace flowvae
