// Bindings of the rng kernels (native/cpu/rng.cc).
#include "flowvae/rng.h"

#include "args.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

// An integer in [0, 2^53): seeds and stream offsets.
uint64_t StreamIndex(const Napi::CallbackInfo& info, std::size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) ThrowTypeError(info.Env(), Expected("integer in [0, 2^53)", name, v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != std::floor(d) || d > 9007199254740991.0)
    ThrowRangeError(info.Env(), Expected("integer in [0, 2^53)", name, v));
  return static_cast<uint64_t>(d);
}

template <void (*Kernel)(uint64_t, uint64_t, float*, std::size_t)>
Napi::Value Generate(const Napi::CallbackInfo& info) {
  Arity(info, 3, "rng");
  const uint64_t seed = StreamIndex(info, 0, "seed");
  const uint64_t offset = StreamIndex(info, 1, "offset");
  Napi::Value v = info[2];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    ThrowTypeError(info.Env(), Expected("Float32Array", "out", v));
  const std::size_t n = v.As<Napi::Float32Array>().ElementLength();
  if (static_cast<double>(offset) + static_cast<double>(n) > 9007199254740991.0)
    ThrowRangeError(info.Env(), Expected("offset + out.length below 2^53", "offset", info[1]));
  float* out = F32(info, 2, "out", n);
  Kernel(seed, offset, out, n);
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
