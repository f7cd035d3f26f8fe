// Bindings of the gaussian kernels (native/cpu/gaussian.cc).
#include "args.h"
#include "register.h"

namespace flowvae {
namespace napi {

void RegisterGaussian(Napi::Env, Napi::Object) {}

}  // namespace napi
}  // namespace flowvae
