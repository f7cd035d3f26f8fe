// Bindings of the observation log-likelihoods (native/cpu/likelihood.cc).
#include "flowvae/likelihood.h"

#include "args.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

Napi::Value Bernoulli(const Napi::CallbackInfo& info) {
  Arity(info, 5, "likelihoodBernoulli");
  std::size_t batch, dim;
  const std::size_t n = RowShape(info, 3, &batch, &dim);
  float* x = F32(info, 0, "x", n);
  float* logits = F32(info, 1, "logits", n);
  float* out = F32(info, 2, "out", batch);
  likelihood_bernoulli(x, logits, out, batch, dim);
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
  likelihood_bernoulli_backward(x, logits, dOut, dLogits, batch, dim);
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
  likelihood_gaussian(x, mean, logvar, out, batch, dim);
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
  likelihood_gaussian_backward(x, mean, logvar, dOut, dMean, dLogvar, batch, dim);
  return info.Env().Undefined();
}

}  // namespace

void RegisterLikelihood(Napi::Env env, Napi::Object exports) {
  exports.Set("likelihoodBernoulli", Napi::Function::New(env, Bernoulli, "likelihoodBernoulli"));
  exports.Set("likelihoodBernoulliBackward", Napi::Function::New(env, BernoulliBackward, "likelihoodBernoulliBackward"));
  exports.Set("likelihoodGaussian", Napi::Function::New(env, Gaussian, "likelihoodGaussian"));
  exports.Set("likelihoodGaussianBackward", Napi::Function::New(env, GaussianBackward, "likelihoodGaussianBackward"));
}

}  // namespace napi
}  // namespace flowvae
