// Bindings of the glow kernels (native/cpu/glow.cc).
#include "args.h"
#include "register.h"

namespace flowvae {
namespace napi {

void RegisterGlow(Napi::Env, Napi::Object) {}

}  // namespace napi
}  // namespace flowvae
