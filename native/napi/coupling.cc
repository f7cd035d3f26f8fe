// Bindings of the coupling kernels (native/cpu/coupling.cc).
//
// Sizes are checked first (array lengths derive from them; the transformed
// columns [offset, offset + width) must lie inside the rows), then arrays in
// argument order, each into a local so the first bad argument is the one
// named. Outputs must not share memory with any other argument.
#include "args.h"
#include "flow_args.h"
#include "flowvae/coupling.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

struct Columns {
  std::size_t batch, dim, offset, width;
  std::size_t values;  // batch·dim
};

// Reads (batch, dim, offset, width) from arguments at..at+3, with offset + width ≤ dim.
Columns ReadColumns(const Napi::CallbackInfo& info, std::size_t at) {
  Columns c{};
  c.batch = Size(info, at, "batch");
  c.dim = Size(info, at + 1, "dim");
  c.offset = Size(info, at + 2, "offset");
  c.width = Size(info, at + 3, "width");
  if (c.width > c.dim)
    ThrowRangeError(info.Env(), Expected("integer in [0, " + std::to_string(c.dim) + "]", "width", info[at + 3]));
  if (c.offset > c.dim - c.width) {
    ThrowRangeError(info.Env(),
                    Expected("integer in [0, " + std::to_string(c.dim - c.width) + "]", "offset", info[at + 2]));
  }
  c.values = Product(info.Env(), c.batch, c.dim, "batch * dim");
  return c;
}

// A context input/output: required when context_dim > 0, else null or empty.
Buffer Context(const Napi::CallbackInfo& info, std::size_t i, const char* name, std::size_t length,
               std::size_t context_dim) {
  return Buffer{context_dim > 0 ? F32(info, i, name, length) : OptF32(info, i, name, 0), length, name};
}

// gather(x, context, out, batch, dim, offset, width, contextDim)
Napi::Value Gather(const Napi::CallbackInfo& info) {
  Arity(info, 8, "couplingGather");
  const Columns c = ReadColumns(info, 3);
  const std::size_t context_dim = Size(info, 7, "contextDim");
  const std::size_t contexts = Product(info.Env(), c.batch, context_dim, "batch * contextDim");
  const std::size_t out_len = Product(info.Env(), c.batch, c.width + context_dim, "out");
  const Buffer x = In(info, 0, "x", c.values);
  const Buffer context = Context(info, 1, "context", contexts, context_dim);
  const Buffer out = Out(info, 2, "out", out_len, {x, context});
  coupling_gather(x.data, context.data, out.data, c.batch, c.dim, c.offset, c.width, context_dim);
  return info.Env().Undefined();
}

// scatterAdd(dIn, dx, dContext, batch, dim, offset, width, contextDim)
Napi::Value ScatterAdd(const Napi::CallbackInfo& info) {
  Arity(info, 8, "couplingScatterAdd");
  const Columns c = ReadColumns(info, 3);
  const std::size_t context_dim = Size(info, 7, "contextDim");
  const std::size_t contexts = Product(info.Env(), c.batch, context_dim, "batch * contextDim");
  const std::size_t in_len = Product(info.Env(), c.batch, c.width + context_dim, "dIn");
  const Buffer d_in = In(info, 0, "dIn", in_len);
  const Buffer dx = Out(info, 1, "dx", c.values, {d_in});
  const Buffer d_context = Context(info, 2, "dContext", contexts, context_dim);
  CheckDisjoint(info, 2, d_context, {d_in, dx});
  coupling_scatter_add(d_in.data, dx.data, d_context.data, c.batch, c.dim, c.offset, c.width, context_dim);
  return info.Env().Undefined();
}

using AffineFn = void (*)(const float*, const float*, const float*, float*, float*, std::size_t, std::size_t,
                          std::size_t, std::size_t);

