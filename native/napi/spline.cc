// Bindings of the spline kernels (native/cpu/spline.cc).
#include "args.h"
#include "register.h"

namespace flowvae {
namespace napi {

void RegisterSpline(Napi::Env, Napi::Object) {}

}  // namespace napi
}  // namespace flowvae
