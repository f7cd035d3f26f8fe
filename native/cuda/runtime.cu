// Device probe, stream, caching allocator and error handling (see
// flowvae/cuda/runtime.h).
#include "flowvae/cuda/runtime.h"

#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

namespace flowvae {
namespace cuda {
namespace {

// Oldest compute capability with a kernel image in this build (sm_80 SASS;
// newer devices run the sm_90 image or JIT-compile the compute_90 PTX).
constexpr int kMinMajor = 8;

std::string VersionString(int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); }

std::string Describe(cudaError_t code) {
  return std::string(cudaGetErrorString(code)) + " (" + cudaGetErrorName(code) + ")";
}

Status Probe() {
  Status s;
  cudaRuntimeGetVersion(&s.runtime_version);
  cudaDriverGetVersion(&s.driver_version);  // leaves 0 when libcuda.so.1 cannot be loaded
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    if (s.driver_version == 0) {
      s.reason = "no CUDA driver (libcuda.so.1 could not be loaded): cudaGetDeviceCount: " + Describe(err);
    } else if (err == cudaErrorInsufficientDriver) {
      s.reason = "the CUDA driver supports CUDA " + VersionString(s.driver_version) + " but this build needs CUDA " +
                 VersionString(s.runtime_version) + " (update the driver): cudaGetDeviceCount: " + Describe(err);
    } else {
      s.reason = "no usable CUDA device: cudaGetDeviceCount: " + Describe(err);
    }
    cudaGetLastError();  // leave no error state behind for later calls
    return s;
  }
  if (count == 0) {
    s.reason = "no CUDA device found (CUDA driver " + VersionString(s.driver_version) + ")";
    return s;
  }
  cudaDeviceProp prop{};
  cudaError_t e = cudaGetDeviceProperties(&prop, 0);
  if (e != cudaSuccess) {
    s.reason = "cudaGetDeviceProperties: " + Describe(e);
    return s;
  }
  s.major = prop.major;
  s.minor = prop.minor;
  s.device = std::string(prop.name) + " (compute capability " + std::to_string(prop.major) + "." +
             std::to_string(prop.minor) + ")";
  if (prop.major < kMinMajor) {
    s.reason = "device " + s.device + " is older than this build's oldest target, compute capability 8.0";
    return s;
  }
  // Creating the context can still fail (exclusive-process mode, out of memory).
  e = cudaSetDevice(0);
  if (e == cudaSuccess) e = cudaFree(nullptr);
  if (e != cudaSuccess) {
    s.reason = "device " + s.device + " cannot be used: " + Describe(e);
    cudaGetLastError();
    return s;
  }
  s.available = true;
  return s;
}

std::size_t SizeClass(std::size_t bytes) {
  std::size_t c = 256;
  while (c < bytes) c <<= 1;
  return c;
}

struct Allocator {
  std::mutex mutex;
  std::map<std::size_t, std::vector<void*>> free_blocks;  // size class -> cached blocks
  std::size_t in_use = 0, cached = 0;
};

// Kernels launched by this thread since its last synchronize(), for error messages.
thread_local std::vector<const char*> tls_launched;

bool SyncEachLaunch() {
  static const bool on = [] {
    const char* v = std::getenv("FLOWVAE_CUDA_SYNC");
    return v != nullptr && std::strcmp(v, "1") == 0;
  }();
  return on;
}

Allocator& TheAllocator() {
  static Allocator* a = new Allocator;  // never destroyed: the driver reclaims device memory at exit
  return *a;
}

}  // namespace

Error::Error(const std::string& what, cudaError_t code)
    : std::runtime_error(what + ": " + Describe(code)), code_(code) {}

void check(cudaError_t code, const char* what) {
  if (code != cudaSuccess) {
    cudaGetLastError();  // a non-sticky error must not be reported again by the next check
    tls_launched.clear();
    throw Error(what, code);
  }
}

void check_launch(const char* kernel) {
  check(cudaGetLastError(), kernel);
  if (tls_launched.empty() || std::strcmp(tls_launched.back(), kernel) != 0) tls_launched.push_back(kernel);
  if (SyncEachLaunch()) {
    tls_launched.clear();
    check(cudaStreamSynchronize(stream()), kernel);
  }
}

const Status& status() {
  static const Status s = Probe();
  return s;
}

cudaStream_t stream() {
  static cudaStream_t s = [] {
    const Status& st = status();
    if (!st.available) throw Error("cuda unavailable (" + st.reason + ")", cudaErrorNoDevice);
    cudaStream_t created = nullptr;
    check(cudaStreamCreateWithFlags(&created, cudaStreamNonBlocking), "cudaStreamCreate");
    return created;
  }();
  return s;
}

void* allocate(std::size_t bytes) {
  Allocator& a = TheAllocator();
  const std::size_t size = SizeClass(bytes);
  {
    std::lock_guard<std::mutex> lock(a.mutex);
    auto it = a.free_blocks.find(size);
    if (it != a.free_blocks.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      a.cached -= size;
      a.in_use += size;
      return p;
    }
  }
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, size);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    release_cached();
    e = cudaMalloc(&p, size);
  }
  check(e, "cudaMalloc");
  std::lock_guard<std::mutex> lock(a.mutex);
  a.in_use += size;
  return p;
}

void deallocate(void* ptr, std::size_t bytes) {
  if (!ptr) return;
  Allocator& a = TheAllocator();
  const std::size_t size = SizeClass(bytes);
  std::lock_guard<std::mutex> lock(a.mutex);
  a.free_blocks[size].push_back(ptr);
  a.in_use -= size;
  a.cached += size;
}

std::size_t bytes_in_use() {
  std::lock_guard<std::mutex> lock(TheAllocator().mutex);
  return TheAllocator().in_use;
}

std::size_t bytes_cached() {
  std::lock_guard<std::mutex> lock(TheAllocator().mutex);
  return TheAllocator().cached;
}

void release_cached() {
  Allocator& a = TheAllocator();
  // Cached blocks may still be read by kernels enqueued before they were returned.
  cudaStreamSynchronize(stream());
  std::lock_guard<std::mutex> lock(a.mutex);
  for (auto& [size, blocks] : a.free_blocks) {
    for (void* p : blocks) cudaFree(p);
    a.cached -= size * blocks.size();
    blocks.clear();
  }
}

void upload(void* device, const void* host, std::size_t bytes) {
  if (bytes) check(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream()), "upload (cudaMemcpyAsync)");
}

void download(void* host, const void* device, std::size_t bytes) {
  if (bytes)
    check(cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream()), "download (cudaMemcpyAsync)");
}

void fill_zero(void* device, std::size_t bytes) {
  if (bytes) check(cudaMemsetAsync(device, 0, bytes, stream()), "cudaMemsetAsync");
}

void synchronize(const char* what) {
  std::string label = what;
  if (!tls_launched.empty()) {
    label += " (kernels ";
    for (std::size_t i = 0; i < tls_launched.size(); ++i) label += (i ? ", " : "") + std::string(tls_launched[i]);
    label += ")";
  }
  tls_launched.clear();
  check(cudaStreamSynchronize(stream()), label.c_str());
}

}  // namespace cuda
}  // namespace flowvae