// affineForward(x, h, scale, y, logDet, batch, dim, offset, width) and
// affineInverse(y, h, scale, x, logDet, ...).
template <AffineFn kKernel>
Napi::Value Affine(const Napi::CallbackInfo& info, const char* fn, const char* in_name, const char* out_name) {
  Arity(info, 9, fn);
  const Columns c = ReadColumns(info, 5);
  const std::size_t hs = Product(info.Env(), c.batch, 2 * c.width, "h");
  const Buffer in = In(info, 0, in_name, c.values);
  const Buffer h = In(info, 1, "h", hs);
  const Buffer scale = In(info, 2, "scale", c.width);
  const Buffer out = Out(info, 3, out_name, c.values, {in, h, scale});
  const Buffer log_det = Out(info, 4, "logDet", c.batch, {in, h, scale, out});
  kKernel(in.data, h.data, scale.data, out.data, log_det.data, c.batch, c.dim, c.offset, c.width);
  return info.Env().Undefined();
}

Napi::Value AffineForward(const Napi::CallbackInfo& info) {
  return Affine<coupling_affine_forward>(info, "couplingAffineForward", "x", "y");
}
Napi::Value AffineInverse(const Napi::CallbackInfo& info) {
  return Affine<coupling_affine_inverse>(info, "couplingAffineInverse", "y", "x");
}

// affineBackward(x, h, scale, dy, dLogDet, dx, dh, dScale, batch, dim, offset, width)
Napi::Value AffineBackward(const Napi::CallbackInfo& info) {
  Arity(info, 12, "couplingAffineBackward");
  const Columns c = ReadColumns(info, 8);
  const std::size_t hs = Product(info.Env(), c.batch, 2 * c.width, "h");
  const Buffer x = In(info, 0, "x", c.values);
  const Buffer h = In(info, 1, "h", hs);
  const Buffer scale = In(info, 2, "scale", c.width);
  const Buffer dy = In(info, 3, "dy", c.values);
  const Buffer d_log_det = In(info, 4, "dLogDet", c.batch);
  const Buffer dx = Out(info, 5, "dx", c.values, {x, h, scale, dy, d_log_det});
  const Buffer dh = Out(info, 6, "dh", hs, {x, h, scale, dy, d_log_det, dx});
  const Buffer d_scale = Out(info, 7, "dScale", c.width, {x, h, scale, dy, d_log_det, dx, dh});
  coupling_affine_backward(x.data, h.data, scale.data, dy.data, d_log_det.data, dx.data, dh.data, d_scale.data, c.batch,
                           c.dim, c.offset, c.width);
  return info.Env().Undefined();
}

using AdditiveFn = void (*)(const float*, const float*, float*, std::size_t, std::size_t, std::size_t, std::size_t);

// additiveForward(x, h, y, batch, dim, offset, width) and additiveInverse(y, h, x, ...).
template <AdditiveFn kKernel>
Napi::Value Additive(const Napi::CallbackInfo& info, const char* fn, const char* in_name, const char* out_name) {
  Arity(info, 7, fn);
  const Columns c = ReadColumns(info, 3);
  const std::size_t hs = Product(info.Env(), c.batch, c.width, "h");
  const Buffer in = In(info, 0, in_name, c.values);
  const Buffer h = In(info, 1, "h", hs);
  const Buffer out = Out(info, 2, out_name, c.values, {in, h});
  kKernel(in.data, h.data, out.data, c.batch, c.dim, c.offset, c.width);
  return info.Env().Undefined();
}

Napi::Value AdditiveForward(const Napi::CallbackInfo& info) {
  return Additive<coupling_additive_forward>(info, "couplingAdditiveForward", "x", "y");
}
Napi::Value AdditiveInverse(const Napi::CallbackInfo& info) {
  return Additive<coupling_additive_inverse>(info, "couplingAdditiveInverse", "y", "x");
}

// additiveBackward(dy, dx, dh, batch, dim, offset, width)
Napi::Value AdditiveBackward(const Napi::CallbackInfo& info) {
  Arity(info, 7, "couplingAdditiveBackward");
  const Columns c = ReadColumns(info, 3);
  const std::size_t hs = Product(info.Env(), c.batch, c.width, "dh");
  const Buffer dy = In(info, 0, "dy", c.values);
  const Buffer dx = Out(info, 1, "dx", c.values, {dy});
  const Buffer dh = Out(info, 2, "dh", hs, {dy, dx});
  coupling_additive_backward(dy.data, dx.data, dh.data, c.batch, c.dim, c.offset, c.width);
  return info.Env().Undefined();
}

