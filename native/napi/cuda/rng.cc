// cuda bindings of the rng streams (native/cuda/rng.cu), with the checks of
// native/napi/rng.cc.
#include "flowvae/cuda/rng.h"

#include <cmath>

#include "../args.h"
#include "call.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

using cuda_call::Call;

// An integer in [0, 2^53): seeds and stream offsets.
uint64_t StreamIndex(const Napi::CallbackInfo& info, std::size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) ThrowTypeError(info.Env(), Expected("integer in [0, 2^53)", name, v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != std::floor(d) || d > 9007199254740991.0)
    ThrowRangeError(info.Env(), Expected("integer in [0, 2^53)", name, v));
  return static_cast<uint64_t>(d);
}

template <void (*kKernel)(uint64_t, uint64_t, float*, std::size_t)>
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
  Call call("rng");
  float* d_out = call.Out(out, n);
  kKernel(seed, offset, d_out, n);
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
