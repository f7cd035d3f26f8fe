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

// One per family with a cuda implementation (WITH_CUDA in native/families.def),
// each in native/napi/cuda/<family>.cc, adding to `cuda`.
#define FLOWVAE_FAMILY(name, Name, with_cuda) \
  FLOWVAE_IF_CUDA(with_cuda, void RegisterCuda##Name(Napi::Env env, Napi::Object cuda);)
#include "../../families.def"

}  // namespace napi
}  // namespace flowvae
