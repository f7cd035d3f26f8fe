// Bindings of the diagonal Gaussian kernels (native/cpu/gaussian.cc); argument
// checks in gaussian_args.h.
#include "flowvae/gaussian.h"

#include "gaussian_args.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

Napi::Value SampleDiag(const Napi::CallbackInfo& info) {
  const auto a = gaussian_args::SampleDiagArgs(info);
  gaussian_sample_diag(a.mu, a.logvar, a.eps, a.z, a.logq, a.batch, a.dim);
  return info.Env().Undefined();
}

Napi::Value SampleDiagBackward(const Napi::CallbackInfo& info) {
  const auto a = gaussian_args::SampleDiagBackwardArgs(info);
  gaussian_sample_diag_backward(a.logvar, a.eps, a.dz, a.d_logq, a.d_mu, a.d_logvar, a.batch, a.dim);
  return info.Env().Undefined();
}

Napi::Value LogStandard(const Napi::CallbackInfo& info) {
  const auto a = gaussian_args::LogStandardArgs(info);
  gaussian_log_standard(a.x, a.out, a.batch, a.dim);
  return info.Env().Undefined();
}

Napi::Value LogStandardBackward(const Napi::CallbackInfo& info) {
  const auto a = gaussian_args::LogStandardBackwardArgs(info);
  gaussian_log_standard_backward(a.x, a.d_out, a.dx, a.batch, a.dim);
  return info.Env().Undefined();
}

Napi::Value KlStandard(const Napi::CallbackInfo& info) {
  const auto a = gaussian_args::KlStandardArgs(info);
  gaussian_kl_standard(a.mu, a.logvar, a.out, a.batch, a.dim);
  return info.Env().Undefined();
}

Napi::Value KlStandardBackward(const Napi::CallbackInfo& info) {
  const auto a = gaussian_args::KlStandardBackwardArgs(info);
  gaussian_kl_standard_backward(a.mu, a.logvar, a.d_out, a.d_mu, a.d_logvar, a.batch, a.dim);
  return info.Env().Undefined();
}

}  // namespace

void RegisterGaussian(Napi::Env env, Napi::Object exports) {
  exports.Set("gaussianSampleDiag", Napi::Function::New(env, SampleDiag, "gaussianSampleDiag"));
  exports.Set("gaussianSampleDiagBackward", Napi::Function::New(env, SampleDiagBackward, "gaussianSampleDiagBackward"));
  exports.Set("gaussianLogStandard", Napi::Function::New(env, LogStandard, "gaussianLogStandard"));
  exports.Set("gaussianLogStandardBackward",
              Napi::Function::New(env, LogStandardBackward, "gaussianLogStandardBackward"));
  exports.Set("gaussianKlStandard", Napi::Function::New(env, KlStandard, "gaussianKlStandard"));
  exports.Set("gaussianKlStandardBackward", Napi::Function::New(env, KlStandardBackward, "gaussianKlStandardBackward"));
}

}  // namespace napi
}  // namespace flowvae
