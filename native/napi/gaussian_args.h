// Argument checks of the diagonal Gaussian bindings, shared by the cpu
// (napi/gaussian.cc) and cuda (napi/cuda/gaussian.cc) bindings so both refuse
// the same things with the same messages. Each reads one call's arguments:
// arity, then (batch, dim), then the arrays in argument order.
#pragma once
#include <napi.h>

#include "args.h"
#include "flow_args.h"

namespace flowvae {
namespace napi {
namespace gaussian_args {

struct SampleDiag {
  const float* mu;
  const float* logvar;
  const float* eps;
  float* z;
  float* logq;
  std::size_t batch, dim, n;  // n = batch * dim
};

// gaussianSampleDiag(mu, logvar, eps, z, logq, batch, dim)
inline SampleDiag SampleDiagArgs(const Napi::CallbackInfo& info) {
  Arity(info, 7, "gaussianSampleDiag");
  SampleDiag a{};
  a.n = RowShape(info, 5, &a.batch, &a.dim);
  const Buffer b_mu = In(info, 0, "mu", a.n);
  a.mu = b_mu.data;
  const Buffer b_logvar = In(info, 1, "logvar", a.n);
  a.logvar = b_logvar.data;
  const Buffer b_eps = In(info, 2, "eps", a.n);
  a.eps = b_eps.data;
  const Buffer b_z = Out(info, 3, "z", a.n, {b_mu, b_logvar, b_eps});
  a.z = b_z.data;
  const Buffer b_logq = Out(info, 4, "logq", a.batch, {b_mu, b_logvar, b_eps, b_z});
  a.logq = b_logq.data;
  return a;
}

struct SampleDiagBackward {
  const float* logvar;
  const float* eps;
  const float* dz;
  const float* d_logq;
  float* d_mu;
  float* d_logvar;
  std::size_t batch, dim, n;
};

// gaussianSampleDiagBackward(logvar, eps, dz, dLogq, dMu, dLogvar, batch, dim)
inline SampleDiagBackward SampleDiagBackwardArgs(const Napi::CallbackInfo& info) {
  Arity(info, 8, "gaussianSampleDiagBackward");
  SampleDiagBackward a{};
  a.n = RowShape(info, 6, &a.batch, &a.dim);
  const Buffer b_logvar = In(info, 0, "logvar", a.n);
  a.logvar = b_logvar.data;
  const Buffer b_eps = In(info, 1, "eps", a.n);
  a.eps = b_eps.data;
  const Buffer b_dz = In(info, 2, "dz", a.n);
  a.dz = b_dz.data;
  const Buffer b_d_logq = In(info, 3, "dLogq", a.batch);
  a.d_logq = b_d_logq.data;
  const Buffer b_d_mu = Out(info, 4, "dMu", a.n, {b_logvar, b_eps, b_dz, b_d_logq});
  a.d_mu = b_d_mu.data;
  const Buffer b_d_logvar = Out(info, 5, "dLogvar", a.n, {b_logvar, b_eps, b_dz, b_d_logq, b_d_mu});
  a.d_logvar = b_d_logvar.data;
  return a;
}

struct LogStandard {
  const float* x;
  float* out;
  std::size_t batch, dim, n;
};

// gaussianLogStandard(x, out, batch, dim)
inline LogStandard LogStandardArgs(const Napi::CallbackInfo& info) {
  Arity(info, 4, "gaussianLogStandard");
  LogStandard a{};
  a.n = RowShape(info, 2, &a.batch, &a.dim);
  const Buffer b_x = In(info, 0, "x", a.n);
  a.x = b_x.data;
  const Buffer b_out = Out(info, 1, "out", a.batch, {b_x});
  a.out = b_out.data;
  return a;
}

struct LogStandardBackward {
  const float* x;
  const float* d_out;
  float* dx;
  std::size_t batch, dim, n;
};

// gaussianLogStandardBackward(x, dOut, dx, batch, dim)
inline LogStandardBackward LogStandardBackwardArgs(const Napi::CallbackInfo& info) {
  Arity(info, 5, "gaussianLogStandardBackward");
  LogStandardBackward a{};
  a.n = RowShape(info, 3, &a.batch, &a.dim);
  const Buffer b_x = In(info, 0, "x", a.n);
  a.x = b_x.data;
  const Buffer b_d_out = In(info, 1, "dOut", a.batch);
  a.d_out = b_d_out.data;
  const Buffer b_dx = Out(info, 2, "dx", a.n, {b_x, b_d_out});
  a.dx = b_dx.data;
  return a;
}

struct KlStandard {
  const float* mu;
  const float* logvar;
  float* out;
  std::size_t batch, dim, n;
};

// gaussianKlStandard(mu, logvar, out, batch, dim)
inline KlStandard KlStandardArgs(const Napi::CallbackInfo& info) {
  Arity(info, 5, "gaussianKlStandard");
  KlStandard a{};
  a.n = RowShape(info, 3, &a.batch, &a.dim);
  const Buffer b_mu = In(info, 0, "mu", a.n);
  a.mu = b_mu.data;
  const Buffer b_logvar = In(info, 1, "logvar", a.n);
  a.logvar = b_logvar.data;
  const Buffer b_out = Out(info, 2, "out", a.batch, {b_mu, b_logvar});
  a.out = b_out.data;
  return a;
}

struct KlStandardBackward {
  const float* mu;
  const float* logvar;
  const float* d_out;
  float* d_mu;
  float* d_logvar;
  std::size_t batch, dim, n;
};

// gaussianKlStandardBackward(mu, logvar, dOut, dMu, dLogvar, batch, dim)
inline KlStandardBackward KlStandardBackwardArgs(const Napi::CallbackInfo& info) {
  Arity(info, 7, "gaussianKlStandardBackward");
  KlStandardBackward a{};
  a.n = RowShape(info, 5, &a.batch, &a.dim);
  const Buffer b_mu = In(info, 0, "mu", a.n);
  a.mu = b_mu.data;
  const Buffer b_logvar = In(info, 1, "logvar", a.n);
  a.logvar = b_logvar.data;
  const Buffer b_d_out = In(info, 2, "dOut", a.batch);
  a.d_out = b_d_out.data;
  const Buffer b_d_mu = Out(info, 3, "dMu", a.n, {b_mu, b_logvar, b_d_out});
  a.d_mu = b_d_mu.data;
  const Buffer b_d_logvar = Out(info, 4, "dLogvar", a.n, {b_mu, b_logvar, b_d_out, b_d_mu});
  a.d_logvar = b_d_logvar.data;
  return a;
}

}  // namespace gaussian_args
}  // namespace napi
}  // namespace flowvae
