// Bindings of the rng kernels (native/cpu/rng.cc); argument checks in rng_args.h.
#include "flowvae/rng.h"

#include "register.h"
#include "rng_args.h"

namespace flowvae {
namespace napi {
namespace {

template <void (*kKernel)(uint64_t, uint64_t, float*, std::size_t)>
Napi::Value Generate(const Napi::CallbackInfo& info) {
  const auto a = rng_args::GenerateArgs(info);
  kKernel(a.seed, a.offset, a.out, a.n);
  return info.Env().Undefined();
}

void NormalF32(uint64_t seed, uint64_t offset, float* out, std::size_t n) { rng_normal(seed, offset, out, n); }
void UniformF32(uint64_t seed, uint64_t offset, float* out, std::size_t n) { rng_uniform(seed, offset, out, n); }

}  // namespace

void RegisterRng(Napi::Env env, Napi::Object exports) {
  exports.Set("rngNormal", Napi::Function::New(env, Generate<NormalF32>, "rngNormal"));
  exports.Set("rngUniform", Napi::Function::New(env, Generate<UniformF32>, "rngUniform"));
}

}  // namespace napi
}  // namespace flowvae
