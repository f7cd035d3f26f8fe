// Bindings of the elementwise kernels (native/cpu/elementwise.cc).
#include "args.h"
#include "register.h"

namespace flowvae {
namespace napi {

void RegisterElementwise(Napi::Env, Napi::Object) {}

}  // namespace napi
}  // namespace flowvae
