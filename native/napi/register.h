// Every kernel family registers its bindings on the addon exports object.
// One file per family in native/napi/, named as the family; the families
// are listed once, in native/families.def.
#pragma once
#include <napi.h>

namespace flowvae {
namespace napi {

// Register<Name>(env, exports) for every family in native/families.def.
#define FLOWVAE_FAMILY(name, Name, cuda) void Register##Name(Napi::Env env, Napi::Object exports);
#include "../families.def"

}  // namespace napi
}  // namespace flowvae
