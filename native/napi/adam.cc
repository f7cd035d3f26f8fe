// Bindings of the adam kernels (native/cpu/adam.cc).
#include "flowvae/adam.h"

#include <algorithm>
#include <string>
#include <vector>

#include "adam_args.h"
#include "args.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

using namespace adam_args;

Napi::Value Step(const Napi::CallbackInfo& info) {
  const FlatStep s = FlatStepArgs(info);
  return Napi::Number::New(info.Env(), adam_step(s.params, s.grads, s.m, s.v, s.n, s.options));
}

// One buffer of a tensor step, for the overlap sweep.
struct Span {
  const float* data;
  std::size_t length;
  bool written;      // params, m and v are written; grads only read
  std::string name;  // "params[3]", "m", …
  Napi::Value value;
};

inline std::uintptr_t Begin(const Span& s) { return reinterpret_cast<std::uintptr_t>(s.data); }
inline std::uintptr_t End(const Span& s) { return Begin(s) + s.length * sizeof(float); }

// Refuses any overlap that involves a written buffer (two gradients may share
// memory). In address order, a buffer overlaps an earlier one exactly when
// it starts before the furthest end seen so far, so remembering the earlier
// buffer that ends furthest (and the written one that does) finds every clash.
void CheckNoWrittenOverlap(const Napi::CallbackInfo& info, const std::vector<Span>& spans) {
  thread_local std::vector<const Span*> order;
  order.clear();
  for (const Span& s : spans)
    if (s.length > 0) order.push_back(&s);
  std::sort(order.begin(), order.end(), [](const Span* a, const Span* b) { return Begin(*a) < Begin(*b); });
  const Span* furthest = nullptr;
  const Span* furthest_written = nullptr;
  for (const Span* s : order) {
    const Span* clash = nullptr;
    if (furthest_written && End(*furthest_written) > Begin(*s))
      clash = furthest_written;
    else if (s->written && furthest && End(*furthest) > Begin(*s))
      clash = furthest;
    if (clash) CheckDisjoint(info, clash->data, clash->length, clash->name, s->data, s->length, s->name, s->value);
    if (!furthest || End(*s) > End(*furthest)) furthest = s;
    if (s->written && (!furthest_written || End(*s) > End(*furthest_written))) furthest_written = s;
  }
}

// A Float32Array element `k` of the JS array `list` (named `name`).
float* TensorAt(const Napi::CallbackInfo& info, const Napi::Array& list, uint32_t k, const char* name,
                std::size_t* length) {
  Napi::Value v = list.Get(k);
  const std::string label = std::string(name) + "[" + std::to_string(k) + "]";
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    ThrowTypeError(info.Env(), Expected("Float32Array", label.c_str(), v));
  Napi::Float32Array a = v.As<Napi::Float32Array>();
  *length = a.ElementLength();
  return *length == 0 ? nullptr : a.Data();
}

// adamStepTensors(params[], grads[], m, v, lr, beta1, beta2, eps, weightDecay, decoupled, step, maxGradNorm)
// Tensor k is params[k] with gradient grads[k] (same length); m and v hold
// the moments of every tensor in order.
Napi::Value StepTensors(const Napi::CallbackInfo& info) {
  Arity(info, 12, "adamStepTensors");
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) ThrowTypeError(env, Expected("array of Float32Array", "params", info[0]));
  if (!info[1].IsArray()) ThrowTypeError(env, Expected("array of Float32Array", "grads", info[1]));
  const Napi::Array params = info[0].As<Napi::Array>(), grads = info[1].As<Napi::Array>();
  if (grads.Length() != params.Length()) {
    ThrowRangeError(
        env,
        Expected("array of " + std::to_string(params.Length()) + " Float32Array (one per params)", "grads", info[1]),
        "ERR_SHAPE");
  }
  // Kept per thread and only grown: a step allocates nothing once warm.
  thread_local std::vector<AdamTensor> tensors;
  thread_local std::vector<Span> spans;
  tensors.clear();
  spans.clear();
  std::size_t total = 0;
  for (uint32_t k = 0; k < params.Length(); ++k) {
    std::size_t np = 0, ng = 0;
    float* p = TensorAt(info, params, k, "params", &np);
    const float* g = TensorAt(info, grads, k, "grads", &ng);
    if (ng != np) {
      const std::string label = "grads[" + std::to_string(k) + "]";
      ThrowRangeError(env, Expected("Float32Array of length " + std::to_string(np), label.c_str(), grads.Get(k)),
                      "ERR_SHAPE");
    }
    tensors.push_back(AdamTensor{p, g, np});
    spans.push_back(Span{p, np, true, "params[" + std::to_string(k) + "]", params.Get(k)});
    spans.push_back(Span{g, ng, false, "grads[" + std::to_string(k) + "]", grads.Get(k)});
    total += np;
  }
  float* m = F32(info, 2, "m", total);
  float* v = F32(info, 3, "v", total);
  spans.push_back(Span{m, total, true, "m", info[2]});
  spans.push_back(Span{v, total, true, "v", info[3]});
  CheckNoWrittenOverlap(info, spans);
  const AdamOptions o = OptionsAt(info, 4);
  return Napi::Number::New(env, adam_step_tensors(tensors.data(), tensors.size(), m, v, o));
}

}  // namespace

void RegisterAdam(Napi::Env env, Napi::Object exports) {
  exports.Set("adamStep", Napi::Function::New(env, Step, "adamStep"));
  exports.Set("adamStepTensors", Napi::Function::New(env, StepTensors, "adamStepTensors"));
}

}  // namespace napi
}  // namespace flowvae
