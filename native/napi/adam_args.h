// Argument checks of the Adam bindings, shared by the cpu (napi/adam.cc) and
// cuda (napi/cuda/adam.cc) steps so both refuse the same things with the same
// messages: the four flat buffers, their overlaps, and the options.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "args.h"
#include "flowvae/adam.h"

namespace flowvae {
namespace napi {
namespace adam_args {

// A number satisfying `ok`; TypeError if not a number, RangeError otherwise.
template <class Predicate>
double CheckedNumber(const Napi::CallbackInfo& info, std::size_t i, const char* name, const char* what, Predicate ok) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) ThrowTypeError(info.Env(), Expected(what, name, v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!ok(d)) ThrowRangeError(info.Env(), Expected(what, name, v));
  return d;
}

inline double PositiveNumber(const Napi::CallbackInfo& info, std::size_t i, const char* name) {
  return CheckedNumber(info, i, name, "positive finite number", [](double d) { return d > 0 && std::isfinite(d); });
}

inline double NonNegativeNumber(const Napi::CallbackInfo& info, std::size_t i, const char* name) {
  return CheckedNumber(info, i, name, "non-negative finite number",
                       [](double d) { return d >= 0 && std::isfinite(d); });
}

inline double UnitInterval(const Napi::CallbackInfo& info, std::size_t i, const char* name) {
  return CheckedNumber(info, i, name, "number in [0, 1)", [](double d) { return d >= 0 && d < 1; });
}

inline bool Overlap(const float* a, std::size_t a_len, const float* b, std::size_t b_len) {
  const auto start_a = reinterpret_cast<std::uintptr_t>(a), start_b = reinterpret_cast<std::uintptr_t>(b);
  return a_len > 0 && b_len > 0 && start_a < start_b + b_len * sizeof(float) &&
         start_b < start_a + a_len * sizeof(float);
}

// The step updates its buffers in place while reading grads: views that
// share memory would give wrong results, so they are refused. `b` (the JS
// value `b_value`) is the one named in the error.
inline void CheckDisjoint(const Napi::CallbackInfo& info, const float* a, std::size_t a_len, const std::string& a_name,
                          const float* b, std::size_t b_len, const std::string& b_name, const Napi::Value& b_value) {
  if (Overlap(a, a_len, b, b_len)) {
    ThrowRangeError(info.Env(), Expected("array not overlapping \"" + a_name + "\"", b_name.c_str(), b_value));
  }
}

// Options from arguments [first, first + 8): lr, beta1, beta2, eps,
// weightDecay, decoupled, step, maxGradNorm.
inline AdamOptions OptionsAt(const Napi::CallbackInfo& info, std::size_t first) {
  AdamOptions o;
  o.lr = PositiveNumber(info, first, "lr");
  o.beta1 = UnitInterval(info, first + 1, "beta1");
  o.beta2 = UnitInterval(info, first + 2, "beta2");
  o.eps = PositiveNumber(info, first + 3, "eps");
  o.weight_decay = NonNegativeNumber(info, first + 4, "weightDecay");
  o.decoupled = Bool(info, first + 5, "decoupled");
  o.step = PositiveSize(info, first + 6, "step");
  o.max_grad_norm = NonNegativeNumber(info, first + 7, "maxGradNorm");
  return o;
}

struct FlatStep {
  float* params;
  const float* grads;
  float* m;
  float* v;
  std::size_t n;
  AdamOptions options;
};

// adamStep(params, grads, m, v, n, lr, beta1, beta2, eps, weightDecay, decoupled, step, maxGradNorm)
inline FlatStep FlatStepArgs(const Napi::CallbackInfo& info) {
  Arity(info, 13, "adamStep");
  FlatStep s{};
  s.n = Size(info, 4, "n");
  s.params = F32(info, 0, "params", s.n);
  s.grads = F32(info, 1, "grads", s.n);
  s.m = F32(info, 2, "m", s.n);
  s.v = F32(info, 3, "v", s.n);
  const std::size_t n = s.n;
  CheckDisjoint(info, s.params, n, "params", s.grads, n, "grads", info[1]);
  CheckDisjoint(info, s.params, n, "params", s.m, n, "m", info[2]);
  CheckDisjoint(info, s.grads, n, "grads", s.m, n, "m", info[2]);
  CheckDisjoint(info, s.params, n, "params", s.v, n, "v", info[3]);
  CheckDisjoint(info, s.grads, n, "grads", s.v, n, "v", info[3]);
  CheckDisjoint(info, s.m, n, "m", s.v, n, "v", info[3]);
  s.options = OptionsAt(info, 5);
  return s;
}

}  // namespace adam_args
}  // namespace napi
}  // namespace flowvae
