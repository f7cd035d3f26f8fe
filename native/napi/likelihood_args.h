// Argument checks of the observation log-likelihood bindings, shared by the
// cpu (napi/likelihood.cc) and cuda (napi/cuda/likelihood.cc) bindings so both
// refuse the same things with the same messages. Each reads one call's
// arguments: arity, then (batch, dim), then the arrays in argument order.
#pragma once
#include <napi.h>

#include "args.h"
#include "flow_args.h"

namespace flowvae {
namespace napi {
namespace likelihood_args {

struct Bernoulli {
  const float* x;
  const float* logits;
  float* out;
  std::size_t batch, dim, n;  // n = batch * dim
};

// likelihoodBernoulli(x, logits, out, batch, dim)
inline Bernoulli BernoulliArgs(const Napi::CallbackInfo& info) {
  Arity(info, 5, "likelihoodBernoulli");
  Bernoulli a{};
  a.n = RowShape(info, 3, &a.batch, &a.dim);
  const Buffer b_x = In(info, 0, "x", a.n);
  a.x = b_x.data;
  const Buffer b_logits = In(info, 1, "logits", a.n);
  a.logits = b_logits.data;
  const Buffer b_out = Out(info, 2, "out", a.batch, {b_x, b_logits});
  a.out = b_out.data;
  return a;
}

struct BernoulliBackward {
  const float* x;
  const float* logits;
  const float* d_out;
  float* d_logits;
  std::size_t batch, dim, n;
};

// likelihoodBernoulliBackward(x, logits, dOut, dLogits, batch, dim)
inline BernoulliBackward BernoulliBackwardArgs(const Napi::CallbackInfo& info) {
  Arity(info, 6, "likelihoodBernoulliBackward");
  BernoulliBackward a{};
  a.n = RowShape(info, 4, &a.batch, &a.dim);
  const Buffer b_x = In(info, 0, "x", a.n);
  a.x = b_x.data;
  const Buffer b_logits = In(info, 1, "logits", a.n);
  a.logits = b_logits.data;
  const Buffer b_d_out = In(info, 2, "dOut", a.batch);
  a.d_out = b_d_out.data;
  const Buffer b_d_logits = Out(info, 3, "dLogits", a.n, {b_x, b_logits, b_d_out});
  a.d_logits = b_d_logits.data;
  return a;
}

struct Gaussian {
  const float* x;
  const float* mean;
  const float* logvar;  // [dim], shared by every row
  float* out;
  std::size_t batch, dim, n;
};

// likelihoodGaussian(x, mean, logvar, out, batch, dim)
inline Gaussian GaussianArgs(const Napi::CallbackInfo& info) {
  Arity(info, 6, "likelihoodGaussian");
  Gaussian a{};
  a.n = RowShape(info, 4, &a.batch, &a.dim);
  const Buffer b_x = In(info, 0, "x", a.n);
  a.x = b_x.data;
  const Buffer b_mean = In(info, 1, "mean", a.n);
  a.mean = b_mean.data;
  const Buffer b_logvar = In(info, 2, "logvar", a.dim);
  a.logvar = b_logvar.data;
  const Buffer b_out = Out(info, 3, "out", a.batch, {b_x, b_mean, b_logvar});
  a.out = b_out.data;
  return a;
}

struct GaussianBackward {
  const float* x;
  const float* mean;
  const float* logvar;
  const float* d_out;
  float* d_mean;
  float* d_logvar;  // null when not wanted; accumulated into otherwise
  std::size_t batch, dim, n;
};

// likelihoodGaussianBackward(x, mean, logvar, dOut, dMean, dLogvar | null, batch, dim)
inline GaussianBackward GaussianBackwardArgs(const Napi::CallbackInfo& info) {
  Arity(info, 8, "likelihoodGaussianBackward");
  GaussianBackward a{};
  a.n = RowShape(info, 6, &a.batch, &a.dim);
  const Buffer b_x = In(info, 0, "x", a.n);
  a.x = b_x.data;
  const Buffer b_mean = In(info, 1, "mean", a.n);
  a.mean = b_mean.data;
  const Buffer b_logvar = In(info, 2, "logvar", a.dim);
  a.logvar = b_logvar.data;
  const Buffer b_d_out = In(info, 3, "dOut", a.batch);
  a.d_out = b_d_out.data;
  const Buffer b_d_mean = Out(info, 4, "dMean", a.n, {b_x, b_mean, b_logvar, b_d_out});
  a.d_mean = b_d_mean.data;
  const Buffer b_d_logvar = OptOut(info, 5, "dLogvar", a.dim, {b_x, b_mean, b_logvar, b_d_out, b_d_mean});
  a.d_logvar = b_d_logvar.data;
  return a;
}

}  // namespace likelihood_args
}  // namespace napi
}  // namespace flowvae
