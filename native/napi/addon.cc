// flowvae native addon entry point. Only plain data crosses this boundary:
// typed arrays (zero copy; the caller allocates outputs) and numbers.
#include <napi.h>

#include "args.h"
#include "flowvae/cpu_features.h"
#include "flowvae/parallel.h"
#include "register.h"
#ifdef FLOWVAE_WITH_CUDA
#include "cuda/register.h"  // exports.cuda (cmake-js builds with CUDA only)
#endif

namespace flowvae {
namespace napi {
namespace {

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  Arity(info, 1, "setNumThreads");
  std::size_t n = PositiveSize(info, 0, "n");
  if (n > 1024) ThrowRangeError(info.Env(), Expected("integer between 1 and 1024", "n", info[0]));
  set_num_threads(static_cast<int>(n));
  return info.Env().Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), num_threads()); }

Napi::Value SimdLevel(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), simd_level_name(simd_level()));
}

Napi::Value LastLevelCacheBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(last_level_cache_bytes()));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads, "setNumThreads"));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads, "getNumThreads"));
  exports.Set("simdLevel", Napi::Function::New(env, SimdLevel, "simdLevel"));
  exports.Set("lastLevelCacheBytes", Napi::Function::New(env, LastLevelCacheBytes, "lastLevelCacheBytes"));
  exports.Set("abiVersion", Napi::Number::New(env, 1));
#define FLOWVAE_FAMILY(name, Name, cuda) Register##Name(env, exports);
#include "../families.def"
#ifdef FLOWVAE_WITH_CUDA
  RegisterCuda(env, exports);
#endif
  return exports;
}

}  // namespace
}  // namespace napi
}  // namespace flowvae

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return flowvae::napi::Init(env, exports); }

NODE_API_MODULE(flowvae, InitAddon)
