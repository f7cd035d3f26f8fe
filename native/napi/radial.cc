// Bindings of the radial kernels (native/cpu/radial.cc).
#include "args.h"
#include "register.h"

namespace flowvae {
namespace napi {

void RegisterRadial(Napi::Env, Napi::Object) {}

}  // namespace napi
}  // namespace flowvae
