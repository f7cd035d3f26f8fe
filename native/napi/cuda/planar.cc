// cuda bindings of the planar kernels (native/cuda/planar.cu): the cpu
// binding's checks (flow_args.h), then the staged call.
#include "flowvae/cuda/planar.h"

#include "../flow_args.h"
#include "call.h"
#include "flowvae/planar.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

using cuda_call::Call;

std::size_t ParamCount(bool amortized, std::size_t batch, std::size_t dim, std::size_t layers) {
  return (amortized ? batch : 1) * layers * planar_param_size(dim);
}

std::size_t StagedForward(const float* x, const float* params, bool amortized, float* y, float* log_det,
                          float* layer_log_det, float* stash, std::size_t batch, std::size_t dim, std::size_t layers) {
  Call call("planarForward");
  const std::size_t values = batch * dim, per_layer = batch * layers;
  const float* d_x = call.In(x, values);
  const float* d_params = call.In(params, ParamCount(amortized, batch, dim, layers));
  float* d_y = call.Out(y, values);
  float* d_log_det = call.Out(log_det, batch);
  float* d_layer_log_det = call.Out(layer_log_det, per_layer);
  float* d_stash = call.Out(stash, per_layer);
  unsigned long long bad = 0;
  cuda::planar_forward(d_x, d_params, amortized, d_y, d_log_det, d_layer_log_det, d_stash, batch, dim, layers,
                       call.Counter(&bad));
  call.Finish();
  return static_cast<std::size_t>(bad);
}

std::size_t StagedBackward(const float* y, const float* stash, const float* params, bool amortized, const float* dy,
                           const float* d_log_det, float* dx, float* d_params, std::size_t batch, std::size_t dim,
                           std::size_t layers) {
  Call call("planarBackward");
  const std::size_t values = batch * dim, n_params = ParamCount(amortized, batch, dim, layers);
  const float* d_y = call.In(y, values);
  const float* d_stash = call.In(stash, batch * layers);
  const float* d_par = call.In(params, n_params);
  const float* d_dy = call.In(dy, values);
  const float* d_dld = call.In(d_log_det, batch);
  float* d_dx = call.Out(dx, values);
  // Shared gradients accumulate into what the caller holds; amortized ones are overwritten.
  float* d_dparams = amortized ? call.Out(d_params, n_params) : call.InOut(d_params, n_params);
  unsigned long long bad = 0;
  cuda::planar_backward(d_y, d_stash, d_par, amortized, d_dy, d_dld, d_dx, d_dparams, batch, dim, layers,
                        call.Counter(&bad));
  call.Finish();
  return static_cast<std::size_t>(bad);
}

std::size_t StagedInverse(const float* y, const float* params, bool amortized, float* x, float* log_det,
                          std::size_t batch, std::size_t dim, std::size_t layers) {
  Call call("planarInverse");
  const std::size_t values = batch * dim;
  const float* d_y = call.In(y, values);
  const float* d_params = call.In(params, ParamCount(amortized, batch, dim, layers));
  float* d_x = call.Out(x, values);
  float* d_log_det = call.Out(log_det, batch);
  unsigned long long bad = 0;
  cuda::planar_inverse(d_y, d_params, amortized, d_x, d_log_det, batch, dim, layers, call.Counter(&bad));
  call.Finish();
  return static_cast<std::size_t>(bad);
}

Napi::Value Forward(const Napi::CallbackInfo& info) {
  return StackForward<StagedForward, planar_param_size>(info, "planarForward");
}

Napi::Value Backward(const Napi::CallbackInfo& info) {
  return StackBackward<StagedBackward, planar_param_size>(info, "planarBackward", "y");
}

Napi::Value Inverse(const Napi::CallbackInfo& info) {
  return StackInverse<StagedInverse, planar_param_size>(info, "planarInverse");
}

}  // namespace

void RegisterCudaPlanar(Napi::Env env, Napi::Object cuda) {
  cuda_call::Export<Forward>(env, cuda, "planarForward");
  cuda_call::Export<Backward>(env, cuda, "planarBackward");
  cuda_call::Export<Inverse>(env, cuda, "planarInverse");
}

}  // namespace napi
}  // namespace flowvae
