// Argument checks for the flow-stack bindings (planar, radial): every input
// and output is a Float32Array of the exact length the sizes imply, and no
// output may share memory with another argument (a kernel reading an input it
// is overwriting would silently return wrong values).
#pragma once
#include <napi.h>

#include <cstdint>
#include <initializer_list>

#include "args.h"

namespace flowvae {
namespace napi {

struct Buffer {
  float* data;  // null for an absent optional output or an empty array
  std::size_t length;
  const char* name;
};

inline Buffer In(const Napi::CallbackInfo& info, std::size_t i, const char* name, std::size_t length) {
  return Buffer{F32(info, i, name, length), length, name};
}

inline bool Overlaps(const Buffer& a, const Buffer& b) {
  if (!a.data || !b.data) return false;
  const auto a0 = reinterpret_cast<std::uintptr_t>(a.data), b0 = reinterpret_cast<std::uintptr_t>(b.data);
  return a0 < b0 + b.length * sizeof(float) && b0 < a0 + a.length * sizeof(float);
}

inline void CheckDisjoint(const Napi::CallbackInfo& info, std::size_t i, const Buffer& out,
                          std::initializer_list<Buffer> others) {
  for (const Buffer& other : others) {
    if (Overlaps(out, other)) {
      ThrowRangeError(info.Env(),
                      Expected(std::string("Float32Array not overlapping \"") + other.name + "\"", out.name, info[i]));
    }
  }
}

inline Buffer Out(const Napi::CallbackInfo& info, std::size_t i, const char* name, std::size_t length,
                  std::initializer_list<Buffer> others) {
  const Buffer out{F32(info, i, name, length), length, name};
  CheckDisjoint(info, i, out, others);
  return out;
}

inline Buffer OptOut(const Napi::CallbackInfo& info, std::size_t i, const char* name, std::size_t length,
                     std::initializer_list<Buffer> others) {
  const Buffer out{OptF32(info, i, name, length), length, name};
  CheckDisjoint(info, i, out, others);
  return out;
}

}  // namespace napi
}  // namespace flowvae
