// CUDA runtime pieces shared by every cuda kernel family: whether a device is
// usable (and why not), one stream all kernels run on, a caching device
// allocator, and CUDA errors as C++ exceptions that name the kernel.
//
// Everything runs on one device (the first one the CUDA runtime lists; use
// CUDA_VISIBLE_DEVICES to pick another) and one non-blocking stream, so work
// enqueued by successive calls runs in call order without host waits: a
// buffer returned to the allocator can be handed out again at once, since any
// later use is ordered after the earlier kernels on that stream.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace flowvae {
namespace cuda {

struct Status {
  bool available = false;
  // Why the backend cannot be used ('' when available).
  std::string reason;
  // Name and compute capability of the device in use (when available).
  std::string device;
  int major = 0, minor = 0;
  int runtime_version = 0;  // e.g. 13000
  int driver_version = 0;   // 0 when no driver could be loaded
};

// Probes the driver and device once (later calls return the cached answer).
// Never throws: every failure becomes `reason`.
const Status& status();

// A CUDA failure: the message names what was running ("planar_forward: an
// illegal memory access was encountered (cudaErrorIllegalAddress)").
class Error : public std::runtime_error {
 public:
  Error(const std::string& what, cudaError_t code);
  cudaError_t code() const { return code_; }

 private:
  cudaError_t code_;
};

// Throws Error(what, code) unless code is cudaSuccess.
void check(cudaError_t code, const char* what);
// After a kernel launch: throws if the launch itself failed (bad
// configuration, no kernel image for this device), and remembers the kernel
// so that a failure found later by synchronize() names it. With
// FLOWVAE_CUDA_SYNC=1 in the environment it also waits for the kernel, so an
// asynchronous failure (an illegal address) is reported as this kernel's.
void check_launch(const char* kernel);

// The stream every kernel runs on (created on first use; throws Error if the
// device is unusable).
cudaStream_t stream();

// Caching allocator: device blocks are kept in size classes (powers of two
// from 256 bytes) and reused; nothing is returned to the driver until
// release_cached() or process exit. allocate() throws Error when the device
// is out of memory even after the cache was emptied.
void* allocate(std::size_t bytes);
void deallocate(void* ptr, std::size_t bytes);
// Bytes currently handed out and held in the cache (for tests and tuning).
std::size_t bytes_in_use();
std::size_t bytes_cached();
// Frees the cached blocks (waits for the stream first).
void release_cached();

// A typed device buffer from the caching allocator (moves, never copies).
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n) : n_(n), p_(n ? static_cast<T*>(allocate(n * sizeof(T))) : nullptr) {}
  DeviceBuffer(DeviceBuffer&& o) noexcept : n_(o.n_), p_(o.p_) {
    o.n_ = 0;
    o.p_ = nullptr;
  }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      n_ = o.n_;
      p_ = o.p_;
      o.n_ = 0;
      o.p_ = nullptr;
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { reset(); }

  T* get() const { return p_; }
  std::size_t size() const { return n_; }
  void reset() {
    if (p_) deallocate(p_, n_ * sizeof(T));
    p_ = nullptr;
    n_ = 0;
  }

 private:
  std::size_t n_ = 0;
  T* p_ = nullptr;
};

// Asynchronous copies on stream() (host memory may be pageable).
void upload(void* device, const void* host, std::size_t bytes);
void download(void* host, const void* device, std::size_t bytes);
void fill_zero(void* device, std::size_t bytes);
// Waits for everything enqueued on stream(); a failure of an earlier kernel
// surfaces here, reported as a failure of `what` naming the kernels this
// thread launched since its last synchronize().
void synchronize(const char* what);

}  // namespace cuda
}  // namespace flowvae
