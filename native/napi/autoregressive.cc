// Bindings of the autoregressive kernels (native/cpu/autoregressive.cc).
//
// Sizes are checked first (array lengths derive from them), then arrays in
// argument order, each into a local so the first bad argument is the one
// named. Outputs must not share memory with the inputs or with each other
// (a shifted view of ms under y would be read after being written), except
// that maskWeights may mask in place (out === weight, elementwise).
#include <cstdint>

#include "args.h"
#include "flowvae/autoregressive.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

struct View {
  const char* name;
  const void* data;
  std::size_t bytes;
};

bool Overlap(const View& x, const View& y) {
  if (x.data == nullptr || y.data == nullptr || x.bytes == 0 || y.bytes == 0) return false;
  auto x0 = reinterpret_cast<std::uintptr_t>(x.data), y0 = reinterpret_cast<std::uintptr_t>(y.data);
  return x0 < y0 + y.bytes && y0 < x0 + x.bytes;
}

// Throws a RangeError naming the output (argument `index`) when it shares memory with `other`.
void CheckNoOverlap(const Napi::CallbackInfo& info, std::size_t index, const View& output, const View& other) {
  if (Overlap(output, other)) {
    ThrowRangeError(info.Env(), Expected(std::string("Float32Array not overlapping \"") + other.name + "\"",
                                         output.name, info[index]));
  }
}

View F(const char* name, const float* p, std::size_t n) { return View{name, p, n * sizeof(float)}; }

// maskWeights(weight, outDegrees, inDegrees, strict, out, outDim, inDim)
Napi::Value MaskWeights(const Napi::CallbackInfo& info) {
  Arity(info, 7, "autoregressiveMaskWeights");
  const std::size_t out_dim = Size(info, 5, "outDim");
  const std::size_t in_dim = Size(info, 6, "inDim");
  const std::size_t n = Product(info.Env(), out_dim, in_dim, "outDim * inDim");
  const float* weight = F32(info, 0, "weight", n);
  const uint32_t* out_degrees = U32(info, 1, "outDegrees", out_dim);
  const uint32_t* in_degrees = U32(info, 2, "inDegrees", in_dim);
  const bool strict = Bool(info, 3, "strict");
  float* out = F32(info, 4, "out", n);
  // In place (out === weight) is fine; a partial overlap is not.
  if (out != weight) CheckNoOverlap(info, 4, F("out", out, n), F("weight", weight, n));
  mask_weights(weight, out_degrees, in_degrees, strict, out, out_dim, in_dim);
  return info.Env().Undefined();
}

// maskedDenseForward(x, weight, bias | null, outDegrees, inDegrees, strict, maskedWeight, y, batch, inDim, outDim)
Napi::Value MaskedDenseForward(const Napi::CallbackInfo& info) {
  Arity(info, 11, "autoregressiveMaskedDenseForward");
  const std::size_t batch = Size(info, 8, "batch");
  const std::size_t in_dim = Size(info, 9, "inDim");
  const std::size_t out_dim = Size(info, 10, "outDim");
  const std::size_t x_len = Product(info.Env(), batch, in_dim, "x");
  const std::size_t w_len = Product(info.Env(), out_dim, in_dim, "weight");
  const std::size_t y_len = Product(info.Env(), batch, out_dim, "y");
  const float* x = F32(info, 0, "x", x_len);
  const float* weight = F32(info, 1, "weight", w_len);
  const float* bias = OptF32(info, 2, "bias", out_dim);
  const uint32_t* out_degrees = U32(info, 3, "outDegrees", out_dim);
  const uint32_t* in_degrees = U32(info, 4, "inDegrees", in_dim);
  const bool strict = Bool(info, 5, "strict");
  float* masked_weight = F32(info, 6, "maskedWeight", w_len);
  float* y = F32(info, 7, "y", y_len);
  const View vx = F("x", x, x_len), vw = F("weight", weight, w_len), vb = F("bias", bias, out_dim);
  const View vm = F("maskedWeight", masked_weight, w_len), vy = F("y", y, y_len);
  for (const View& in : {vx, vw, vb}) CheckNoOverlap(info, 6, vm, in);
  for (const View& in : {vx, vw, vb, vm}) CheckNoOverlap(info, 7, vy, in);
  masked_dense_forward(x, weight, bias, out_degrees, in_degrees, strict, masked_weight, y, batch, in_dim, out_dim);
  return info.Env().Undefined();
}

