// cuda bindings of the observation log-likelihoods (native/cuda/likelihood.cu),
// with the checks of native/napi/likelihood.cc.
#include "flowvae/cuda/likelihood.h"

#include "../args.h"
#include "call.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

using cuda_call::Call;

Napi::Value Bernoulli(const Napi::CallbackInfo& info) {
  Arity(info, 5, "likelihoodBernoulli");
  std::size_t batch, dim;
  const std::size_t n = RowShape(info, 3, &batch, &dim);
  float* x = F32(info, 0, "x", n);
  float* logits = F32(info, 1, "logits", n);
  float* out = F32(info, 2, "out", batch);
  Call call("likelihoodBernoulli");
  const float* d_x = call.In(x, n);
  const float* d_logits = call.In(logits, n);
  float* d_out = call.Out(out, batch);
  cuda::likelihood_bernoulli(d_x, d_logits, d_out, batch, dim);
  call.Finish();
  return info.Env().Undefined();
}

Napi::Value BernoulliBackward(const Napi::CallbackInfo& info) {
  Arity(info, 6, "likelihoodBernoulliBackward");
  std::size_t batch, dim;
  const std::size_t n = RowShape(info, 4, &batch, &dim);
  float* x = F32(info, 0, "x", n);
  float* logits = F32(info, 1, "logits", n);
  float* dOut = F32(info, 2, "dOut", batch);
  float* dLogits = F32(info, 3, "dLogits", n);
  Call call("likelihoodBernoulliBackward");
  const float* d_x = call.In(x, n);
  const float* d_logits = call.In(logits, n);
  const float* d_dout = call.In(dOut, batch);
  float* d_dlogits = call.Out(dLogits, n);
  cuda::likelihood_bernoulli_backward(d_x, d_logits, d_dout, d_dlogits, batch, dim);
  call.Finish();
  return info.Env().Undefined();
}

Napi::Value Gaussian(const Napi::CallbackInfo& info) {
  Arity(info, 6, "likelihoodGaussian");
  std::size_t batch, dim;
  const std::size_t n = RowShape(info, 4, &batch, &dim);
  float* x = F32(info, 0, "x", n);
  float* mean = F32(info, 1, "mean", n);
  float* logvar = F32(info, 2, "logvar", dim);
  float* out = F32(info, 3, "out", batch);
  Call call("likelihoodGaussian");
  const float* d_x = call.In(x, n);
  const float* d_mean = call.In(mean, n);
  const float* d_logvar = call.In(logvar, dim);
  float* d_out = call.Out(out, batch);
  cuda::likelihood_gaussian(d_x, d_mean, d_logvar, d_out, batch, dim);
  call.Finish();
  return info.Env().Undefined();
}

Napi::Value GaussianBackward(const Napi::CallbackInfo& info) {
  Arity(info, 8, "likelihoodGaussianBackward");
  std::size_t batch, dim;
  const std::size_t n = RowShape(info, 6, &batch, &dim);
  float* x = F32(info, 0, "x", n);
  float* mean = F32(info, 1, "mean", n);
  float* logvar = F32(info, 2, "logvar", dim);
  float* dOut = F32(info, 3, "dOut", batch);
  float* dMean = F32(info, 4, "dMean", n);
  float* dLogvar = OptF32(info, 5, "dLogvar", dim);
  Call call("likelihoodGaussianBackward");
  const float* d_x = call.In(x, n);
  const float* d_mean = call.In(mean, n);
  const float* d_logvar = call.In(logvar, dim);
  const float* d_dout = call.In(dOut, batch);
  float* d_dmean = call.Out(dMean, n);
  float* d_dlogvar = call.InOut(dLogvar, dim);  // accumulated into
  cuda::likelihood_gaussian_backward(d_x, d_mean, d_logvar, d_dout, d_dmean, d_dlogvar, batch, dim);
  call.Finish();
  return info.Env().Undefined();
}

}  // namespace

void RegisterCudaLikelihood(Napi::Env env, Napi::Object cuda) {
  cuda_call::Export<Bernoulli>(env, cuda, "likelihoodBernoulli");
  cuda_call::Export<BernoulliBackward>(env, cuda, "likelihoodBernoulliBackward");
  cuda_call::Export<Gaussian>(env, cuda, "likelihoodGaussian");
  cuda_call::Export<GaussianBackward>(env, cuda, "likelihoodGaussianBackward");
}

}  // namespace napi
}  // namespace flowvae
