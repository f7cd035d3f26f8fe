// cuda bindings of the activations (native/cuda/elementwise.cu), with the
// checks of the cpu bindings (elementwise_args.h). x and y (dy and dx) may be
// the same array: inputs are uploaded before any output is downloaded.
#include "flowvae/cuda/elementwise.h"

#include "../elementwise_args.h"
#include "call.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

using cuda_call::Call;

Napi::Value Forward(const Napi::CallbackInfo& info) {
  const auto a = elementwise_args::ForwardArgs(info);
  Call call("elementwiseForward");
  const float* d_x = call.In(a.x, a.n);
  float* d_y = call.Out(a.y, a.n);
  cuda::elementwise_forward(a.kind, d_x, d_y, a.n, a.alpha);
  call.Finish();
  return info.Env().Undefined();
}

Napi::Value Backward(const Napi::CallbackInfo& info) {
  const auto a = elementwise_args::BackwardArgs(info);
  Call call("elementwiseBackward");
  const float* d_x = call.In(a.x, a.n);
  const float* d_y = call.In(a.y, a.n);
  const float* d_dy = call.In(a.dy, a.n);
  float* d_dx = call.Out(a.dx, a.n);
  cuda::elementwise_backward(a.kind, d_x, d_y, d_dy, d_dx, a.n, a.alpha);
  call.Finish();
  return info.Env().Undefined();
}

}  // namespace

void RegisterCudaElementwise(Napi::Env env, Napi::Object cuda) {
  cuda_call::Export<Forward>(env, cuda, "elementwiseForward");
  cuda_call::Export<Backward>(env, cuda, "elementwiseBackward");
}

}  // namespace napi
}  // namespace flowvae
