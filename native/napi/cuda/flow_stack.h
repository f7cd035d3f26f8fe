// The staged calls of the cuda flow-stack bindings (planar, radial): the cpu
// bindings' checks (flow_args.h), then the inputs uploaded, the family's
// kernel run and the outputs and bad-row count downloaded. The families'
// kernels share one signature (flowvae/cuda/planar.h, radial.h).
#pragma once
#include <napi.h>

#include "../flow_args.h"
#include "call.h"

namespace flowvae {
namespace napi {
namespace cuda_stack {

using ForwardKernel = void (*)(const float* x, const float* params, bool amortized, float* y, float* log_det,
                               float* layer_log_det, float* stash, std::size_t batch, std::size_t dim,
                               std::size_t layers, unsigned long long* bad);
using BackwardKernel = void (*)(const float* saved, const float* stash, const float* params, bool amortized,
                                const float* dy, const float* d_log_det, float* dx, float* d_params, std::size_t batch,
                                std::size_t dim, std::size_t layers, unsigned long long* bad);
using InverseKernel = void (*)(const float* y, const float* params, bool amortized, float* x, float* log_det,
                               std::size_t batch, std::size_t dim, std::size_t layers, unsigned long long* bad);

inline Napi::Value BadRows(Napi::Env env, unsigned long long bad) {
  return Napi::Number::New(env, static_cast<double>(bad));
}

template <ForwardKernel kKernel, std::size_t (*kParamSize)(std::size_t)>
Napi::Value Forward(const Napi::CallbackInfo& info, const char* fn) {
  const StackForwardCall c = StackForwardArgs(info, fn, kParamSize);
  const StackSizes& s = c.sizes;
  cuda_call::Call call(fn);
  const float* d_x = call.In(c.x.data, s.values);
  const float* d_params = call.In(c.params.data, s.params);
  float* d_y = call.Out(c.y.data, s.values);
  float* d_log_det = call.Out(c.log_det.data, s.batch);
  float* d_layer_log_det = call.Out(c.layer_log_det.data, s.per_layer);
  float* d_stash = call.Out(c.stash.data, s.per_layer);
  unsigned long long bad = 0;
  kKernel(d_x, d_params, s.amortized, d_y, d_log_det, d_layer_log_det, d_stash, s.batch, s.dim, s.layers,
          call.Counter(&bad));
  call.Finish();
  return BadRows(info.Env(), bad);
}

// kReadsStash: false for a kernel that recomputes what the stash holds (the
// binding has still checked its length), so it is not uploaded.
template <BackwardKernel kKernel, std::size_t (*kParamSize)(std::size_t), bool kReadsStash>
Napi::Value Backward(const Napi::CallbackInfo& info, const char* fn, const char* saved_name) {
  const StackBackwardCall c = StackBackwardArgs(info, fn, saved_name, kParamSize);
  const StackSizes& s = c.sizes;
  cuda_call::Call call(fn);
  const float* d_saved = call.In(c.saved.data, s.values);
  const float* d_stash = kReadsStash ? call.In(c.stash.data, s.per_layer) : nullptr;
  const float* d_par = call.In(c.params.data, s.params);
  const float* d_dy = call.In(c.dy.data, s.values);
  const float* d_dld = call.In(c.d_log_det.data, s.batch);
  float* d_dx = call.Out(c.dx.data, s.values);
  // Shared gradients accumulate into what the caller holds; amortized ones are overwritten.
  float* d_dparams = s.amortized ? call.Out(c.d_params.data, s.params) : call.InOut(c.d_params.data, s.params);
  unsigned long long bad = 0;
  kKernel(d_saved, d_stash, d_par, s.amortized, d_dy, d_dld, d_dx, d_dparams, s.batch, s.dim, s.layers,
          call.Counter(&bad));
  call.Finish();
  return BadRows(info.Env(), bad);
}

template <InverseKernel kKernel, std::size_t (*kParamSize)(std::size_t)>
Napi::Value Inverse(const Napi::CallbackInfo& info, const char* fn) {
  const StackInverseCall c = StackInverseArgs(info, fn, kParamSize);
  const StackSizes& s = c.sizes;
  cuda_call::Call call(fn);
  const float* d_y = call.In(c.y.data, s.values);
  const float* d_params = call.In(c.params.data, s.params);
  float* d_x = call.Out(c.x.data, s.values);
  float* d_log_det = call.Out(c.log_det.data, s.batch);
  unsigned long long bad = 0;
  kKernel(d_y, d_params, s.amortized, d_x, d_log_det, s.batch, s.dim, s.layers, call.Counter(&bad));
  call.Finish();
  return BadRows(info.Env(), bad);
}

// A family's staged calls, with its names and sizes bound in.
// kReadsStash as for Backward.
template <const StackFamily& kFamily, ForwardKernel kKernel>
Napi::Value BoundForward(const Napi::CallbackInfo& info) {
  return Forward<kKernel, kFamily.param_size>(info, kFamily.forward);
}

template <const StackFamily& kFamily, BackwardKernel kKernel, bool kReadsStash>
Napi::Value BoundBackward(const Napi::CallbackInfo& info) {
  return Backward<kKernel, kFamily.param_size, kReadsStash>(info, kFamily.backward, kFamily.saved);
}

template <const StackFamily& kFamily, InverseKernel kKernel>
Napi::Value BoundInverse(const Napi::CallbackInfo& info) {
  return Inverse<kKernel, kFamily.param_size>(info, kFamily.inverse);
}

// Adds a family's forward, backward and inverse to exports.cuda, under the
// names of its cpu bindings.
template <const StackFamily& kFamily, ForwardKernel kForward, BackwardKernel kBackward, bool kReadsStash,
          InverseKernel kInverse>
void Register(Napi::Env env, Napi::Object cuda) {
  cuda_call::Export<BoundForward<kFamily, kForward>>(env, cuda, kFamily.forward);
  cuda_call::Export<BoundBackward<kFamily, kBackward, kReadsStash>>(env, cuda, kFamily.backward);
  cuda_call::Export<BoundInverse<kFamily, kInverse>>(env, cuda, kFamily.inverse);
}

}  // namespace cuda_stack
}  // namespace napi
}  // namespace flowvae
