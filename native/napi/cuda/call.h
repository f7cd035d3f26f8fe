// One call of a cuda binding: the JS arguments are host Float32Arrays, so a
// call uploads its inputs into buffers from the caching allocator, enqueues
// the kernels, downloads its outputs and waits once, at the end. Calls hold a
// process-wide lock (the device, its stream and the allocator are shared by
// every Node environment, worker threads included).
//
// CUDA failures and an unusable device are C++ exceptions here; Guarded
// turns them into JS errors (ERR_CUDA naming the binding and the kernel, or
// ERR_BACKEND_UNAVAILABLE with the reason) after the argument checks, which
// throw exactly as the cpu bindings do.
#pragma once
#include <napi.h>

#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "../args.h"
#include "flowvae/cuda/runtime.h"

namespace flowvae {
namespace napi {
namespace cuda_call {

// Thrown by Call when the device cannot be used (the reason from cuda::status()).
struct Unavailable {
  std::string reason;
};

inline std::mutex& DeviceMutex() {
  static std::mutex m;
  return m;
}

class Call {
 public:
  explicit Call(const char* name) : name_(name), lock_(DeviceMutex()) {
    const cuda::Status& s = cuda::status();
    if (!s.available) throw Unavailable{s.reason};
  }

  // A device copy of a host input (nullptr for null or empty).
  const float* In(const float* host, std::size_t n) { return Upload(host, n); }

  // A device buffer for an output, downloaded into `host` by Finish (nullptr for null or empty).
  float* Out(float* host, std::size_t n) {
    if (!host || n == 0) return nullptr;
    float* d = Allocate(n);
    downloads_.push_back({host, d, n});
    return d;
  }

  // An output that starts from the host's values (gradients accumulated into).
  float* InOut(float* host, std::size_t n) {
    float* d = Upload(host, n);
    if (d) downloads_.push_back({host, d, n});
    return d;
  }

  // A zeroed device counter of bad rows, read back by Finish into `*host`.
  unsigned long long* Counter(unsigned long long* host) {
    counters_.emplace_back(1);
    unsigned long long* d = counters_.back().get();
    cuda::fill_zero(d, sizeof *d);
    counter_downloads_.push_back({host, d});
    return d;
  }

  // Enqueues the downloads and waits for the device.
  void Finish() {
    for (const Download& d : downloads_) cuda::download(d.host, d.device, d.n * sizeof(float));
    for (const CounterDownload& c : counter_downloads_) cuda::download(c.host, c.device, sizeof *c.host);
    cuda::synchronize(name_);
  }

 private:
  struct Download {
    float* host;
    const float* device;
    std::size_t n;
  };
  struct CounterDownload {
    unsigned long long* host;
    const unsigned long long* device;
  };

  float* Allocate(std::size_t n) {
    buffers_.emplace_back(n);
    return buffers_.back().get();
  }
  float* Upload(const float* host, std::size_t n) {
    if (!host || n == 0) return nullptr;
    float* d = Allocate(n);
    cuda::upload(d, host, n * sizeof(float));
    return d;
  }

  const char* name_;
  std::lock_guard<std::mutex> lock_;
  std::vector<cuda::DeviceBuffer<float>> buffers_;
  std::vector<cuda::DeviceBuffer<unsigned long long>> counters_;
  std::vector<Download> downloads_;
  std::vector<CounterDownload> counter_downloads_;
};

// Runs a binding, turning CUDA failures into JS errors with a code.
template <Napi::Value (*kBinding)(const Napi::CallbackInfo&)>
Napi::Value Guarded(const Napi::CallbackInfo& info) {
  try {
    return kBinding(info);
  } catch (const Napi::Error&) {
    throw;  // argument errors, already in the cpu bindings' form
  } catch (const Unavailable& e) {
    ThrowWithCode(Napi::Error::New(info.Env(), "Backend \"cuda\" is unavailable: " + e.reason),
                  "ERR_BACKEND_UNAVAILABLE");
  } catch (const cuda::Error& e) {
    ThrowWithCode(Napi::Error::New(info.Env(), std::string("CUDA error in ") + e.what()), "ERR_CUDA");
  } catch (const std::exception& e) {  // std::bad_alloc and the like: never let one escape into Node
    ThrowWithCode(Napi::Error::New(info.Env(), std::string("Error in a cuda binding: ") + e.what()), "ERR_CUDA");
  }
}

// exports.Set(name, Guarded<kBinding>).
template <Napi::Value (*kBinding)(const Napi::CallbackInfo&)>
void Export(Napi::Env env, Napi::Object exports, const char* name) {
  exports.Set(name, Napi::Function::New(env, Guarded<kBinding>, name));
}

}  // namespace cuda_call
}  // namespace napi
}  // namespace flowvae