using ScaleFn = void (*)(const float*, const float*, float*, float*, std::size_t, std::size_t);

// scaleForward(x, logScale, y, logDet, batch, dim) and scaleInverse(y, logScale, x, logDet, ...).
template <ScaleFn kKernel>
Napi::Value Scale(const Napi::CallbackInfo& info, const char* fn, const char* in_name, const char* out_name) {
  Arity(info, 6, fn);
  std::size_t batch = 0, dim = 0;
  const std::size_t n = RowShape(info, 4, &batch, &dim);
  const Buffer in = In(info, 0, in_name, n);
  const Buffer log_scale = In(info, 1, "logScale", dim);
  const Buffer out = Out(info, 2, out_name, n, {in, log_scale});
  const Buffer log_det = Out(info, 3, "logDet", batch, {in, log_scale, out});
  kKernel(in.data, log_scale.data, out.data, log_det.data, batch, dim);
  return info.Env().Undefined();
}

Napi::Value ScaleForward(const Napi::CallbackInfo& info) {
  return Scale<coupling_scale_forward>(info, "couplingScaleForward", "x", "y");
}
Napi::Value ScaleInverse(const Napi::CallbackInfo& info) {
  return Scale<coupling_scale_inverse>(info, "couplingScaleInverse", "y", "x");
}

// scaleBackward(x, logScale, dy, dLogDet, dx, dLogScale, batch, dim)
Napi::Value ScaleBackward(const Napi::CallbackInfo& info) {
  Arity(info, 8, "couplingScaleBackward");
  std::size_t batch = 0, dim = 0;
  const std::size_t n = RowShape(info, 6, &batch, &dim);
  const Buffer x = In(info, 0, "x", n);
  const Buffer log_scale = In(info, 1, "logScale", dim);
  const Buffer dy = In(info, 2, "dy", n);
  const Buffer d_log_det = In(info, 3, "dLogDet", batch);
  const Buffer dx = Out(info, 4, "dx", n, {x, log_scale, dy, d_log_det});
  const Buffer d_log_scale = Out(info, 5, "dLogScale", dim, {x, log_scale, dy, d_log_det, dx});
  coupling_scale_backward(x.data, log_scale.data, dy.data, d_log_det.data, dx.data, d_log_scale.data, batch, dim);
  return info.Env().Undefined();
}

}  // namespace

void RegisterCoupling(Napi::Env env, Napi::Object exports) {
  exports.Set("couplingGather", Napi::Function::New(env, Gather, "couplingGather"));
  exports.Set("couplingScatterAdd", Napi::Function::New(env, ScatterAdd, "couplingScatterAdd"));
  exports.Set("couplingAffineForward", Napi::Function::New(env, AffineForward, "couplingAffineForward"));
  exports.Set("couplingAffineInverse", Napi::Function::New(env, AffineInverse, "couplingAffineInverse"));
  exports.Set("couplingAffineBackward", Napi::Function::New(env, AffineBackward, "couplingAffineBackward"));
  exports.Set("couplingAdditiveForward", Napi::Function::New(env, AdditiveForward, "couplingAdditiveForward"));
  exports.Set("couplingAdditiveInverse", Napi::Function::New(env, AdditiveInverse, "couplingAdditiveInverse"));
  exports.Set("couplingAdditiveBackward", Napi::Function::New(env, AdditiveBackward, "couplingAdditiveBackward"));
  exports.Set("couplingScaleForward", Napi::Function::New(env, ScaleForward, "couplingScaleForward"));
  exports.Set("couplingScaleInverse", Napi::Function::New(env, ScaleInverse, "couplingScaleInverse"));
  exports.Set("couplingScaleBackward", Napi::Function::New(env, ScaleBackward, "couplingScaleBackward"));
}

}  // namespace napi
}  // namespace flowvae
