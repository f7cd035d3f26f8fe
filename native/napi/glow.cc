// Bindings of the glow kernels (native/cpu/glow.cc).
//
// Sizes are read first (the array lengths derive from them), then the arrays
// in argument order, each into a local so the first bad argument is the one
// named. Outputs must not share memory with any other argument. A permutation
// must hold each of 0..dim−1 exactly once: an index out of range would read
// or write outside a row, and a repeated one would leave a column unwritten.
#include <cstdint>
#include <string>
#include <vector>

#include "args.h"
#include "flow_args.h"
#include "flowvae/glow.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

const uint32_t* Permutation(const Napi::CallbackInfo& info, std::size_t i, const char* name, std::size_t dim) {
  const uint32_t* perm = U32(info, i, name, dim);
  thread_local std::vector<unsigned char> seen;
  seen.assign(dim, 0);
  for (std::size_t j = 0; j < dim; ++j) {
    const uint32_t k = perm[j];
    if (k >= dim || seen[k]) {
      ThrowRangeError(info.Env(), Expected("permutation of 0.." + std::to_string(dim - 1) +
                                               " as a Uint32Array of length " + std::to_string(dim),
                                           name, info[i]));
    }
    seen[k] = 1;
  }
  return perm;
}

// glowAffineForward(x, logScale, shift, y, logDet, batch, dim)
// glowAffineInverse(y, logScale, shift, x, logDet, batch, dim)
template <void (*kernel)(const float*, const float*, const float*, float*, float*, std::size_t, std::size_t)>
Napi::Value AffineMap(const Napi::CallbackInfo& info, const char* fn, const char* in_name, const char* out_name) {
  Arity(info, 7, fn);
  std::size_t batch = 0, dim = 0;
  const std::size_t n = RowShape(info, 5, &batch, &dim);
  const Buffer in = In(info, 0, in_name, n);
  const Buffer log_scale = In(info, 1, "logScale", dim);
  const Buffer shift = In(info, 2, "shift", dim);
  const Buffer out = Out(info, 3, out_name, n, {in, log_scale, shift});
  const Buffer log_det = Out(info, 4, "logDet", batch, {in, log_scale, shift, out});
  kernel(in.data, log_scale.data, shift.data, out.data, log_det.data, batch, dim);
  return info.Env().Undefined();
}

Napi::Value AffineForward(const Napi::CallbackInfo& info) {
  return AffineMap<glow_affine_forward>(info, "glowAffineForward", "x", "y");
}

Napi::Value AffineInverse(const Napi::CallbackInfo& info) {
  return AffineMap<glow_affine_inverse>(info, "glowAffineInverse", "y", "x");
}

// glowAffineBackward(x, logScale, dy, dLogDet, dx, dLogScale, dShift, batch, dim)
Napi::Value AffineBackward(const Napi::CallbackInfo& info) {
  Arity(info, 9, "glowAffineBackward");
  std::size_t batch = 0, dim = 0;
  const std::size_t n = RowShape(info, 7, &batch, &dim);
  const Buffer x = In(info, 0, "x", n);
  const Buffer log_scale = In(info, 1, "logScale", dim);
  const Buffer dy = In(info, 2, "dy", n);
  const Buffer d_log_det = In(info, 3, "dLogDet", batch);
  const Buffer dx = Out(info, 4, "dx", n, {x, log_scale, dy, d_log_det});
  const Buffer d_log_scale = Out(info, 5, "dLogScale", dim, {x, log_scale, dy, d_log_det, dx});
  const Buffer d_shift = Out(info, 6, "dShift", dim, {x, log_scale, dy, d_log_det, dx, d_log_scale});
  glow_affine_backward(x.data, log_scale.data, dy.data, d_log_det.data, dx.data, d_log_scale.data, d_shift.data, batch,
                       dim);
  return info.Env().Undefined();
}

// glowPermuteColumns(x, perm, y, batch, dim) / glowUnpermuteColumns(y, perm, x, batch, dim)
template <void (*kernel)(const float*, const uint32_t*, float*, std::size_t, std::size_t)>
Napi::Value Permute(const Napi::CallbackInfo& info, const char* fn, const char* in_name, const char* out_name) {
  Arity(info, 5, fn);
  std::size_t batch = 0, dim = 0;
  const std::size_t n = RowShape(info, 3, &batch, &dim);
  const Buffer in = In(info, 0, in_name, n);
  const uint32_t* perm = Permutation(info, 1, "perm", dim);
  const Buffer out = Out(info, 2, out_name, n, {in});
  kernel(in.data, perm, out.data, batch, dim);
  return info.Env().Undefined();
}

Napi::Value PermuteColumns(const Napi::CallbackInfo& info) {
  return Permute<glow_permute_columns>(info, "glowPermuteColumns", "x", "y");
}

Napi::Value UnpermuteColumns(const Napi::CallbackInfo& info) {
  return Permute<glow_unpermute_columns>(info, "glowUnpermuteColumns", "y", "x");
}

}  // namespace

void RegisterGlow(Napi::Env env, Napi::Object exports) {
  exports.Set("glowAffineForward", Napi::Function::New(env, AffineForward, "glowAffineForward"));
  exports.Set("glowAffineInverse", Napi::Function::New(env, AffineInverse, "glowAffineInverse"));
  exports.Set("glowAffineBackward", Napi::Function::New(env, AffineBackward, "glowAffineBackward"));
  exports.Set("glowPermuteColumns", Napi::Function::New(env, PermuteColumns, "glowPermuteColumns"));
  exports.Set("glowUnpermuteColumns", Napi::Function::New(env, UnpermuteColumns, "glowUnpermuteColumns"));
}

}  // namespace napi
}  // namespace flowvae
