// Bindings of the sylvester kernels (native/cpu/sylvester.cc). Every size is
// re-checked and every array length compared with what the shape implies,
// with the messages of the TypeScript reference (src/backend/reference/sylvester.ts).
#include "flowvae/sylvester.h"

#include <string>

#include "args.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

// Arguments 0..4: variant index, dim, m, layers, householders.
SylvesterShape ShapeArgs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::size_t variant = Size(info, 0, "shape.variant");
  if (variant > 2)
    ThrowRangeError(env, Expected("0 (orthogonal), 1 (householder) or 2 (triangular)", "shape.variant", info[0]));
  SylvesterShape s;
  s.variant = static_cast<SylvesterVariant>(variant);
  s.dim = PositiveSize(info, 1, "shape.dim");
  s.m = PositiveSize(info, 2, "shape.m");
  s.layers = PositiveSize(info, 3, "shape.layers");
  s.householders = Size(info, 4, "shape.householders");
  static const char* const kNames[] = {"orthogonal", "householder", "triangular"};
  const std::string name = kNames[variant];
  if (s.variant == SylvesterVariant::kOrthogonal) {
    if (s.m > s.dim)
      ThrowRangeError(env, Expected("integer between 1 and dim (" + std::to_string(s.dim) + ")", "shape.m", info[2]));
  } else if (s.m != s.dim) {
    ThrowRangeError(env,
                    Expected("dim (" + std::to_string(s.dim) + ") for the " + name + " variant", "shape.m", info[2]));
  }
  if (s.variant == SylvesterVariant::kHouseholder) {
    if (s.householders < 1)
      ThrowRangeError(env, Expected("positive integer for the householder variant", "shape.householders", info[4]));
  } else if (s.householders != 0) {
    ThrowRangeError(env, Expected("0 for the " + name + " variant", "shape.householders", info[4]));
  }
  return s;
}

// Array sizes implied by a shape, each product checked against overflow.
struct Sizes {
  std::size_t set;        // values per parameter set
  std::size_t q_layers;   // orthogonalized Q values per set (all layers)
  std::size_t saved_row;  // saved values per row
};

Sizes ShapeSizes(Napi::Env env, const SylvesterShape& s) {
  const std::size_t mm = Product(env, s.m, s.m, "shape");
  const std::size_t per_layer_raw = s.variant == SylvesterVariant::kOrthogonal ? Product(env, s.dim, s.m, "shape")
                                    : s.variant == SylvesterVariant::kHouseholder
                                        ? Product(env, s.householders, s.dim, "shape")
                                        : 0;
  const std::size_t per_layer = mm + 3 * s.m + per_layer_raw;
  Sizes z;
  z.set = Product(env, s.layers, per_layer, "params");
  z.q_layers =
      s.variant == SylvesterVariant::kTriangular ? 0 : Product(env, s.layers, Product(env, s.dim, s.m, "q"), "q");
  z.saved_row = Product(env, s.layers, s.dim + s.m, "saved");
  return z;
}

// A number in (0, Infinity).
double PositiveNumber(const Napi::CallbackInfo& info, std::size_t i, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) ThrowTypeError(info.Env(), Expected("number in (0, Infinity)", name, v));
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d > 0) || !std::isfinite(d)) ThrowRangeError(info.Env(), Expected("number in (0, Infinity)", name, v));
  return d;
}

// What every sylvester binding reads first: the arity, then the shape
// (arguments 0..4) and the sizes it implies.
struct ShapeCall {
  Napi::Env env;
  SylvesterShape s;
  Sizes z;
};

ShapeCall ReadShape(const Napi::CallbackInfo& info, std::size_t arity, const char* fn) {
  Arity(info, arity, fn);
  const SylvesterShape s = ShapeArgs(info);
  return ShapeCall{info.Env(), s, ShapeSizes(info.Env(), s)};
}

// An array of `sets` parameter sets of `per_set` values each (params, q and their gradients).
float* SetArray(const Napi::CallbackInfo& info, std::size_t i, const char* name, std::size_t sets,
                std::size_t per_set) {
  return F32(info, i, name, Product(info.Env(), sets, per_set, name));
}

// The batch kernels' arguments 5 and 6 (batch, amortized), the parameter
// sets they imply and the values of one [batch, dim] array (named for the
// error when the product overflows).
struct BatchCall {
  std::size_t batch;
  bool amortized;
  std::size_t sets;
  std::size_t values;
};

BatchCall ReadBatch(const Napi::CallbackInfo& info, const ShapeCall& c, const char* values_name) {
  BatchCall b;
  b.batch = PositiveSize(info, 5, "batch");
  b.amortized = Bool(info, 6, "amortized");
  b.sets = b.amortized ? b.batch : 1;
  b.values = Product(c.env, b.batch, c.s.dim, values_name);
  return b;
}

