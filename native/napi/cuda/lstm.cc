// cuda bindings of the LSTM kernels (native/cuda/lstm.cu), with the checks
// of the cpu bindings (lstm_args.h). Backward's scratch lives on the device
// only: the host `work` array is checked but not written.
#include "flowvae/cuda/lstm.h"

#include <cstdint>

#include "../lstm_args.h"
#include "call.h"
#include "flowvae/cuda/runtime.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

using cuda_call::Call;

// A device copy of the optional lengths (an empty buffer for null).
cuda::DeviceBuffer<uint32_t> UploadLengths(const Buffer& lengths) {
  if (!lengths.data || lengths.length == 0) return cuda::DeviceBuffer<uint32_t>();
  cuda::DeviceBuffer<uint32_t> d(lengths.length);
  cuda::upload(d.get(), lengths.data, lengths.length * sizeof(uint32_t));
  return d;
}

Napi::Value LstmForward(const Napi::CallbackInfo& info) {
  const auto f = lstm_args::ForwardArgs(info);
  Call call("lstmForward");
  const cuda::DeviceBuffer<uint32_t> d_lengths = UploadLengths(f.lengths);
  const float* d_x = call.In(f.x.data, f.x.length);
  const float* d_h0 = call.In(f.h0.data, f.h0.length);
  const float* d_c0 = call.In(f.c0.data, f.c0.length);
  const float* d_w_ih = call.In(f.w_ih.data, f.w_ih.length);
  const float* d_w_hh = call.In(f.w_hh.data, f.w_hh.length);
  const float* d_b_ih = call.In(f.b_ih.data, f.b_ih.length);
  const float* d_b_hh = call.In(f.b_hh.data, f.b_hh.length);
  float* d_y = call.Out(f.y.data, f.y.length);
  float* d_hn = call.Out(f.hn.data, f.hn.length);
  float* d_cn = call.Out(f.cn.data, f.cn.length);
  float* d_stash = call.Out(f.stash.data, f.stash.length);
  cuda::lstm_forward(d_x, d_lengths.get(), d_h0, d_c0, d_w_ih, d_w_hh, d_b_ih, d_b_hh, d_y, d_hn, d_cn, d_stash,
                     f.s.batch, f.s.steps, f.s.in_dim, f.s.hidden);
  call.Finish();
  return info.Env().Undefined();
}

Napi::Value LstmBackward(const Napi::CallbackInfo& info) {
  const auto b = lstm_args::BackwardArgs(info);
  Call call("lstmBackward");
  const cuda::DeviceBuffer<uint32_t> d_lengths = UploadLengths(b.lengths);
  const float* d_x = call.In(b.x.data, b.x.length);
  const float* d_w_ih = call.In(b.w_ih.data, b.w_ih.length);
  const float* d_w_hh = call.In(b.w_hh.data, b.w_hh.length);
  const float* d_stash = call.In(b.stash.data, b.stash.length);
  const float* d_dy = call.In(b.dy.data, b.dy.length);
  const float* d_dhn = call.In(b.dhn.data, b.dhn.length);
  const float* d_dcn = call.In(b.dcn.data, b.dcn.length);
  float* d_dx = call.Out(b.dx.data, b.dx.length);
  float* d_dh0 = call.Out(b.dh0.data, b.dh0.length);
  float* d_dc0 = call.Out(b.dc0.data, b.dc0.length);
  // Gradients accumulate into what the caller holds, or overwrite it.
  auto gradient = [&](const Buffer& g) {
    return b.accumulate ? call.InOut(g.data, g.length) : call.Out(g.data, g.length);
  };
  float* d_dw_ih = gradient(b.d_w_ih);
  float* d_dw_hh = gradient(b.d_w_hh);
  float* d_db_ih = gradient(b.d_b_ih);
  float* d_db_hh = gradient(b.d_b_hh);
  cuda::DeviceBuffer<float> d_work(b.work.length);
  cuda::lstm_backward(d_x, d_lengths.get(), d_w_ih, d_w_hh, d_stash, d_dy, d_dhn, d_dcn, d_dx, d_dh0, d_dc0, d_dw_ih,
                      d_dw_hh, d_db_ih, d_db_hh, d_work.get(), b.s.batch, b.s.steps, b.s.in_dim, b.s.hidden,
                      b.accumulate);
  call.Finish();
  return info.Env().Undefined();
}

}  // namespace

void RegisterCudaLstm(Napi::Env env, Napi::Object cuda) {
  cuda_call::Export<LstmForward>(env, cuda, "lstmForward");
  cuda_call::Export<LstmBackward>(env, cuda, "lstmBackward");
}

}  // namespace napi
}  // namespace flowvae
