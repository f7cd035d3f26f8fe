// Bindings of the rng kernels (native/cpu/rng.cc).
#include "args.h"
#include "register.h"

namespace flowvae {
namespace napi {

void RegisterRng(Napi::Env, Napi::Object) {}

}  // namespace napi
}  // namespace flowvae
