// Bindings of the likelihood kernels (native/cpu/likelihood.cc).
#include "args.h"
#include "register.h"

namespace flowvae {
namespace napi {

void RegisterLikelihood(Napi::Env, Napi::Object) {}

}  // namespace napi
}  // namespace flowvae
