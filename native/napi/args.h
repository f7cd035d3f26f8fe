// Argument checks shared by every binding. JavaScript is never trusted: each
// size is re-checked here and each buffer's length compared with the length
// the sizes imply, before any kernel touches memory. Messages follow the one
// format used across flowvae:
//   Expected <what> for "<name>" but received <value>
// Problems of kind (not a number, not a Float32Array) throw TypeError; problems
// of value (negative size, wrong length) throw RangeError. Each error carries
// a .code: ERR_ARG for bad values, ERR_SHAPE for length mismatches.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

namespace flowvae {
namespace napi {

// Short description of a JS value for error messages, e.g. `-1 (number)`,
// `Float64Array(12)`, `"abc" (string)`, `null`, `undefined`, `Array(3)`.
inline std::string Describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsNumber()) {
    return v.ToString().Utf8Value() + " (number)";
  }
  if (v.IsBoolean()) return std::string(v.As<Napi::Boolean>().Value() ? "true" : "false") + " (boolean)";
  if (v.IsString()) return "\"" + v.As<Napi::String>().Utf8Value() + "\" (string)";
  if (v.IsTypedArray()) {
    Napi::TypedArray t = v.As<Napi::TypedArray>();
    const char* kind = "TypedArray";
    switch (t.TypedArrayType()) {
      case napi_float32_array: kind = "Float32Array"; break;
      case napi_float64_array: kind = "Float64Array"; break;
      case napi_int32_array: kind = "Int32Array"; break;
      case napi_uint32_array: kind = "Uint32Array"; break;
      case napi_uint8_array: kind = "Uint8Array"; break;
      case napi_int8_array: kind = "Int8Array"; break;
      case napi_uint8_clamped_array: kind = "Uint8ClampedArray"; break;
      case napi_int16_array: kind = "Int16Array"; break;
      case napi_uint16_array: kind = "Uint16Array"; break;
      case napi_bigint64_array: kind = "BigInt64Array"; break;
      case napi_biguint64_array: kind = "BigUint64Array"; break;
      default: break;
    }
    return std::string(kind) + "(" + std::to_string(t.ElementLength()) + ")";
  }
  if (v.IsArray()) return "Array(" + std::to_string(v.As<Napi::Array>().Length()) + ")";
  if (v.IsFunction()) return "function";
  if (v.IsBigInt()) return v.ToString().Utf8Value() + "n (bigint)";
  return "object";
}

[[noreturn]] inline void ThrowWithCode(Napi::Error err, const char* code) {
  err.Set("code", Napi::String::New(err.Env(), code));
  throw err;
}

[[noreturn]] inline void ThrowTypeError(Napi::Env env, const std::string& msg, const char* code = "ERR_ARG") {
  ThrowWithCode(Napi::TypeError::New(env, msg), code);
}

[[noreturn]] inline void ThrowRangeError(Napi::Env env, const std::string& msg, const char* code = "ERR_ARG") {
  ThrowWithCode(Napi::RangeError::New(env, msg), code);
}

inline std::string Expected(const std::string& what, const char* name, const Napi::Value& v) {
  return "Expected " + what + " for \"" + name + "\" but received " + Describe(v);
}

// Largest size accepted for any single dimension or element count: keeps every
// product of two sizes far inside size_t and every index inside int64.
constexpr double kMaxSize = 4294967296.0;  // 2^32

// A non-negative integer size (a dimension, a count).
inline std::size_t Size(const Napi::CallbackInfo& info, std::size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) ThrowTypeError(info.Env(), Expected("non-negative integer", name, v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != std::floor(d) || d > kMaxSize)
    ThrowRangeError(info.Env(), Expected("non-negative integer", name, v));
  return static_cast<std::size_t>(d);
}

// A strictly positive integer size.
inline std::size_t PositiveSize(const Napi::CallbackInfo& info, std::size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) ThrowTypeError(info.Env(), Expected("positive integer", name, v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 1) || d != std::floor(d) || d > kMaxSize)
    ThrowRangeError(info.Env(), Expected("positive integer", name, v));
  return static_cast<std::size_t>(d);
}