// (shape..., sets, params, q, maxSteps, tolerance) -> worst residual
Napi::Value Orthogonalize(const Napi::CallbackInfo& info) {
  const ShapeCall c = ReadShape(info, 10, "sylvesterOrthogonalize");
  const std::size_t sets = PositiveSize(info, 5, "sets");
  const float* params = SetArray(info, 6, "params", sets, c.z.set);
  float* q = SetArray(info, 7, "q", sets, c.z.q_layers);
  const std::size_t max_steps = SizeBetween(info, 8, "options.maxSteps", 0, kSylvesterMaxIterations);
  const double tol = PositiveNumber(info, 9, "options.tolerance");
  return Napi::Number::New(c.env, sylvester_orthogonalize(c.s, sets, params, q, max_steps, tol));
}

// (shape..., sets, params, gradQ, gradParams, maxSteps, tolerance)
Napi::Value OrthogonalizeBackward(const Napi::CallbackInfo& info) {
  const ShapeCall c = ReadShape(info, 11, "sylvesterOrthogonalizeBackward");
  const std::size_t sets = PositiveSize(info, 5, "sets");
  const float* params = SetArray(info, 6, "params", sets, c.z.set);
  const float* grad_q = SetArray(info, 7, "gradQ", sets, c.z.q_layers);
  float* grad_params = SetArray(info, 8, "gradParams", sets, c.z.set);
  const std::size_t max_steps = SizeBetween(info, 9, "options.maxSteps", 0, kSylvesterMaxIterations);
  const double tol = PositiveNumber(info, 10, "options.tolerance");
  sylvester_orthogonalize_backward(c.s, sets, params, grad_q, grad_params, max_steps, tol);
  return c.env.Undefined();
}

// (shape..., batch, amortized, x, params, q, y, logDet, saved|null)
Napi::Value Forward(const Napi::CallbackInfo& info) {
  const ShapeCall c = ReadShape(info, 13, "sylvesterForward");
  const BatchCall b = ReadBatch(info, c, "x");
  const float* x = F32(info, 7, "x", b.values);
  const float* params = SetArray(info, 8, "params", b.sets, c.z.set);
  const float* q = SetArray(info, 9, "q", b.sets, c.z.q_layers);
  float* y = F32(info, 10, "y", b.values);
  float* log_det = F32(info, 11, "logDet", b.batch);
  float* saved = OptF32(info, 12, "saved", Product(c.env, b.batch, c.z.saved_row, "saved"));
  sylvester_forward(c.s, b.batch, b.amortized, x, params, q, y, log_det, saved);
  return c.env.Undefined();
}

// (shape..., batch, amortized, params, q, saved, gradY, gradLogDet, gradX, gradParams, gradQ)
Napi::Value Backward(const Napi::CallbackInfo& info) {
  const ShapeCall c = ReadShape(info, 15, "sylvesterBackward");
  const BatchCall b = ReadBatch(info, c, "gradY");
  const float* params = SetArray(info, 7, "params", b.sets, c.z.set);
  const float* q = SetArray(info, 8, "q", b.sets, c.z.q_layers);
  const float* saved = SetArray(info, 9, "saved", b.batch, c.z.saved_row);
  const float* grad_y = F32(info, 10, "gradY", b.values);
  const float* grad_log_det = F32(info, 11, "gradLogDet", b.batch);
  float* grad_x = F32(info, 12, "gradX", b.values);
  float* grad_params = SetArray(info, 13, "gradParams", b.sets, c.z.set);
  float* grad_q = SetArray(info, 14, "gradQ", b.sets, c.z.q_layers);
  sylvester_backward(c.s, b.batch, b.amortized, params, q, saved, grad_y, grad_log_det, grad_x, grad_params, grad_q);
  return c.env.Undefined();
}

// (shape..., batch, amortized, y, params, q, x, logDet, maxIterations, tolerance) -> failed rows
Napi::Value Inverse(const Napi::CallbackInfo& info) {
  const ShapeCall c = ReadShape(info, 14, "sylvesterInverse");
  const BatchCall b = ReadBatch(info, c, "y");
  const float* y = F32(info, 7, "y", b.values);
  const float* params = SetArray(info, 8, "params", b.sets, c.z.set);
  const float* q = SetArray(info, 9, "q", b.sets, c.z.q_layers);
  float* x = F32(info, 10, "x", b.values);
  float* log_det = F32(info, 11, "logDet", b.batch);
  const std::size_t max_iterations = SizeBetween(info, 12, "options.maxIterations", 1, kSylvesterMaxIterations);
  const double tol = PositiveNumber(info, 13, "options.tolerance");
  return Napi::Number::New(c.env, static_cast<double>(sylvester_inverse(c.s, b.batch, b.amortized, y, params, q, x,
                                                                        log_det, max_iterations, tol)));
}

}  // namespace

void RegisterSylvester(Napi::Env env, Napi::Object exports) {
  exports.Set("sylvesterOrthogonalize", Napi::Function::New(env, Orthogonalize, "sylvesterOrthogonalize"));
  exports.Set("sylvesterOrthogonalizeBackward",
              Napi::Function::New(env, OrthogonalizeBackward, "sylvesterOrthogonalizeBackward"));
  exports.Set("sylvesterForward", Napi::Function::New(env, Forward, "sylvesterForward"));
  exports.Set("sylvesterBackward", Napi::Function::New(env, Backward, "sylvesterBackward"));
  exports.Set("sylvesterInverse", Napi::Function::New(env, Inverse, "sylvesterInverse"));
}

}  // namespace napi
}  // namespace flowvae