// maskedDenseBackward(x, maskedWeight, dy, outDegrees, inDegrees, strict, dx | null, dWeight | null,
//                     dBias | null, batch, inDim, outDim, accumulateDx)
Napi::Value MaskedDenseBackward(const Napi::CallbackInfo& info) {
  Arity(info, 13, "autoregressiveMaskedDenseBackward");
  const std::size_t batch = Size(info, 9, "batch");
  const std::size_t in_dim = Size(info, 10, "inDim");
  const std::size_t out_dim = Size(info, 11, "outDim");
  const std::size_t x_len = Product(info.Env(), batch, in_dim, "x");
  const std::size_t w_len = Product(info.Env(), out_dim, in_dim, "maskedWeight");
  const std::size_t y_len = Product(info.Env(), batch, out_dim, "dy");
  const float* x = F32(info, 0, "x", x_len);
  const float* masked_weight = F32(info, 1, "maskedWeight", w_len);
  const float* dy = F32(info, 2, "dy", y_len);
  const uint32_t* out_degrees = U32(info, 3, "outDegrees", out_dim);
  const uint32_t* in_degrees = U32(info, 4, "inDegrees", in_dim);
  const bool strict = Bool(info, 5, "strict");
  float* dx = OptF32(info, 6, "dx", x_len);
  float* d_weight = OptF32(info, 7, "dWeight", w_len);
  float* d_bias = OptF32(info, 8, "dBias", out_dim);
  const bool accumulate_dx = Bool(info, 12, "accumulateDx");
  const View vdx = F("dx", dx, x_len), vdw = F("dWeight", d_weight, w_len), vdb = F("dBias", d_bias, out_dim);
  for (const View& in : {F("x", x, x_len), F("maskedWeight", masked_weight, w_len), F("dy", dy, y_len)}) {
    CheckNoOverlap(info, 6, vdx, in);
    CheckNoOverlap(info, 7, vdw, in);
    CheckNoOverlap(info, 8, vdb, in);
  }
  CheckNoOverlap(info, 7, vdw, vdx);
  CheckNoOverlap(info, 8, vdb, vdx);
  CheckNoOverlap(info, 8, vdb, vdw);
  masked_dense_backward(x, masked_weight, dy, out_degrees, in_degrees, strict, dx, d_weight, d_bias, batch, in_dim,
                        out_dim, accumulate_dx);
  return info.Env().Undefined();
}

using StepFn = void (*)(const float*, const float*, float*, float*, std::size_t, std::size_t);

// <name>(a, ms, b, logDet, batch, dim): iafForward, iafInverse, mafForward, mafInverse.
template <StepFn kernel>
Napi::Value Step(const Napi::CallbackInfo& info, const char* fn, const char* a_name, const char* b_name) {
  Arity(info, 6, fn);
  const std::size_t batch = Size(info, 4, "batch");
  const std::size_t dim = Size(info, 5, "dim");
  const std::size_t n = Product(info.Env(), batch, dim, "batch * dim");
  const std::size_t n2 = Product(info.Env(), n, 2, "ms");
  const float* a = F32(info, 0, a_name, n);
  const float* ms = F32(info, 1, "ms", n2);
  float* b = F32(info, 2, b_name, n);
  float* log_det = F32(info, 3, "logDet", batch);
  const View va = F(a_name, a, n), vms = F("ms", ms, n2), vb = F(b_name, b, n), vld = F("logDet", log_det, batch);
  CheckNoOverlap(info, 2, vb, va);
  CheckNoOverlap(info, 2, vb, vms);
  CheckNoOverlap(info, 3, vld, va);
  CheckNoOverlap(info, 3, vld, vms);
  CheckNoOverlap(info, 3, vld, vb);
  kernel(a, ms, b, log_det, batch, dim);
  return info.Env().Undefined();
}

using StepBackwardFn = void (*)(const float*, const float*, const float*, const float*, float*, float*, std::size_t,
                                std::size_t);

