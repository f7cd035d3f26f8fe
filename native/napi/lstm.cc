// Bindings of the LSTM kernels (native/cpu/lstm.cc); argument checks in
// lstm_args.h.
#include "flowvae/lstm.h"

#include <new>

#include "lstm_args.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

// Runs a kernel, turning allocation failure of sgemm's packing workspace into a JS error.
template <class Fn>
void RunKernel(Napi::Env env, Fn&& fn) {
  try {
    fn();
  } catch (const std::bad_alloc&) {
    ThrowWithCode(Napi::Error::New(env, "Out of memory for the lstm kernel workspace"), "ERR_ARG");
  }
}

Napi::Value LstmForward(const Napi::CallbackInfo& info) {
  const auto f = lstm_args::ForwardArgs(info);
  RunKernel(info.Env(), [&] {
    lstm_forward(f.x.data, lstm_args::LengthData(f.lengths), f.h0.data, f.c0.data, f.w_ih.data, f.w_hh.data,
                 f.b_ih.data, f.b_hh.data, f.y.data, f.hn.data, f.cn.data, f.stash.data, f.s.batch, f.s.steps,
                 f.s.in_dim, f.s.hidden);
  });
  return info.Env().Undefined();
}

Napi::Value LstmBackward(const Napi::CallbackInfo& info) {
  const auto b = lstm_args::BackwardArgs(info);
  RunKernel(info.Env(), [&] {
    lstm_backward(b.x.data, lstm_args::LengthData(b.lengths), b.w_ih.data, b.w_hh.data, b.stash.data, b.dy.data,
                  b.dhn.data, b.dcn.data, b.dx.data, b.dh0.data, b.dc0.data, b.d_w_ih.data, b.d_w_hh.data,
                  b.d_b_ih.data, b.d_b_hh.data, b.work.data, b.s.batch, b.s.steps, b.s.in_dim, b.s.hidden,
                  b.accumulate);
  });
  return info.Env().Undefined();
}

}  // namespace

void RegisterLstm(Napi::Env env, Napi::Object exports) {
  exports.Set("lstmForward", Napi::Function::New(env, LstmForward, "lstmForward"));
  exports.Set("lstmBackward", Napi::Function::New(env, LstmBackward, "lstmBackward"));
}

}  // namespace napi
}  // namespace flowvae
