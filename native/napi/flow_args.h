// Argument checks for the flow-stack bindings (planar, radial; the Buffer
// helpers also serve coupling, spline, glow and dense): every input and output
// is a Float32Array of the exact length the sizes imply, and no output may
// share memory with another argument (a kernel reading an input it is
// overwriting would silently return wrong values).
#pragma once
#include <napi.h>

#include <cstdint>
#include <initializer_list>

#include "args.h"
#include "flowvae/planar.h"
#include "flowvae/radial.h"

namespace flowvae {
namespace napi {

struct Buffer {
  float* data;  // null for an absent optional output or an empty array
  std::size_t length;
  const char* name;
};

inline Buffer In(const Napi::CallbackInfo& info, std::size_t i, const char* name, std::size_t length) {
  return Buffer{F32(info, i, name, length), length, name};
}

inline bool Overlaps(const Buffer& a, const Buffer& b) {
  if (!a.data || !b.data) return false;
  const auto a0 = reinterpret_cast<std::uintptr_t>(a.data), b0 = reinterpret_cast<std::uintptr_t>(b.data);
  return a0 < b0 + b.length * sizeof(float) && b0 < a0 + a.length * sizeof(float);
}

inline void CheckDisjoint(const Napi::CallbackInfo& info, std::size_t i, const Buffer& out,
                          std::initializer_list<Buffer> others) {
  for (const Buffer& other : others) {
    if (Overlaps(out, other)) {
      ThrowRangeError(info.Env(),
                      Expected(std::string("Float32Array not overlapping \"") + other.name + "\"", out.name, info[i]));
    }
  }
}

inline Buffer Out(const Napi::CallbackInfo& info, std::size_t i, const char* name, std::size_t length,
                  std::initializer_list<Buffer> others) {
  const Buffer out{F32(info, i, name, length), length, name};
  CheckDisjoint(info, i, out, others);
  return out;
}

inline Buffer OptOut(const Napi::CallbackInfo& info, std::size_t i, const char* name, std::size_t length,
                     std::initializer_list<Buffer> others) {
  const Buffer out{OptF32(info, i, name, length), length, name};
  CheckDisjoint(info, i, out, others);
  return out;
}

// ---- flow-stack calls (planar, radial) ------------------------------------------
//
// Both families bind the same three calls:
//   <f>Forward(x, params, y, logDet, layerLogDet | null, stash, batch, dim, layers, amortized)
//   <f>Backward(saved, stash, params, dy, dLogDet, dx, dParams, batch, dim, layers, amortized)
//   <f>Inverse(y, params, x, logDet, batch, dim, layers, amortized)
// each returning the number of non-finite (or unconverged) rows. `saved` is
// the forward output y (planar) or input x (radial). The *Args functions read
// and check one call's arguments; the cpu bindings (StackForward, … below) and
// the cuda ones (napi/cuda/flow_stack.h) both start with them.

struct StackSizes {
  std::size_t batch, dim, layers, params, values, per_layer;
  bool amortized;
};

inline StackSizes ReadStackSizes(const Napi::CallbackInfo& info, std::size_t first,
                                 std::size_t (*param_size)(std::size_t)) {
  Napi::Env env = info.Env();
  StackSizes s{};
  s.batch = Size(info, first, "batch");
  s.dim = PositiveSize(info, first + 1, "dim");
  s.layers = PositiveSize(info, first + 2, "layers");
  s.amortized = Bool(info, first + 3, "amortized");
  const std::size_t row_params = Product(env, s.layers, param_size(s.dim), "params");
  s.params = s.amortized ? Product(env, s.batch, row_params, "params") : row_params;
  s.values = Product(env, s.batch, s.dim, "x");
  s.per_layer = Product(env, s.batch, s.layers, "stash");
  return s;
}

struct StackForwardCall {
  StackSizes sizes;
  Buffer x, params, y, log_det, layer_log_det, stash;  // layer_log_det.data is null when not wanted
};

inline StackForwardCall StackForwardArgs(const Napi::CallbackInfo& info, const char* fn,
                                         std::size_t (*param_size)(std::size_t)) {
  Arity(info, 10, fn);
  const StackSizes s = ReadStackSizes(info, 6, param_size);
  const Buffer x = In(info, 0, "x", s.values);
  const Buffer params = In(info, 1, "params", s.params);
  const Buffer y = Out(info, 2, "y", s.values, {x, params});
  const Buffer log_det = Out(info, 3, "logDet", s.batch, {x, params, y});
  const Buffer layer_log_det = OptOut(info, 4, "layerLogDet", s.per_layer, {x, params, y, log_det});
  const Buffer stash = Out(info, 5, "stash", s.per_layer, {x, params, y, log_det, layer_log_det});
  return StackForwardCall{s, x, params, y, log_det, layer_log_det, stash};
}

struct StackBackwardCall {
  StackSizes sizes;
  Buffer saved, stash, params, dy, d_log_det, dx, d_params;
};

inline StackBackwardCall StackBackwardArgs(const Napi::CallbackInfo& info, const char* fn, const char* saved_name,
                                           std::size_t (*param_size)(std::size_t)) {
  Arity(info, 11, fn);
  const StackSizes s = ReadStackSizes(info, 7, param_size);
  const Buffer saved = In(info, 0, saved_name, s.values);
  const Buffer stash = In(info, 1, "stash", s.per_layer);
  const Buffer params = In(info, 2, "params", s.params);
  const Buffer dy = In(info, 3, "dy", s.values);
  const Buffer d_log_det = In(info, 4, "dLogDet", s.batch);
  const Buffer dx = Out(info, 5, "dx", s.values, {saved, stash, params, dy, d_log_det});
  const Buffer d_params = Out(info, 6, "dParams", s.params, {saved, stash, params, dy, d_log_det, dx});
  return StackBackwardCall{s, saved, stash, params, dy, d_log_det, dx, d_params};
}

struct StackInverseCall {
  StackSizes sizes;
  Buffer y, params, x, log_det;
};

inline StackInverseCall StackInverseArgs(const Napi::CallbackInfo& info, const char* fn,
                                         std::size_t (*param_size)(std::size_t)) {
  Arity(info, 8, fn);
  const StackSizes s = ReadStackSizes(info, 4, param_size);
  const Buffer y = In(info, 0, "y", s.values);
  const Buffer params = In(info, 1, "params", s.params);
  const Buffer x = Out(info, 2, "x", s.values, {y, params});
  const Buffer log_det = Out(info, 3, "logDet", s.batch, {y, params, x});
  return StackInverseCall{s, y, params, x, log_det};
}

using StackForwardKernel = std::size_t (*)(const float*, const float*, bool, float*, float*, float*, float*,
                                           std::size_t, std::size_t, std::size_t);
using StackBackwardKernel = std::size_t (*)(const float*, const float*, const float*, bool, const float*, const float*,
                                            float*, float*, std::size_t, std::size_t, std::size_t);
using StackInverseKernel = std::size_t (*)(const float*, const float*, bool, float*, float*, std::size_t, std::size_t,
                                           std::size_t);

// A flow-stack family as the cpu and cuda bindings see it: its bound names,
// the name of backward's first argument (what the family rebuilds the
// layers from) and its parameters per layer.
struct StackFamily {
  const char* forward;
  const char* backward;
  const char* inverse;
  const char* saved;
  std::size_t (*param_size)(std::size_t dim);
};

inline constexpr StackFamily kPlanarStack{"planarForward", "planarBackward", "planarInverse", "y", planar_param_size};
inline constexpr StackFamily kRadialStack{"radialForward", "radialBackward", "radialInverse", "x", radial_param_size};

template <StackForwardKernel kKernel, std::size_t (*kParamSize)(std::size_t)>
Napi::Value StackForward(const Napi::CallbackInfo& info, const char* fn) {
  const StackForwardCall c = StackForwardArgs(info, fn, kParamSize);
  const StackSizes& s = c.sizes;
  const std::size_t bad = kKernel(c.x.data, c.params.data, s.amortized, c.y.data, c.log_det.data, c.layer_log_det.data,
                                  c.stash.data, s.batch, s.dim, s.layers);
  return Napi::Number::New(info.Env(), static_cast<double>(bad));
}

template <StackBackwardKernel kKernel, std::size_t (*kParamSize)(std::size_t)>
Napi::Value StackBackward(const Napi::CallbackInfo& info, const char* fn, const char* saved_name) {
  const StackBackwardCall c = StackBackwardArgs(info, fn, saved_name, kParamSize);
  const StackSizes& s = c.sizes;
  const std::size_t bad = kKernel(c.saved.data, c.stash.data, c.params.data, s.amortized, c.dy.data, c.d_log_det.data,
                                  c.dx.data, c.d_params.data, s.batch, s.dim, s.layers);
  return Napi::Number::New(info.Env(), static_cast<double>(bad));
}

template <StackInverseKernel kKernel, std::size_t (*kParamSize)(std::size_t)>
Napi::Value StackInverse(const Napi::CallbackInfo& info, const char* fn) {
  const StackInverseCall c = StackInverseArgs(info, fn, kParamSize);
  const StackSizes& s = c.sizes;
  const std::size_t bad =
      kKernel(c.y.data, c.params.data, s.amortized, c.x.data, c.log_det.data, s.batch, s.dim, s.layers);
  return Napi::Number::New(info.Env(), static_cast<double>(bad));
}

// A family's bindings, with its names and sizes bound in.
template <const StackFamily& kFamily, StackForwardKernel kKernel>
Napi::Value BoundStackForward(const Napi::CallbackInfo& info) {
  return StackForward<kKernel, kFamily.param_size>(info, kFamily.forward);
}

template <const StackFamily& kFamily, StackBackwardKernel kKernel>
Napi::Value BoundStackBackward(const Napi::CallbackInfo& info) {
  return StackBackward<kKernel, kFamily.param_size>(info, kFamily.backward, kFamily.saved);
}

template <const StackFamily& kFamily, StackInverseKernel kKernel>
Napi::Value BoundStackInverse(const Napi::CallbackInfo& info) {
  return StackInverse<kKernel, kFamily.param_size>(info, kFamily.inverse);
}

// Exports a family's forward, backward and inverse bindings.
template <const StackFamily& kFamily, StackForwardKernel kForward, StackBackwardKernel kBackward,
          StackInverseKernel kInverse>
void RegisterStack(Napi::Env env, Napi::Object exports) {
  exports.Set(kFamily.forward, Napi::Function::New(env, BoundStackForward<kFamily, kForward>, kFamily.forward));
  exports.Set(kFamily.backward, Napi::Function::New(env, BoundStackBackward<kFamily, kBackward>, kFamily.backward));
  exports.Set(kFamily.inverse, Napi::Function::New(env, BoundStackInverse<kFamily, kInverse>, kFamily.inverse));
}

}  // namespace napi
}  // namespace flowvae
