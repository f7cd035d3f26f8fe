// Bindings of the sylvester kernels (native/cpu/sylvester.cc).
#include "args.h"
#include "register.h"

namespace flowvae {
namespace napi {

void RegisterSylvester(Napi::Env, Napi::Object) {}

}  // namespace napi
}  // namespace flowvae
