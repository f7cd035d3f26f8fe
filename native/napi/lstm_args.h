// Argument checks of the lstm bindings, shared by the cpu (napi/lstm.cc) and
// cuda (napi/cuda/lstm.cc) bindings so both refuse the same things with the
// same messages: sizes first, then arrays in argument order (inputs, then
// outputs, each output checked against everything before it).
#pragma once
#include <napi.h>

#include <string>

#include "args.h"
#include "flow_args.h"  // Buffer, In, Out, OptOut, CheckDisjoint
#include "flowvae/lstm.h"

namespace flowvae {
namespace napi {
namespace lstm_args {

struct Sizes {
  std::size_t batch, steps, in_dim, hidden;
  std::size_t x, y, state, w_ih, w_hh, gates, stash, work;  // array lengths
};

inline Sizes ReadSizes(const Napi::CallbackInfo& info, std::size_t first) {
  Napi::Env env = info.Env();
  Sizes s{};
  s.batch = Size(info, first, "batch");
  s.steps = Size(info, first + 1, "steps");
  s.in_dim = Size(info, first + 2, "inDim");
  s.hidden = PositiveSize(info, first + 3, "hidden");
  const std::size_t rows = Product(env, s.batch, s.steps, "x");
  s.gates = Product(env, 4, s.hidden, "weightIh");
  s.x = Product(env, rows, s.in_dim, "x");
  s.y = Product(env, rows, s.hidden, "y");
  s.state = Product(env, s.batch, s.hidden, "h0");
  s.w_ih = Product(env, s.gates, s.in_dim, "weightIh");
  s.w_hh = Product(env, s.gates, s.hidden, "weightHh");
  s.stash = Product(env, s.y, kLstmStashPerStep, "stash");
  s.work = Product(env, s.y, 4, "work");
  return s;
}

// Optional per-row lengths: a Uint32Array [batch] of values <= steps, or null.
// The returned Buffer views it as floats (same element size) for the overlap checks.
inline Buffer Lengths(const Napi::CallbackInfo& info, std::size_t i, const Sizes& s) {
  Napi::Value v = info[i];
  if (v.IsNull() || v.IsUndefined()) return Buffer{nullptr, s.batch, "lengths"};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
    ThrowTypeError(info.Env(), Expected("Uint32Array or null", "lengths", v));
  uint32_t* p = U32(info, i, "lengths", s.batch);
  for (std::size_t b = 0; b < s.batch; ++b) {
    if (p[b] > s.steps)
      ThrowRangeError(info.Env(), Expected("Uint32Array of values at most " + std::to_string(s.steps), "lengths", v));
  }
  return Buffer{reinterpret_cast<float*>(p), s.batch, "lengths"};
}

inline const uint32_t* LengthData(const Buffer& lengths) { return reinterpret_cast<const uint32_t*>(lengths.data); }

struct Forward {
  Sizes s;
  Buffer x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh;
  Buffer y, hn, cn, stash;
};

// lstmForward(x, lengths | null, h0 | null, c0 | null, weightIh, weightHh, biasIh | null, biasHh | null,
//             y, hn, cn, stash, batch, steps, inDim, hidden)
inline Forward ForwardArgs(const Napi::CallbackInfo& info) {
  Arity(info, 16, "lstmForward");
  Forward f{};
  f.s = ReadSizes(info, 12);
  const Sizes& s = f.s;
  f.x = In(info, 0, "x", s.x);
  f.lengths = Lengths(info, 1, s);
  f.h0 = Buffer{OptF32(info, 2, "h0", s.state), s.state, "h0"};
  f.c0 = Buffer{OptF32(info, 3, "c0", s.state), s.state, "c0"};
  f.w_ih = In(info, 4, "weightIh", s.w_ih);
  f.w_hh = In(info, 5, "weightHh", s.w_hh);
  f.b_ih = Buffer{OptF32(info, 6, "biasIh", s.gates), s.gates, "biasIh"};
  f.b_hh = Buffer{OptF32(info, 7, "biasHh", s.gates), s.gates, "biasHh"};
  f.y = Out(info, 8, "y", s.y, {f.x, f.lengths, f.h0, f.c0, f.w_ih, f.w_hh, f.b_ih, f.b_hh});
  f.hn = Out(info, 9, "hn", s.state, {f.x, f.lengths, f.h0, f.c0, f.w_ih, f.w_hh, f.b_ih, f.b_hh, f.y});
  f.cn = Out(info, 10, "cn", s.state, {f.x, f.lengths, f.h0, f.c0, f.w_ih, f.w_hh, f.b_ih, f.b_hh, f.y, f.hn});
  f.stash =
      Out(info, 11, "stash", s.stash, {f.x, f.lengths, f.h0, f.c0, f.w_ih, f.w_hh, f.b_ih, f.b_hh, f.y, f.hn, f.cn});
  return f;
}

struct Backward {
  Sizes s;
  bool accumulate;
  Buffer x, lengths, w_ih, w_hh, stash, dy, dhn, dcn;
  Buffer dx, dh0, dc0, d_w_ih, d_w_hh, d_b_ih, d_b_hh, work;
};

// lstmBackward(x, lengths | null, weightIh, weightHh, stash, dy | null, dhn | null, dcn | null,
//              dx | null, dh0, dc0, dWeightIh | null, dWeightHh | null, dBiasIh | null, dBiasHh | null, work,
//              batch, steps, inDim, hidden, accumulate)
inline Backward BackwardArgs(const Napi::CallbackInfo& info) {
  Arity(info, 21, "lstmBackward");
  Backward b{};
  b.s = ReadSizes(info, 16);
  b.accumulate = Bool(info, 20, "accumulate");
  const Sizes& s = b.s;
  b.x = In(info, 0, "x", s.x);
  b.lengths = Lengths(info, 1, s);
  b.w_ih = In(info, 2, "weightIh", s.w_ih);
  b.w_hh = In(info, 3, "weightHh", s.w_hh);
  b.stash = In(info, 4, "stash", s.stash);
  b.dy = Buffer{OptF32(info, 5, "dy", s.y), s.y, "dy"};
  b.dhn = Buffer{OptF32(info, 6, "dhn", s.state), s.state, "dhn"};
  b.dcn = Buffer{OptF32(info, 7, "dcn", s.state), s.state, "dcn"};
  b.dx = OptOut(info, 8, "dx", s.x, {b.x, b.lengths, b.w_ih, b.w_hh, b.stash, b.dy, b.dhn, b.dcn});
  b.dh0 = Out(info, 9, "dh0", s.state, {b.x, b.lengths, b.w_ih, b.w_hh, b.stash, b.dy, b.dhn, b.dcn, b.dx});
  b.dc0 = Out(info, 10, "dc0", s.state, {b.x, b.lengths, b.w_ih, b.w_hh, b.stash, b.dy, b.dhn, b.dcn, b.dx, b.dh0});
  b.d_w_ih = OptOut(info, 11, "dWeightIh", s.w_ih,
                    {b.x, b.lengths, b.w_ih, b.w_hh, b.stash, b.dy, b.dhn, b.dcn, b.dx, b.dh0, b.dc0});
  b.d_w_hh = OptOut(info, 12, "dWeightHh", s.w_hh,
                    {b.x, b.lengths, b.w_ih, b.w_hh, b.stash, b.dy, b.dhn, b.dcn, b.dx, b.dh0, b.dc0, b.d_w_ih});
  b.d_b_ih =
      OptOut(info, 13, "dBiasIh", s.gates,
             {b.x, b.lengths, b.w_ih, b.w_hh, b.stash, b.dy, b.dhn, b.dcn, b.dx, b.dh0, b.dc0, b.d_w_ih, b.d_w_hh});
  b.d_b_hh = OptOut(
      info, 14, "dBiasHh", s.gates,
      {b.x, b.lengths, b.w_ih, b.w_hh, b.stash, b.dy, b.dhn, b.dcn, b.dx, b.dh0, b.dc0, b.d_w_ih, b.d_w_hh, b.d_b_ih});
  b.work = Out(info, 15, "work", s.work,
               {b.x, b.lengths, b.w_ih, b.w_hh, b.stash, b.dy, b.dhn, b.dcn, b.dx, b.dh0, b.dc0, b.d_w_ih, b.d_w_hh,
                b.d_b_ih, b.d_b_hh});
  return b;
}

}  // namespace lstm_args
}  // namespace napi
}  // namespace flowvae
