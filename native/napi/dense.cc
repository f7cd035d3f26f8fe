// Bindings of the dense kernels (native/cpu/dense.cc).
//
// Every argument is checked before any kernel runs, sizes first (array lengths
// are derived from them), then arrays in argument order; a missing argument is
// reported by name like any other bad value. Outputs must not share memory
// with inputs or with each other: the kernels read inputs while writing
// outputs, so overlapping views would silently give wrong results.
#include <cstdint>
#include <new>

#include "args.h"
#include "flowvae/dense.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

// A Float32Array argument as a byte range, for overlap checks.
struct View {
  const char* name;
  const float* data;
  std::size_t length;
};

bool Overlap(const View& x, const View& y) {
  if (x.data == nullptr || y.data == nullptr || x.length == 0 || y.length == 0) return false;
  auto x0 = reinterpret_cast<std::uintptr_t>(x.data), y0 = reinterpret_cast<std::uintptr_t>(y.data);
  return x0 < y0 + y.length * sizeof(float) && y0 < x0 + x.length * sizeof(float);
}

// Throws a RangeError naming `output` when it shares memory with `other`.
void CheckNoOverlap(const Napi::CallbackInfo& info, std::size_t output_index, const View& output, const View& other) {
  if (Overlap(output, other)) {
    ThrowRangeError(info.Env(),
                    Expected(std::string("Float32Array not overlapping \"") + other.name + "\"", output.name,
                             info[output_index]));
  }
}

// Runs a kernel, turning allocation failure of its packing workspace into a JS error.
template <class Fn>
void RunKernel(Napi::Env env, Fn&& fn) {
  try {
    fn();
  } catch (const std::bad_alloc&) {
    ThrowWithCode(Napi::Error::New(env, "Out of memory for the dense kernel workspace"), "ERR_ARG");
  }
}

// denseGemm(transA, transB, m, n, k, alpha, a, b, beta, c)
Napi::Value DenseGemm(const Napi::CallbackInfo& info) {
  bool trans_a = Bool(info, 0, "transA");
  bool trans_b = Bool(info, 1, "transB");
  std::size_t m = Size(info, 2, "m");
  std::size_t n = Size(info, 3, "n");
  std::size_t k = Size(info, 4, "k");
  float alpha = static_cast<float>(Number(info, 5, "alpha"));
  float beta = static_cast<float>(Number(info, 8, "beta"));
  std::size_t a_len = Product(info.Env(), m, k, "a");
  std::size_t b_len = Product(info.Env(), k, n, "b");
  std::size_t c_len = Product(info.Env(), m, n, "c");
  const float* a = F32(info, 6, "a", a_len);
  const float* b = F32(info, 7, "b", b_len);
  float* c = F32(info, 9, "c", c_len);
  View vc{"c", c, c_len};
  CheckNoOverlap(info, 9, vc, View{"a", a, a_len});
  CheckNoOverlap(info, 9, vc, View{"b", b, b_len});
  RunKernel(info.Env(), [&] { sgemm(trans_a, trans_b, m, n, k, alpha, a, b, beta, c); });
  return info.Env().Undefined();
}

// denseForward(x, weight, bias, y, batch, inDim, outDim)
Napi::Value DenseForward(const Napi::CallbackInfo& info) {
  std::size_t batch = Size(info, 4, "batch");
  std::size_t in_dim = Size(info, 5, "inDim");
  std::size_t out_dim = Size(info, 6, "outDim");
  std::size_t x_len = Product(info.Env(), batch, in_dim, "x");
  std::size_t w_len = Product(info.Env(), out_dim, in_dim, "weight");
  std::size_t y_len = Product(info.Env(), batch, out_dim, "y");
  const float* x = F32(info, 0, "x", x_len);
  const float* weight = F32(info, 1, "weight", w_len);
  const float* bias = OptF32(info, 2, "bias", out_dim);
  float* y = F32(info, 3, "y", y_len);
  View vy{"y", y, y_len};
  CheckNoOverlap(info, 3, vy, View{"x", x, x_len});
  CheckNoOverlap(info, 3, vy, View{"weight", weight, w_len});
  CheckNoOverlap(info, 3, vy, View{"bias", bias, bias ? out_dim : 0});
  RunKernel(info.Env(), [&] { dense_forward(x, weight, bias, y, batch, in_dim, out_dim); });
  return info.Env().Undefined();
}

// denseBackward(x, weight, dy, dx, dWeight, dBias, batch, inDim, outDim, accumulate)
Napi::Value DenseBackward(const Napi::CallbackInfo& info) {
  std::size_t batch = Size(info, 6, "batch");
  std::size_t in_dim = Size(info, 7, "inDim");
  std::size_t out_dim = Size(info, 8, "outDim");
  bool accumulate = Bool(info, 9, "accumulate");
  std::size_t x_len = Product(info.Env(), batch, in_dim, "x");
  std::size_t w_len = Product(info.Env(), out_dim, in_dim, "weight");
  std::size_t y_len = Product(info.Env(), batch, out_dim, "dy");
  const float* x = F32(info, 0, "x", x_len);
  const float* weight = F32(info, 1, "weight", w_len);
  const float* dy = F32(info, 2, "dy", y_len);
  float* dx = OptF32(info, 3, "dx", x_len);
  float* d_weight = OptF32(info, 4, "dWeight", w_len);
  float* d_bias = OptF32(info, 5, "dBias", out_dim);
  const View inputs[] = {{"x", x, x_len}, {"weight", weight, w_len}, {"dy", dy, y_len}};
  const View vdx{"dx", dx, dx ? x_len : 0}, vdw{"dWeight", d_weight, d_weight ? w_len : 0},
      vdb{"dBias", d_bias, d_bias ? out_dim : 0};
  for (const View& in : inputs) {
    CheckNoOverlap(info, 3, vdx, in);
    CheckNoOverlap(info, 4, vdw, in);
    CheckNoOverlap(info, 5, vdb, in);
  }
  CheckNoOverlap(info, 4, vdw, vdx);
  CheckNoOverlap(info, 5, vdb, vdx);
  CheckNoOverlap(info, 5, vdb, vdw);
  RunKernel(info.Env(),
            [&] { dense_backward(x, weight, dy, dx, d_weight, d_bias, batch, in_dim, out_dim, accumulate); });
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
