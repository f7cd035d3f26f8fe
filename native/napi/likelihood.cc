// Bindings of the observation log-likelihoods (native/cpu/likelihood.cc);
// argument checks in likelihood_args.h.
#include "flowvae/likelihood.h"

#include "likelihood_args.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

Napi::Value Bernoulli(const Napi::CallbackInfo& info) {
  const auto a = likelihood_args::BernoulliArgs(info);
  likelihood_bernoulli(a.x, a.logits, a.out, a.batch, a.dim);
  return info.Env().Undefined();
}

Napi::Value BernoulliBackward(const Napi::CallbackInfo& info) {
  const auto a = likelihood_args::BernoulliBackwardArgs(info);
  likelihood_bernoulli_backward(a.x, a.logits, a.d_out, a.d_logits, a.batch, a.dim);
  return info.Env().Undefined();
}

Napi::Value Gaussian(const Napi::CallbackInfo& info) {
  const auto a = likelihood_args::GaussianArgs(info);
  likelihood_gaussian(a.x, a.mean, a.logvar, a.out, a.batch, a.dim);
  return info.Env().Undefined();
}

Napi::Value GaussianBackward(const Napi::CallbackInfo& info) {
  const auto a = likelihood_args::GaussianBackwardArgs(info);
  likelihood_gaussian_backward(a.x, a.mean, a.logvar, a.d_out, a.d_mean, a.d_logvar, a.batch, a.dim);
  return info.Env().Undefined();
}

}  // namespace

void RegisterLikelihood(Napi::Env env, Napi::Object exports) {
  exports.Set("likelihoodBernoulli", Napi::Function::New(env, Bernoulli, "likelihoodBernoulli"));
  exports.Set("likelihoodBernoulliBackward",
              Napi::Function::New(env, BernoulliBackward, "likelihoodBernoulliBackward"));
  exports.Set("likelihoodGaussian", Napi::Function::New(env, Gaussian, "likelihoodGaussian"));
  exports.Set("likelihoodGaussianBackward", Napi::Function::New(env, GaussianBackward, "likelihoodGaussianBackward"));
}

}  // namespace napi
}  // namespace flowvae
