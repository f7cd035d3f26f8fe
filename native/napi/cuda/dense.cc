// cuda bindings of the dense kernels (native/cuda/dense.cu), with the checks
// of the cpu bindings (dense_args.h).
#include "flowvae/cuda/dense.h"

#include "../dense_args.h"
#include "call.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

using cuda_call::Call;

Napi::Value DenseGemm(const Napi::CallbackInfo& info) {
  const auto g = dense_args::GemmArgs(info);
  Call call("denseGemm");
  const float* d_a = call.In(g.a.data, g.a.length);
  const float* d_b = call.In(g.b.data, g.b.length);
  // C is read when beta != 0.
  float* d_c = g.beta != 0.0f ? call.InOut(g.c.data, g.c.length) : call.Out(g.c.data, g.c.length);
  cuda::sgemm(g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, d_a, d_b, g.beta, d_c);
  call.Finish();
  return info.Env().Undefined();
}

Napi::Value DenseForward(const Napi::CallbackInfo& info) {
  const auto f = dense_args::ForwardArgs(info);
  Call call("denseForward");
  const float* d_x = call.In(f.x.data, f.x.length);
  const float* d_w = call.In(f.weight.data, f.weight.length);
  const float* d_bias = call.In(f.bias.data, f.bias.length);
  float* d_y = call.Out(f.y.data, f.y.length);
  cuda::dense_forward(d_x, d_w, d_bias, d_y, f.batch, f.in_dim, f.out_dim);
  call.Finish();
  return info.Env().Undefined();
}

Napi::Value DenseBackward(const Napi::CallbackInfo& info) {
  const auto b = dense_args::BackwardArgs(info);
  Call call("denseBackward");
  const float* d_x = call.In(b.x.data, b.x.length);
  const float* d_w = call.In(b.weight.data, b.weight.length);
  const float* d_dy = call.In(b.dy.data, b.dy.length);
  float* d_dx = call.Out(b.dx.data, b.dx.length);
  // Gradients accumulate into what the caller holds, or overwrite it.
  auto gradient = [&](const Buffer& g) {
    return b.accumulate ? call.InOut(g.data, g.length) : call.Out(g.data, g.length);
  };
  float* d_dw = gradient(b.d_weight);
  float* d_db = gradient(b.d_bias);
  cuda::dense_backward(d_x, d_w, d_dy, d_dx, d_dw, d_db, b.batch, b.in_dim, b.out_dim, b.accumulate);
  call.Finish();
  return info.Env().Undefined();
}

}  // namespace

void RegisterCudaDense(Napi::Env env, Napi::Object cuda) {
  cuda_call::Export<DenseGemm>(env, cuda, "denseGemm");
  cuda_call::Export<DenseForward>(env, cuda, "denseForward");
  cuda_call::Export<DenseBackward>(env, cuda, "denseBackward");
}

}  // namespace napi
}  // namespace flowvae
