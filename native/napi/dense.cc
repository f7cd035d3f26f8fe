// Bindings of the dense kernels (native/cpu/dense.cc); argument checks in
// dense_args.h.
#include <new>

#include "dense_args.h"
#include "flowvae/dense.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

// Runs a kernel, turning allocation failure of its packing workspace into a JS error.
template <class Fn>
void RunKernel(Napi::Env env, Fn&& fn) {
  try {
    fn();
  } catch (const std::bad_alloc&) {
    ThrowWithCode(Napi::Error::New(env, "Out of memory for the dense kernel workspace"), "ERR_ARG");
  }
}

Napi::Value DenseGemm(const Napi::CallbackInfo& info) {
  const auto g = dense_args::GemmArgs(info);
  RunKernel(info.Env(),
            [&] { sgemm(g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, g.a.data, g.b.data, g.beta, g.c.data); });
  return info.Env().Undefined();
}

Napi::Value DenseForward(const Napi::CallbackInfo& info) {
  const auto f = dense_args::ForwardArgs(info);
  RunKernel(info.Env(),
            [&] { dense_forward(f.x.data, f.weight.data, f.bias.data, f.y.data, f.batch, f.in_dim, f.out_dim); });
  return info.Env().Undefined();
}

Napi::Value DenseBackward(const Napi::CallbackInfo& info) {
  const auto b = dense_args::BackwardArgs(info);
  RunKernel(info.Env(), [&] {
    dense_backward(b.x.data, b.weight.data, b.dy.data, b.dx.data, b.d_weight.data, b.d_bias.data, b.batch, b.in_dim,
                   b.out_dim, b.accumulate);
  });
  return info.Env().Undefined();
}

}  // namespace

void RegisterDense(Napi::Env env, Napi::Object exports) {
  exports.Set("denseGemm", Napi::Function::New(env, DenseGemm, "denseGemm"));
  exports.Set("denseForward", Napi::Function::New(env, DenseForward, "denseForward"));
  exports.Set("denseBackward", Napi::Function::New(env, DenseBackward, "denseBackward"));
}

}  // namespace napi
}  // namespace flowvae
