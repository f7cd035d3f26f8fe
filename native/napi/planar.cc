// Bindings of the planar kernels (native/cpu/planar.cc).
#include "args.h"
#include "register.h"

namespace flowvae {
namespace napi {

void RegisterPlanar(Napi::Env, Napi::Object) {}

}  // namespace napi
}  // namespace flowvae
