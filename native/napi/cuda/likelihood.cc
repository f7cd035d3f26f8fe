// cuda bindings of the observation log-likelihoods (native/cuda/likelihood.cu),
// with the checks of the cpu bindings (likelihood_args.h).
#include "flowvae/cuda/likelihood.h"

#include "../likelihood_args.h"
#include "call.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

using cuda_call::Call;

Napi::Value Bernoulli(const Napi::CallbackInfo& info) {
  const auto a = likelihood_args::BernoulliArgs(info);
  Call call("likelihoodBernoulli");
  const float* d_x = call.In(a.x, a.n);
  const float* d_logits = call.In(a.logits, a.n);
  float* d_out = call.Out(a.out, a.batch);
  cuda::likelihood_bernoulli(d_x, d_logits, d_out, a.batch, a.dim);
  call.Finish();
  return info.Env().Undefined();
}

Napi::Value BernoulliBackward(const Napi::CallbackInfo& info) {
  const auto a = likelihood_args::BernoulliBackwardArgs(info);
  Call call("likelihoodBernoulliBackward");
  const float* d_x = call.In(a.x, a.n);
  const float* d_logits = call.In(a.logits, a.n);
  const float* d_dout = call.In(a.d_out, a.batch);
  float* d_dlogits = call.Out(a.d_logits, a.n);
  cuda::likelihood_bernoulli_backward(d_x, d_logits, d_dout, d_dlogits, a.batch, a.dim);
  call.Finish();
  return info.Env().Undefined();
}

Napi::Value Gaussian(const Napi::CallbackInfo& info) {
  const auto a = likelihood_args::GaussianArgs(info);
  Call call("likelihoodGaussian");
  const float* d_x = call.In(a.x, a.n);
  const float* d_mean = call.In(a.mean, a.n);
  const float* d_logvar = call.In(a.logvar, a.dim);
  float* d_out = call.Out(a.out, a.batch);
  cuda::likelihood_gaussian(d_x, d_mean, d_logvar, d_out, a.batch, a.dim);
  call.Finish();
  return info.Env().Undefined();
}

Napi::Value GaussianBackward(const Napi::CallbackInfo& info) {
  const auto a = likelihood_args::GaussianBackwardArgs(info);
  Call call("likelihoodGaussianBackward");
  const float* d_x = call.In(a.x, a.n);
  const float* d_mean = call.In(a.mean, a.n);
  const float* d_logvar = call.In(a.logvar, a.dim);
  const float* d_dout = call.In(a.d_out, a.batch);
  float* d_dmean = call.Out(a.d_mean, a.n);
  float* d_dlogvar = call.InOut(a.d_logvar, a.dim);  // accumulated into
  cuda::likelihood_gaussian_backward(d_x, d_mean, d_logvar, d_dout, d_dmean, d_dlogvar, a.batch, a.dim);
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
