// Bindings of the autoregressive kernels (native/cpu/autoregressive.cc).
#include "args.h"
#include "register.h"

namespace flowvae {
namespace napi {

void RegisterAutoregressive(Napi::Env, Napi::Object) {}

}  // namespace napi
}  // namespace flowvae
