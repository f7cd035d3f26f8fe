// cuda binding of the fused Adam/AdamW step (native/cuda/adam.cu), with the
// checks of native/napi/adam.cc.
#include "flowvae/cuda/adam.h"

#include <cmath>
#include <cstdint>
#include <string>

#include "../args.h"
#include "call.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

using cuda_call::Call;

// A number satisfying `ok`; TypeError if not a number, RangeError otherwise.
template <class Predicate>
double CheckedNumber(const Napi::CallbackInfo& info, std::size_t i, const char* name, const char* what, Predicate ok) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) ThrowTypeError(info.Env(), Expected(what, name, v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (!ok(d)) ThrowRangeError(info.Env(), Expected(what, name, v));
  return d;
}

double PositiveNumber(const Napi::CallbackInfo& info, std::size_t i, const char* name) {
  return CheckedNumber(info, i, name, "positive finite number", [](double d) { return d > 0 && std::isfinite(d); });
}

double NonNegativeNumber(const Napi::CallbackInfo& info, std::size_t i, const char* name) {
  return CheckedNumber(info, i, name, "non-negative finite number",
                       [](double d) { return d >= 0 && std::isfinite(d); });
}

double UnitInterval(const Napi::CallbackInfo& info, std::size_t i, const char* name) {
  return CheckedNumber(info, i, name, "number in [0, 1)", [](double d) { return d >= 0 && d < 1; });
}

// Views sharing memory are refused as on the cpu (the staged copies would
// hide the overlap, but the contract is the same on every backend).
void CheckDisjoint(const Napi::CallbackInfo& info, const float* a, const char* a_name, const float* b, std::size_t ib,
                   const char* b_name, std::size_t n) {
  const auto start_a = reinterpret_cast<std::uintptr_t>(a), start_b = reinterpret_cast<std::uintptr_t>(b);
  const std::uintptr_t bytes = n * sizeof(float);
  if (n > 0 && start_a < start_b + bytes && start_b < start_a + bytes) {
    ThrowRangeError(info.Env(),
                    Expected(std::string("array not overlapping \"") + a_name + "\"", b_name, info[ib]));
  }
}

// adamStep(params, grads, m, v, n, lr, beta1, beta2, eps, weightDecay, decoupled, step, maxGradNorm)
Napi::Value Step(const Napi::CallbackInfo& info) {
  Arity(info, 13, "adamStep");
  const std::size_t n = Size(info, 4, "n");
  float* params = F32(info, 0, "params", n);
  const float* grads = F32(info, 1, "grads", n);
  float* m = F32(info, 2, "m", n);
  float* v = F32(info, 3, "v", n);
  CheckDisjoint(info, params, "params", grads, 1, "grads", n);
  CheckDisjoint(info, params, "params", m, 2, "m", n);
  CheckDisjoint(info, grads, "grads", m, 2, "m", n);
  CheckDisjoint(info, params, "params", v, 3, "v", n);
  CheckDisjoint(info, grads, "grads", v, 3, "v", n);
  CheckDisjoint(info, m, "m", v, 3, "v", n);
  AdamOptions o;
  o.lr = PositiveNumber(info, 5, "lr");
  o.beta1 = UnitInterval(info, 6, "beta1");
  o.beta2 = UnitInterval(info, 7, "beta2");
  o.eps = PositiveNumber(info, 8, "eps");
  o.weight_decay = NonNegativeNumber(info, 9, "weightDecay");
  o.decoupled = Bool(info, 10, "decoupled");
  o.step = PositiveSize(info, 11, "step");
  o.max_grad_norm = NonNegativeNumber(info, 12, "maxGradNorm");
  Call call("adamStep");
  float* d_params = call.InOut(params, n);
  const float* d_grads = call.In(grads, n);
  float* d_m = call.InOut(m, n);
  float* d_v = call.InOut(v, n);
  cuda::DeviceBuffer<double> d_norm(1);
  cuda::adam_step(d_params, d_grads, d_m, d_v, n, o, d_norm.get());
  double norm = 0;
  cuda::download(&norm, d_norm.get(), sizeof norm);
  call.Finish();
  return Napi::Number::New(info.Env(), norm);
}

}  // namespace

void RegisterCudaAdam(Napi::Env env, Napi::Object cuda) { cuda_call::Export<Step>(env, cuda, "adamStep"); }

}  // namespace napi
}  // namespace flowvae
