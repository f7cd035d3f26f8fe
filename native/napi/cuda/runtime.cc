// exports.cuda and its runtime functions: status() (probed once, never
// throws), memoryStats() and releaseCached() of the caching allocator.
#include "flowvae/cuda/runtime.h"

#include "call.h"
#include "register.h"

namespace flowvae {
namespace napi {
namespace {

// { available, reason, device, runtimeVersion, driverVersion }
Napi::Value Status(const Napi::CallbackInfo& info) {
  const cuda::Status& s = cuda::status();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("available", Napi::Boolean::New(info.Env(), s.available));
  o.Set("reason", Napi::String::New(info.Env(), s.reason));
  o.Set("device", Napi::String::New(info.Env(), s.device));
  o.Set("runtimeVersion", Napi::Number::New(info.Env(), s.runtime_version));
  o.Set("driverVersion", Napi::Number::New(info.Env(), s.driver_version));
  return o;
}

// { inUse, cached }: device bytes handed out and held for reuse.
Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("inUse", Napi::Number::New(info.Env(), static_cast<double>(cuda::bytes_in_use())));
  o.Set("cached", Napi::Number::New(info.Env(), static_cast<double>(cuda::bytes_cached())));
  return o;
}

Napi::Value ReleaseCached(const Napi::CallbackInfo& info) {
  cuda_call::Call call("releaseCached");
  cuda::release_cached();
  return info.Env().Undefined();
}

}  // namespace

void RegisterCuda(Napi::Env env, Napi::Object exports) {
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("status", Napi::Function::New(env, Status, "status"));
  cuda.Set("memoryStats", Napi::Function::New(env, MemoryStats, "memoryStats"));
  cuda_call::Export<ReleaseCached>(env, cuda, "releaseCached");
#define FLOWVAE_FAMILY(name, Name, with_cuda) FLOWVAE_IF_CUDA(with_cuda, RegisterCuda##Name(env, cuda);)
#include "../../families.def"
  exports.Set("cuda", cuda);
}

}  // namespace napi
}  // namespace flowvae
