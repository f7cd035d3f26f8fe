// The cuda bindings (this directory) live on `exports.cuda`, one object whose
// kernel functions have the names and arguments of the cpu bindings
// (`addon.cuda.planarForward` ↔ `addon.planarForward`), so the same checks
// and messages apply. Built only with CUDA (CMakeLists.txt); binding.gyp
// never compiles this directory.
#pragma once
#include <napi.h>

namespace flowvae {
namespace napi {

// Adds exports.cuda: status(), memoryStats(), releaseCached() and the kernels.
void RegisterCuda(Napi::Env env, Napi::Object exports);

// One per family, each in native/napi/cuda/<family>.cc, adding to `cuda`.
void RegisterCudaDense(Napi::Env env, Napi::Object cuda);
void RegisterCudaElementwise(Napi::Env env, Napi::Object cuda);
void RegisterCudaRng(Napi::Env env, Napi::Object cuda);
void RegisterCudaAdam(Napi::Env env, Napi::Object cuda);
void RegisterCudaGaussian(Napi::Env env, Napi::Object cuda);
void RegisterCudaLikelihood(Napi::Env env, Napi::Object cuda);
void RegisterCudaPlanar(Napi::Env env, Napi::Object cuda);
void RegisterCudaRadial(Napi::Env env, Napi::Object cuda);
void RegisterCudaLstm(Napi::Env env, Napi::Object cuda);

}  // namespace napi
}  // namespace flowvae
