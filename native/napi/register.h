// Every kernel family registers its bindings on the addon exports object.
// One file per family in native/napi/, named as the family.
#pragma once
#include <napi.h>

namespace flowvae {
namespace napi {

void RegisterDense(Napi::Env env, Napi::Object exports);
void RegisterElementwise(Napi::Env env, Napi::Object exports);
void RegisterRng(Napi::Env env, Napi::Object exports);
void RegisterAdam(Napi::Env env, Napi::Object exports);
void RegisterPlanar(Napi::Env env, Napi::Object exports);
void RegisterRadial(Napi::Env env, Napi::Object exports);
void RegisterSylvester(Napi::Env env, Napi::Object exports);
void RegisterAutoregressive(Napi::Env env, Napi::Object exports);
void RegisterCoupling(Napi::Env env, Napi::Object exports);
void RegisterSpline(Napi::Env env, Napi::Object exports);
void RegisterGlow(Napi::Env env, Napi::Object exports);
void RegisterResidual(Napi::Env env, Napi::Object exports);
void RegisterGaussian(Napi::Env env, Napi::Object exports);
void RegisterLikelihood(Napi::Env env, Napi::Object exports);
void RegisterLstm(Napi::Env env, Napi::Object exports);

}  // namespace napi
}  // namespace flowvae
