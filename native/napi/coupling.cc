// Bindings of the coupling kernels (native/cpu/coupling.cc).
#include "args.h"
#include "register.h"

namespace flowvae {
namespace napi {

void RegisterCoupling(Napi::Env, Napi::Object) {}

}  // namespace napi
}  // namespace flowvae
