// Argument checks of the rng bindings, shared by the cpu (napi/rng.cc) and
// cuda (napi/cuda/rng.cc) bindings so both refuse the same things with the
// same messages.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>

#include "args.h"

namespace flowvae {
namespace napi {
namespace rng_args {

// 2^53 - 1: stream indices stay exact JS numbers.
constexpr double kMaxStreamIndex = 9007199254740991.0;

// An integer in [0, 2^53): seeds and stream offsets.
inline uint64_t StreamIndex(const Napi::CallbackInfo& info, std::size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) ThrowTypeError(info.Env(), Expected("integer in [0, 2^53)", name, v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != std::floor(d) || d > kMaxStreamIndex)
    ThrowRangeError(info.Env(), Expected("integer in [0, 2^53)", name, v));
  return static_cast<uint64_t>(d);
}

struct Generate {
  uint64_t seed, offset;
  float* out;  // elements offset .. offset + n of the stream
  std::size_t n;
};

// rngNormal / rngUniform(seed, offset, out): the length of `out` is the count.
inline Generate GenerateArgs(const Napi::CallbackInfo& info) {
  Arity(info, 3, "rng");
  Generate a{};
  a.seed = StreamIndex(info, 0, "seed");
  a.offset = StreamIndex(info, 1, "offset");
  Napi::Value v = info[2];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    ThrowTypeError(info.Env(), Expected("Float32Array", "out", v));
  a.n = v.As<Napi::Float32Array>().ElementLength();
  if (static_cast<double>(a.offset) + static_cast<double>(a.n) > kMaxStreamIndex)
    ThrowRangeError(info.Env(), Expected("offset + out.length below 2^53", "offset", info[1]));
  a.out = F32(info, 2, "out", a.n);
  return a;
}

}  // namespace rng_args
}  // namespace napi
}  // namespace flowvae
