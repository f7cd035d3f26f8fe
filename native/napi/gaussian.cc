// Bindings of the diagonal Gaussian kernels (native/cpu/gaussian.cc).
#include "flowvae/gaussian.h"

#include "args.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

Napi::Value SampleDiag(const Napi::CallbackInfo& info) {
  Arity(info, 7, "gaussianSampleDiag");
  std::size_t batch, dim;
  const std::size_t n = RowShape(info, 5, &batch, &dim);
  float* mu = F32(info, 0, "mu", n);
  float* logvar = F32(info, 1, "logvar", n);
  float* eps = F32(info, 2, "eps", n);
  float* z = F32(info, 3, "z", n);
  float* logq = F32(info, 4, "logq", batch);
  gaussian_sample_diag(mu, logvar, eps, z, logq, batch, dim);
  return info.Env().Undefined();
}

Napi::Value SampleDiagBackward(const Napi::CallbackInfo& info) {
  Arity(info, 8, "gaussianSampleDiagBackward");
  std::size_t batch, dim;
  const std::size_t n = RowShape(info, 6, &batch, &dim);
  float* logvar = F32(info, 0, "logvar", n);
  float* eps = F32(info, 1, "eps", n);
  float* dz = F32(info, 2, "dz", n);
  float* dLogq = F32(info, 3, "dLogq", batch);
  float* dMu = F32(info, 4, "dMu", n);
  float* dLogvar = F32(info, 5, "dLogvar", n);
  gaussian_sample_diag_backward(logvar, eps, dz, dLogq, dMu, dLogvar, batch, dim);
  return info.Env().Undefined();
}

Napi::Value LogStandard(const Napi::CallbackInfo& info) {
  Arity(info, 4, "gaussianLogStandard");
  std::size_t batch, dim;
  const std::size_t n = RowShape(info, 2, &batch, &dim);
  float* x = F32(info, 0, "x", n);
  float* out = F32(info, 1, "out", batch);
  gaussian_log_standard(x, out, batch, dim);
  return info.Env().Undefined();
}

Napi::Value LogStandardBackward(const Napi::CallbackInfo& info) {
  Arity(info, 5, "gaussianLogStandardBackward");
  std::size_t batch, dim;
  const std::size_t n = RowShape(info, 3, &batch, &dim);
  float* x = F32(info, 0, "x", n);
  float* dOut = F32(info, 1, "dOut", batch);
  float* dx = F32(info, 2, "dx", n);
  gaussian_log_standard_backward(x, dOut, dx, batch, dim);
  return info.Env().Undefined();
}

Napi::Value KlStandard(const Napi::CallbackInfo& info) {
  Arity(info, 5, "gaussianKlStandard");
  std::size_t batch, dim;
  const std::size_t n = RowShape(info, 3, &batch, &dim);
  float* mu = F32(info, 0, "mu", n);
  float* logvar = F32(info, 1, "logvar", n);
  float* out = F32(info, 2, "out", batch);
  gaussian_kl_standard(mu, logvar, out, batch, dim);
  return info.Env().Undefined();
}

Napi::Value KlStandardBackward(const Napi::CallbackInfo& info) {
  Arity(info, 7, "gaussianKlStandardBackward");
  std::size_t batch, dim;
  const std::size_t n = RowShape(info, 5, &batch, &dim);
  float* mu = F32(info, 0, "mu", n);
  float* logvar = F32(info, 1, "logvar", n);
  float* dOut = F32(info, 2, "dOut", batch);
  float* dMu = F32(info, 3, "dMu", n);
  float* dLogvar = F32(info, 4, "dLogvar", n);
  gaussian_kl_standard_backward(mu, logvar, dOut, dMu, dLogvar, batch, dim);
  return info.Env().Undefined();
}

}  // namespace

void RegisterGaussian(Napi::Env env, Napi::Object exports) {
  exports.Set("gaussianSampleDiag", Napi::Function::New(env, SampleDiag, "gaussianSampleDiag"));
  exports.Set("gaussianSampleDiagBackward", Napi::Function::New(env, SampleDiagBackward, "gaussianSampleDiagBackward"));
  exports.Set("gaussianLogStandard", Napi::Function::New(env, LogStandard, "gaussianLogStandard"));
  exports.Set("gaussianLogStandardBackward", Napi::Function::New(env, LogStandardBackward, "gaussianLogStandardBackward"));
  exports.Set("gaussianKlStandard", Napi::Function::New(env, KlStandard, "gaussianKlStandard"));
  exports.Set("gaussianKlStandardBackward", Napi::Function::New(env, KlStandardBackward, "gaussianKlStandardBackward"));
}

}  // namespace napi
}  // namespace flowvae
