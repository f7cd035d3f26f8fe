// std::vector whose storage starts on a cache line. Kernel scratch holds
// rows read and written a full SIMD vector at a time; with malloc's 16-byte
// alignment most AVX-512 accesses would straddle two cache lines (measured:
// ~10% of a shared planar stack).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace flowvae {

template <class T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlignment{64};

  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlignment)); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, kAlignment); }

  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const noexcept {
    return true;
  }
  template <class U>
  bool operator!=(const CacheLineAllocator<U>&) const noexcept {
    return false;
  }
};

using AlignedFloats = std::vector<float, CacheLineAllocator<float>>;

}  // namespace flowvae
