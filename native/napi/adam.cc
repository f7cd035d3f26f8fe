// Bindings of the adam kernels (native/cpu/adam.cc).
#include "args.h"
#include "register.h"

namespace flowvae {
namespace napi {

void RegisterAdam(Napi::Env, Napi::Object) {}

}  // namespace napi
}  // namespace flowvae
