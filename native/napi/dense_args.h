// Argument checks of the dense bindings, shared by the cpu (napi/dense.cc)
// and cuda (napi/cuda/dense.cc) bindings so both refuse the same things with
// the same messages.
//
// Every argument is checked before any kernel runs, sizes first (array lengths
// are derived from them), then arrays in argument order; a missing argument is
// reported by name like any other bad value. Outputs must not share memory
// with inputs or with each other: the kernels read inputs while writing
// outputs, so overlapping views would silently give wrong results (the cuda
// copies would hide the overlap, but the contract is the same everywhere).
#pragma once
#include <napi.h>

#include "args.h"
#include "flow_args.h"  // Buffer, In, Out, CheckDisjoint

namespace flowvae {
namespace napi {
namespace dense_args {

struct Gemm {
  bool trans_a, trans_b;
  std::size_t m, n, k;
  float alpha, beta;
  Buffer a, b, c;
};

// denseGemm(transA, transB, m, n, k, alpha, a, b, beta, c)
inline Gemm GemmArgs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const bool trans_a = Bool(info, 0, "transA");
  const bool trans_b = Bool(info, 1, "transB");
  const std::size_t m = Size(info, 2, "m");
  const std::size_t n = Size(info, 3, "n");
  const std::size_t k = Size(info, 4, "k");
  const float alpha = static_cast<float>(Number(info, 5, "alpha"));
  const float beta = static_cast<float>(Number(info, 8, "beta"));
  const std::size_t a_len = Product(env, m, k, "a");
  const std::size_t b_len = Product(env, k, n, "b");
  const std::size_t c_len = Product(env, m, n, "c");
  const Buffer a = In(info, 6, "a", a_len);
  const Buffer b = In(info, 7, "b", b_len);
  const Buffer c = Out(info, 9, "c", c_len, {a, b});
  return Gemm{trans_a, trans_b, m, n, k, alpha, beta, a, b, c};
}

struct Forward {
  std::size_t batch, in_dim, out_dim;
  Buffer x, weight, bias, y;  // bias.data is null when there is none
};

// denseForward(x, weight, bias | null, y, batch, inDim, outDim)
inline Forward ForwardArgs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::size_t batch = Size(info, 4, "batch");
  const std::size_t in_dim = Size(info, 5, "inDim");
  const std::size_t out_dim = Size(info, 6, "outDim");
  const std::size_t x_len = Product(env, batch, in_dim, "x");
  const std::size_t w_len = Product(env, out_dim, in_dim, "weight");
  const std::size_t y_len = Product(env, batch, out_dim, "y");
  const Buffer x = In(info, 0, "x", x_len);
  const Buffer weight = In(info, 1, "weight", w_len);
  const Buffer bias{OptF32(info, 2, "bias", out_dim), out_dim, "bias"};
  const Buffer y = Out(info, 3, "y", y_len, {x, weight, bias});
  return Forward{batch, in_dim, out_dim, x, weight, bias, y};
}

struct Backward {
  std::size_t batch, in_dim, out_dim;
  bool accumulate;
  Buffer x, weight, dy;
  Buffer dx, d_weight, d_bias;  // each null when not wanted
};

// denseBackward(x, weight, dy, dx | null, dWeight | null, dBias | null, batch, inDim, outDim, accumulate)
inline Backward BackwardArgs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::size_t batch = Size(info, 6, "batch");
  const std::size_t in_dim = Size(info, 7, "inDim");
  const std::size_t out_dim = Size(info, 8, "outDim");
  const bool accumulate = Bool(info, 9, "accumulate");
  const std::size_t x_len = Product(env, batch, in_dim, "x");
  const std::size_t w_len = Product(env, out_dim, in_dim, "weight");
  const std::size_t y_len = Product(env, batch, out_dim, "dy");
  const Buffer x = In(info, 0, "x", x_len);
  const Buffer weight = In(info, 1, "weight", w_len);
  const Buffer dy = In(info, 2, "dy", y_len);
  const Buffer dx{OptF32(info, 3, "dx", x_len), x_len, "dx"};
  const Buffer d_weight{OptF32(info, 4, "dWeight", w_len), w_len, "dWeight"};
  const Buffer d_bias{OptF32(info, 5, "dBias", out_dim), out_dim, "dBias"};
  // Input by input, then the outputs among themselves: the first clash found names the same
  // pair on every backend.
  for (const Buffer& input : {x, weight, dy}) {
    CheckDisjoint(info, 3, dx, {input});
    CheckDisjoint(info, 4, d_weight, {input});
    CheckDisjoint(info, 5, d_bias, {input});
  }
  CheckDisjoint(info, 4, d_weight, {dx});
  CheckDisjoint(info, 5, d_bias, {dx, d_weight});
  return Backward{batch, in_dim, out_dim, accumulate, x, weight, dy, dx, d_weight, d_bias};
}

}  // namespace dense_args
}  // namespace napi
}  // namespace flowvae
