// cuda bindings of the diagonal Gaussian kernels (native/cuda/gaussian.cu),
// with the checks of native/napi/gaussian.cc.
#include "flowvae/cuda/gaussian.h"

#include "../args.h"
#include "call.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

using cuda_call::Call;

Napi::Value SampleDiag(const Napi::CallbackInfo& info) {
  Arity(info, 7, "gaussianSampleDiag");
  std::size_t batch, dim;
  const std::size_t n = RowShape(info, 5, &batch, &dim);
  float* mu = F32(info, 0, "mu", n);
  float* logvar = F32(info, 1, "logvar", n);
  float* eps = F32(info, 2, "eps", n);
  float* z = F32(info, 3, "z", n);
  float* logq = F32(info, 4, "logq", batch);
  Call call("gaussianSampleDiag");
  const float* d_mu = call.In(mu, n);
  const float* d_logvar = call.In(logvar, n);
  const float* d_eps = call.In(eps, n);
  float* d_z = call.Out(z, n);
  float* d_logq = call.Out(logq, batch);
  cuda::gaussian_sample_diag(d_mu, d_logvar, d_eps, d_z, d_logq, batch, dim);
  call.Finish();
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
  Call call("gaussianSampleDiagBackward");
  const float* d_logvar = call.In(logvar, n);
  const float* d_eps = call.In(eps, n);
  const float* d_dz = call.In(dz, n);
  const float* d_dlogq = call.In(dLogq, batch);
  float* d_dmu = call.Out(dMu, n);
  float* d_dlogvar = call.Out(dLogvar, n);
  cuda::gaussian_sample_diag_backward(d_logvar, d_eps, d_dz, d_dlogq, d_dmu, d_dlogvar, batch, dim);
  call.Finish();
  return info.Env().Undefined();
}

Napi::Value LogStandard(const Napi::CallbackInfo& info) {
  Arity(info, 4, "gaussianLogStandard");
  std::size_t batch, dim;
  const std::size_t n = RowShape(info, 2, &batch, &dim);
  float* x = F32(info, 0, "x", n);
  float* out = F32(info, 1, "out", batch);
  Call call("gaussianLogStandard");
  const float* d_x = call.In(x, n);
  float* d_out = call.Out(out, batch);
  cuda::gaussian_log_standard(d_x, d_out, batch, dim);
  call.Finish();
  return info.Env().Undefined();
}

Napi::Value LogStandardBackward(const Napi::CallbackInfo& info) {
  Arity(info, 5, "gaussianLogStandardBackward");
  std::size_t batch, dim;
  const std::size_t n = RowShape(info, 3, &batch, &dim);
  float* x = F32(info, 0, "x", n);
  float* dOut = F32(info, 1, "dOut", batch);
  float* dx = F32(info, 2, "dx", n);
  Call call("gaussianLogStandardBackward");
  const float* d_x = call.In(x, n);
  const float* d_dout = call.In(dOut, batch);
  float* d_dx = call.Out(dx, n);
  cuda::gaussian_log_standard_backward(d_x, d_dout, d_dx, batch, dim);
  call.Finish();
  return info.Env().Undefined();
}

Napi::Value KlStandard(const Napi::CallbackInfo& info) {
  Arity(info, 5, "gaussianKlStandard");
  std::size_t batch, dim;
  const std::size_t n = RowShape(info, 3, &batch, &dim);
  float* mu = F32(info, 0, "mu", n);
  float* logvar = F32(info, 1, "logvar", n);
  float* out = F32(info, 2, "out", batch);
  Call call("gaussianKlStandard");
  const float* d_mu = call.In(mu, n);
  const float* d_logvar = call.In(logvar, n);
  float* d_out = call.Out(out, batch);
  cuda::gaussian_kl_standard(d_mu, d_logvar, d_out, batch, dim);
  call.Finish();
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
  Call call("gaussianKlStandardBackward");
  const float* d_mu = call.In(mu, n);
  const float* d_logvar = call.In(logvar, n);
  const float* d_dout = call.In(dOut, batch);
  float* d_dmu = call.Out(dMu, n);
  float* d_dlogvar = call.Out(dLogvar, n);
  cuda::gaussian_kl_standard_backward(d_mu, d_logvar, d_dout, d_dmu, d_dlogvar, batch, dim);
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