// An integer in [lo, hi] (an iteration budget, a count with a hard ceiling).
inline std::size_t SizeBetween(const Napi::CallbackInfo& info, std::size_t i, const char* name, std::size_t lo,
                               std::size_t hi) {
  Napi::Value v = info[i];
  const std::string what = "integer between " + std::to_string(lo) + " and " + std::to_string(hi);
  if (!v.IsNumber()) ThrowTypeError(info.Env(), Expected(what, name, v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= static_cast<double>(lo)) || d != std::floor(d) || d > static_cast<double>(hi))
    ThrowRangeError(info.Env(), Expected(what, name, v));
  return static_cast<std::size_t>(d);
}

// Any finite number.
inline double Number(const Napi::CallbackInfo& info, std::size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) ThrowTypeError(info.Env(), Expected("finite number", name, v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) ThrowRangeError(info.Env(), Expected("finite number", name, v));
  return d;
}

inline bool Bool(const Napi::CallbackInfo& info, std::size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsBoolean()) ThrowTypeError(info.Env(), Expected("boolean", name, v));
  return v.As<Napi::Boolean>().Value();
}

// Multiplies sizes, throwing if the product leaves the accepted range.
inline std::size_t Product(Napi::Env env, std::size_t a, std::size_t b, const char* what) {
  if (a != 0 && b > static_cast<std::size_t>(kMaxSize * 16) / a)
    ThrowRangeError(env, std::string("Size of \"") + what + "\" is too large");
  return a * b;
}

// A Float32Array with exactly `length` elements. A detached buffer reports
// length 0 in N-API, so it fails the length check unless length is 0.
inline float* F32(const Napi::CallbackInfo& info, std::size_t i, const char* name, std::size_t length) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    ThrowTypeError(info.Env(), Expected("Float32Array", name, v));
  Napi::Float32Array a = v.As<Napi::Float32Array>();
  if (a.ElementLength() != length)
    ThrowRangeError(info.Env(), Expected("Float32Array of length " + std::to_string(length), name, v), "ERR_SHAPE");
  return length == 0 ? nullptr : a.Data();
}

// Like F32, but null/undefined give nullptr (an optional output or input).
inline float* OptF32(const Napi::CallbackInfo& info, std::size_t i, const char* name, std::size_t length) {
  Napi::Value v = info[i];
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    ThrowTypeError(info.Env(), Expected("Float32Array or null", name, v));
  return F32(info, i, name, length);
}

// A Uint32Array with exactly `length` elements (masks, orderings, permutations).
inline uint32_t* U32(const Napi::CallbackInfo& info, std::size_t i, const char* name, std::size_t length) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
    ThrowTypeError(info.Env(), Expected("Uint32Array", name, v));
  Napi::Uint32Array a = v.As<Napi::Uint32Array>();
  if (a.ElementLength() != length)
    ThrowRangeError(info.Env(), Expected("Uint32Array of length " + std::to_string(length), name, v), "ERR_SHAPE");
  return length == 0 ? nullptr : a.Data();
}

// Reads (batch, dim) from arguments `at` and `at + 1` of a row-wise kernel;
// returns batch * dim, the length of its [batch, dim] arrays.
inline std::size_t RowShape(const Napi::CallbackInfo& info, std::size_t at, std::size_t* batch, std::size_t* dim) {
  *batch = Size(info, at, "batch");
  *dim = Size(info, at + 1, "dim");
  return Product(info.Env(), *batch, *dim, "batch * dim");
}

// Checks the call has at least `n` arguments.
inline void Arity(const Napi::CallbackInfo& info, std::size_t n, const char* fn) {
  if (info.Length() < n)
    ThrowTypeError(info.Env(), std::string(fn) + " expects " + std::to_string(n) + " arguments but received " +
                                   std::to_string(info.Length()));
}

}  // namespace napi
}  // namespace flowvae
