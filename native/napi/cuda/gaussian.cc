// cuda bindings of the diagonal Gaussian kernels (native/cuda/gaussian.cu),
// with the checks of the cpu bindings (gaussian_args.h).
#include "flowvae/cuda/gaussian.h"

#include "../gaussian_args.h"
#include "call.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

using cuda_call::Call;

Napi::Value SampleDiag(const Napi::CallbackInfo& info) {
  const auto a = gaussian_args::SampleDiagArgs(info);
  Call call("gaussianSampleDiag");
  const float* d_mu = call.In(a.mu, a.n);
  const float* d_logvar = call.In(a.logvar, a.n);
  const float* d_eps = call.In(a.eps, a.n);
  float* d_z = call.Out(a.z, a.n);
  float* d_logq = call.Out(a.logq, a.batch);
  cuda::gaussian_sample_diag(d_mu, d_logvar, d_eps, d_z, d_logq, a.batch, a.dim);
  call.Finish();
  return info.Env().Undefined();
}

Napi::Value SampleDiagBackward(const Napi::CallbackInfo& info) {
  const auto a = gaussian_args::SampleDiagBackwardArgs(info);
  Call call("gaussianSampleDiagBackward");
  const float* d_logvar = call.In(a.logvar, a.n);
  const float* d_eps = call.In(a.eps, a.n);
  const float* d_dz = call.In(a.dz, a.n);
  const float* d_dlogq = call.In(a.d_logq, a.batch);
  float* d_dmu = call.Out(a.d_mu, a.n);
  float* d_dlogvar = call.Out(a.d_logvar, a.n);
  cuda::gaussian_sample_diag_backward(d_logvar, d_eps, d_dz, d_dlogq, d_dmu, d_dlogvar, a.batch, a.dim);
  call.Finish();
  return info.Env().Undefined();
}

Napi::Value LogStandard(const Napi::CallbackInfo& info) {
  const auto a = gaussian_args::LogStandardArgs(info);
  Call call("gaussianLogStandard");
  const float* d_x = call.In(a.x, a.n);
  float* d_out = call.Out(a.out, a.batch);
  cuda::gaussian_log_standard(d_x, d_out, a.batch, a.dim);
  call.Finish();
  return info.Env().Undefined();
}

Napi::Value LogStandardBackward(const Napi::CallbackInfo& info) {
  const auto a = gaussian_args::LogStandardBackwardArgs(info);
  Call call("gaussianLogStandardBackward");
  const float* d_x = call.In(a.x, a.n);
  const float* d_dout = call.In(a.d_out, a.batch);
  float* d_dx = call.Out(a.dx, a.n);
  cuda::gaussian_log_standard_backward(d_x, d_dout, d_dx, a.batch, a.dim);
  call.Finish();
  return info.Env().Undefined();
}

Napi::Value KlStandard(const Napi::CallbackInfo& info) {
  const auto a = gaussian_args::KlStandardArgs(info);
  Call call("gaussianKlStandard");
  const float* d_mu = call.In(a.mu, a.n);
  const float* d_logvar = call.In(a.logvar, a.n);
  float* d_out = call.Out(a.out, a.batch);
  cuda::gaussian_kl_standard(d_mu, d_logvar, d_out, a.batch, a.dim);
  call.Finish();
  return info.Env().Undefined();
}

Napi::Value KlStandardBackward(const Napi::CallbackInfo& info) {
  const auto a = gaussian_args::KlStandardBackwardArgs(info);
  Call call("gaussianKlStandardBackward");
  const float* d_mu = call.In(a.mu, a.n);
  const float* d_logvar = call.In(a.logvar, a.n);
  const float* d_dout = call.In(a.d_out, a.batch);
  float* d_dmu = call.Out(a.d_mu, a.n);
  float* d_dlogvar = call.Out(a.d_logvar, a.n);
  cuda::gaussian_kl_standard_backward(d_mu, d_logvar, d_dout, d_dmu, d_dlogvar, a.batch, a.dim);
  call.Finish();
  return info.Env().Undefined();
}

}  // namespace

void RegisterCudaGaussian(Napi::Env env, Napi::Object cuda) {
  cuda_call::Export<SampleDiag>(env, cuda, "gaussianSampleDiag");
  cuda_call::Export<SampleDiagBackward>(env, cuda, "gaussianSampleDiagBackward");
  cuda_call::Export<LogStandard>(env, cuda, "gaussianLogStandard");
  cuda_call::Export<LogStandardBackward>(env, cuda, "gaussianLogStandardBackward");
  cuda_call::Export<KlStandard>(env, cuda, "gaussianKlStandard");
  cuda_call::Export<KlStandardBackward>(env, cuda, "gaussianKlStandardBackward");
}

}  // namespace napi
}  // namespace flowvae
