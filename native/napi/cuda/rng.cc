// cuda bindings of the rng streams (native/cuda/rng.cu), with the checks of
// the cpu bindings (rng_args.h).
#include "flowvae/cuda/rng.h"

#include "../rng_args.h"
#include "call.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

using cuda_call::Call;

template <void (*kKernel)(uint64_t, uint64_t, float*, std::size_t)>
Napi::Value Generate(const Napi::CallbackInfo& info) {
  const auto a = rng_args::GenerateArgs(info);
  Call call("rng");
  float* d_out = call.Out(a.out, a.n);
  kKernel(a.seed, a.offset, d_out, a.n);
  call.Finish();
  return info.Env().Undefined();
}

}  // namespace

void RegisterCudaRng(Napi::Env env, Napi::Object cuda) {
  cuda_call::Export<Generate<cuda::rng_normal>>(env, cuda, "rngNormal");
  cuda_call::Export<Generate<cuda::rng_uniform>>(env, cuda, "rngUniform");
}

}  // namespace napi
}  // namespace flowvae
