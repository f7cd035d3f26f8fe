// cuda bindings of the dense kernels (native/cuda/dense.cu). The checks and
// their order are native/napi/dense.cc's (sizes, then arrays in argument
// order, then overlaps), so the errors are the same.
#include "flowvae/cuda/dense.h"

#include "../flow_args.h"
#include "call.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

using cuda_call::Call;

// denseGemm(transA, transB, m, n, k, alpha, a, b, beta, c)
Napi::Value DenseGemm(const Napi::CallbackInfo& info) {
  const bool trans_a = Bool(info, 0, "transA");
  const bool trans_b = Bool(info, 1, "transB");
  const std::size_t m = Size(info, 2, "m");
  const std::size_t n = Size(info, 3, "n");
  const std::size_t k = Size(info, 4, "k");
  const float alpha = static_cast<float>(Number(info, 5, "alpha"));
  const float beta = static_cast<float>(Number(info, 8, "beta"));
  const std::size_t a_len = Product(info.Env(), m, k, "a");
  const std::size_t b_len = Product(info.Env(), k, n, "b");
  const std::size_t c_len = Product(info.Env(), m, n, "c");
  const Buffer a = In(info, 6, "a", a_len);
  const Buffer b = In(info, 7, "b", b_len);
  const Buffer c = Out(info, 9, "c", c_len, {a, b});
  Call call("denseGemm");
  const float* d_a = call.In(a.data, a_len);
  const float* d_b = call.In(b.data, b_len);
  // C is read when beta != 0.
  float* d_c = beta != 0.0f ? call.InOut(c.data, c_len) : call.Out(c.data, c_len);
  cuda::sgemm(trans_a, trans_b, m, n, k, alpha, d_a, d_b, beta, d_c);
  call.Finish();
  return info.Env().Undefined();
}

// denseForward(x, weight, bias, y, batch, inDim, outDim)
Napi::Value DenseForward(const Napi::CallbackInfo& info) {
  const std::size_t batch = Size(info, 4, "batch");
  const std::size_t in_dim = Size(info, 5, "inDim");
  const std::size_t out_dim = Size(info, 6, "outDim");
  const std::size_t x_len = Product(info.Env(), batch, in_dim, "x");
  const std::size_t w_len = Product(info.Env(), out_dim, in_dim, "weight");
  const std::size_t y_len = Product(info.Env(), batch, out_dim, "y");
  const Buffer x = In(info, 0, "x", x_len);
  const Buffer weight = In(info, 1, "weight", w_len);
  const Buffer bias{OptF32(info, 2, "bias", out_dim), out_dim, "bias"};
  const Buffer y = Out(info, 3, "y", y_len, {x, weight, bias});
  Call call("denseForward");
  const float* d_x = call.In(x.data, x_len);
  const float* d_w = call.In(weight.data, w_len);
  const float* d_bias = call.In(bias.data, out_dim);
  float* d_y = call.Out(y.data, y_len);
  cuda::dense_forward(d_x, d_w, d_bias, d_y, batch, in_dim, out_dim);
  call.Finish();
  return info.Env().Undefined();
}

// denseBackward(x, weight, dy, dx, dWeight, dBias, batch, inDim, outDim, accumulate)
Napi::Value DenseBackward(const Napi::CallbackInfo& info) {
  const std::size_t batch = Size(info, 6, "batch");
  const std::size_t in_dim = Size(info, 7, "inDim");
  const std::size_t out_dim = Size(info, 8, "outDim");
  const bool accumulate = Bool(info, 9, "accumulate");
  const std::size_t x_len = Product(info.Env(), batch, in_dim, "x");
  const std::size_t w_len = Product(info.Env(), out_dim, in_dim, "weight");
  const std::size_t y_len = Product(info.Env(), batch, out_dim, "dy");
  const Buffer x = In(info, 0, "x", x_len);
  const Buffer weight = In(info, 1, "weight", w_len);
  const Buffer dy = In(info, 2, "dy", y_len);
  const Buffer dx{OptF32(info, 3, "dx", x_len), x_len, "dx"};
  const Buffer d_weight{OptF32(info, 4, "dWeight", w_len), w_len, "dWeight"};
  const Buffer d_bias{OptF32(info, 5, "dBias", out_dim), out_dim, "dBias"};
  for (const Buffer& input : {x, weight, dy}) {
    CheckDisjoint(info, 3, dx, {input});
    CheckDisjoint(info, 4, d_weight, {input});
    CheckDisjoint(info, 5, d_bias, {input});
  }
  CheckDisjoint(info, 4, d_weight, {dx});
  CheckDisjoint(info, 5, d_bias, {dx, d_weight});
  Call call("denseBackward");
  const float* d_x = call.In(x.data, x_len);
  const float* d_w = call.In(weight.data, w_len);
  const float* d_dy = call.In(dy.data, y_len);
  float* d_dx = call.Out(dx.data, x_len);
  float* d_dw = accumulate ? call.InOut(d_weight.data, w_len) : call.Out(d_weight.data, w_len);
  float* d_db = accumulate ? call.InOut(d_bias.data, out_dim) : call.Out(d_bias.data, out_dim);
  cuda::dense_backward(d_x, d_w, d_dy, d_dx, d_dw, d_db, batch, in_dim, out_dim, accumulate);
  call.Finish();
  return info.Env().Undefined();
}

}  // namespace

void RegisterCudaDense(Napi::Env env, Napi::Object cuda) {
  cuda_call::Export<DenseGemm>(env, cuda, "denseGemm");
  cuda_call::Export<DenseForward>(env, cuda, "denseForward");
  cuda_call::Export<DenseBackward>(env, cuda, "denseBackward");
}

}  // namespace napi
}  // namespace flowvae
