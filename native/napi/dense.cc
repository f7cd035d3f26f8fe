// Bindings of the dense kernels (native/cpu/dense.cc).
#include "args.h"
#include "register.h"

namespace flowvae {
namespace napi {

void RegisterDense(Napi::Env, Napi::Object) {}

}  // namespace napi
}  // namespace flowvae
