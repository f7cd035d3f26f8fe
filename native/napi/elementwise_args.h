// Argument checks of the activation bindings, shared by the cpu
// (napi/elementwise.cc) and cuda (napi/cuda/elementwise.cc) bindings so both
// refuse the same things with the same messages. x and y (dy and dx) may be
// the same array: the kernels work element by element.
#pragma once
#include <napi.h>

#include <cmath>
#include <string>

#include "args.h"
#include "flowvae/elementwise.h"

namespace flowvae {
namespace napi {
namespace elementwise_args {

// The activation's index in ACTIVATIONS (src/backend/kernels/elementwise.ts).
inline Activation ActivationArg(const Napi::CallbackInfo& info, std::size_t i, const char* name) {
  static const std::string what = "integer in [0, " + std::to_string(kNumActivations - 1) + "]";
  Napi::Value v = info[i];
  if (!v.IsNumber()) ThrowTypeError(info.Env(), Expected(what, name, v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= kNumActivations - 1) || d != std::floor(d)) ThrowRangeError(info.Env(), Expected(what, name, v));
  return static_cast<Activation>(static_cast<int>(d));
}

struct Forward {
  Activation kind;
  const float* x;
  float* y;
  std::size_t n;
  float alpha;
};

// elementwiseForward(kind, x, y, n, alpha)
inline Forward ForwardArgs(const Napi::CallbackInfo& info) {
  Arity(info, 5, "elementwiseForward");
  Forward a{};
  a.kind = ActivationArg(info, 0, "kind");
  a.n = Size(info, 3, "n");
  a.x = F32(info, 1, "x", a.n);
  a.y = F32(info, 2, "y", a.n);
  a.alpha = static_cast<float>(Number(info, 4, "alpha"));
  return a;
}

struct Backward {
  Activation kind;
  const float* x;
  const float* y;
  const float* dy;
  float* dx;
  std::size_t n;
  float alpha;
};

// elementwiseBackward(kind, x, y, dy, dx, n, alpha)
inline Backward BackwardArgs(const Napi::CallbackInfo& info) {
  Arity(info, 7, "elementwiseBackward");
  Backward a{};
  a.kind = ActivationArg(info, 0, "kind");
  a.n = Size(info, 5, "n");
  a.x = F32(info, 1, "x", a.n);
  a.y = F32(info, 2, "y", a.n);
  a.dy = F32(info, 3, "dy", a.n);
  a.dx = F32(info, 4, "dx", a.n);
  a.alpha = static_cast<float>(Number(info, 6, "alpha"));
  return a;
}

}  // namespace elementwise_args
}  // namespace napi
}  // namespace flowvae