// <name>(a, ms, dOut, dLogDet, dIn, dms, batch, dim): iafBackward, mafBackward.
template <StepBackwardFn kernel>
Napi::Value StepBackward(const Napi::CallbackInfo& info, const char* fn, const char* a_name, const char* dout_name,
                         const char* din_name) {
  Arity(info, 8, fn);
  const std::size_t batch = Size(info, 6, "batch");
  const std::size_t dim = Size(info, 7, "dim");
  const std::size_t n = Product(info.Env(), batch, dim, "batch * dim");
  const std::size_t n2 = Product(info.Env(), n, 2, "ms");
  const float* a = F32(info, 0, a_name, n);
  const float* ms = F32(info, 1, "ms", n2);
  const float* d_out = F32(info, 2, dout_name, n);
  const float* d_log_det = F32(info, 3, "dLogDet", batch);
  float* d_in = F32(info, 4, din_name, n);
  float* dms = F32(info, 5, "dms", n2);
  const View inputs[] = {F(a_name, a, n), F("ms", ms, n2), F(dout_name, d_out, n), F("dLogDet", d_log_det, batch)};
  const View vdin = F(din_name, d_in, n), vdms = F("dms", dms, n2);
  for (const View& in : inputs) {
    CheckNoOverlap(info, 4, vdin, in);
    CheckNoOverlap(info, 5, vdms, in);
  }
  CheckNoOverlap(info, 5, vdms, vdin);
  kernel(a, ms, d_out, d_log_det, d_in, dms, batch, dim);
  return info.Env().Undefined();
}

// The IAF kernels take a SIMD level (for the kernel tests); the addon runs the best one.
void IafForwardBest(const float* z, const float* ms, float* y, float* log_det, std::size_t batch, std::size_t dim) {
  iaf_forward(z, ms, y, log_det, batch, dim);
}
void IafBackwardBest(const float* z, const float* ms, const float* dy, const float* d_log_det, float* dz, float* dms,
                     std::size_t batch, std::size_t dim) {
  iaf_backward(z, ms, dy, d_log_det, dz, dms, batch, dim);
}

Napi::Value IafForward(const Napi::CallbackInfo& info) {
  return Step<IafForwardBest>(info, "autoregressiveIafForward", "z", "y");
}
Napi::Value IafInverse(const Napi::CallbackInfo& info) {
  return Step<iaf_inverse>(info, "autoregressiveIafInverse", "y", "z");
}
Napi::Value MafForward(const Napi::CallbackInfo& info) {
  return Step<maf_forward>(info, "autoregressiveMafForward", "x", "u");
}
Napi::Value MafInverse(const Napi::CallbackInfo& info) {
  return Step<maf_inverse>(info, "autoregressiveMafInverse", "u", "x");
}
Napi::Value IafBackward(const Napi::CallbackInfo& info) {
  return StepBackward<IafBackwardBest>(info, "autoregressiveIafBackward", "z", "dy", "dz");
}
Napi::Value MafBackward(const Napi::CallbackInfo& info) {
  return StepBackward<maf_backward>(info, "autoregressiveMafBackward", "x", "du", "dx");
}

}  // namespace

void RegisterAutoregressive(Napi::Env env, Napi::Object exports) {
  exports.Set("autoregressiveMaskWeights", Napi::Function::New(env, MaskWeights, "autoregressiveMaskWeights"));
  exports.Set("autoregressiveMaskedDenseForward",
              Napi::Function::New(env, MaskedDenseForward, "autoregressiveMaskedDenseForward"));
  exports.Set("autoregressiveMaskedDenseBackward",
              Napi::Function::New(env, MaskedDenseBackward, "autoregressiveMaskedDenseBackward"));
  exports.Set("autoregressiveIafForward", Napi::Function::New(env, IafForward, "autoregressiveIafForward"));
  exports.Set("autoregressiveIafBackward", Napi::Function::New(env, IafBackward, "autoregressiveIafBackward"));
  exports.Set("autoregressiveIafInverse", Napi::Function::New(env, IafInverse, "autoregressiveIafInverse"));
  exports.Set("autoregressiveMafForward", Napi::Function::New(env, MafForward, "autoregressiveMafForward"));
  exports.Set("autoregressiveMafBackward", Napi::Function::New(env, MafBackward, "autoregressiveMafBackward"));
  exports.Set("autoregressiveMafInverse", Napi::Function::New(env, MafInverse, "autoregressiveMafInverse"));
}

}  // namespace napi
}  // namespace flowvae
