// cuda binding of the fused Adam/AdamW step (native/cuda/adam.cu), with the
// checks of the cpu binding (adam_args.h). Views sharing memory are refused
// as on the cpu: the staged copies would hide the overlap, but the contract
// is the same on every backend.
#include "flowvae/cuda/adam.h"

#include "../adam_args.h"
#include "../args.h"
#include "call.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

using cuda_call::Call;

using namespace adam_args;

Napi::Value Step(const Napi::CallbackInfo& info) {
  const FlatStep s = FlatStepArgs(info);
  const std::size_t n = s.n;
  const AdamOptions& o = s.options;
  Call call("adamStep");
  float* d_params = call.InOut(s.params, n);
  const float* d_grads = call.In(s.grads, n);
  float* d_m = call.InOut(s.m, n);
  float* d_v = call.InOut(s.v, n);
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
