// Activations on the GPU (see flowvae/cuda/elementwise.h): one grid-stride
// kernel per direction and kind. The transcendental kinds are evaluated in
// float64 and rounded once (within about half a float32 ulp, where CUDA's
// float32 expf/tanhf alone are up to 2 ulps and sigmoid/softplus compose two
// of them); the kernels stay memory-bound on sm_80/sm_90, whose float64 rate
// is half the float32 one. The piecewise kinds branch on `x <= 0` as the cpu
// does, so a NaN input passes through (and passes the incoming gradient).
#include <cuda_runtime.h>

#include "common.cuh"
#include "flowvae/cuda/elementwise.h"

namespace flowvae {
namespace cuda {
namespace {

using detail::GridFor;

template <Activation kKind>
__device__ __forceinline__ float Forward(float x, float alpha) {
  if constexpr (kKind == Activation::kIdentity) return x;
  if constexpr (kKind == Activation::kRelu) return x <= 0.0f ? 0.0f : x;
  if constexpr (kKind == Activation::kLeakyRelu) return x <= 0.0f ? alpha * x : x;
  if constexpr (kKind == Activation::kElu)
    return x <= 0.0f ? static_cast<float>(alpha * expm1(static_cast<double>(x))) : x;
  if constexpr (kKind == Activation::kTanh) return static_cast<float>(tanh(static_cast<double>(x)));
  if constexpr (kKind == Activation::kSigmoid) return static_cast<float>(detail::Sigmoid(static_cast<double>(x)));
  if constexpr (kKind == Activation::kSoftplus) return static_cast<float>(detail::Softplus(static_cast<double>(x)));
  return x;
}

// dy · f'(x), with f' from the forward output y for tanh and sigmoid.
template <Activation kKind>
__device__ __forceinline__ float Backward(float x, float y, float dy, float alpha) {
  if constexpr (kKind == Activation::kIdentity) return dy;
  if constexpr (kKind == Activation::kRelu) return x <= 0.0f ? 0.0f : dy;
  if constexpr (kKind == Activation::kLeakyRelu) return x <= 0.0f ? alpha * dy : dy;
  if constexpr (kKind == Activation::kElu)
    return x <= 0.0f ? dy * static_cast<float>(alpha * exp(static_cast<double>(x))) : dy;
  if constexpr (kKind == Activation::kTanh) return dy * (1.0f - y * y);
  if constexpr (kKind == Activation::kSigmoid) return dy * (y * (1.0f - y));
  if constexpr (kKind == Activation::kSoftplus) return dy * static_cast<float>(detail::Sigmoid(static_cast<double>(x)));
  return dy;
}

template <Activation kKind>
__global__ void ForwardKernel(const float* x, float* y, size_t n, float alpha) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    y[i] = Forward<kKind>(x[i], alpha);
}

template <Activation kKind>
__global__ void BackwardKernel(const float* x, const float* y, const float* dy, float* dx, size_t n, float alpha) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    dx[i] = Backward<kKind>(x[i], y[i], dy[i], alpha);
}

template <Activation kKind>
void LaunchForward(const float* x, float* y, size_t n, float alpha) {
  ForwardKernel<kKind><<<GridFor(n, 256 * 4), 256, 0, stream()>>>(x, y, n, alpha);
}

template <Activation kKind>
void LaunchBackward(const float* x, const float* y, const float* dy, float* dx, size_t n, float alpha) {
  BackwardKernel<kKind><<<GridFor(n, 256 * 4), 256, 0, stream()>>>(x, y, dy, dx, n, alpha);
}

}  // namespace

void elementwise_forward(Activation kind, const float* x, float* y, std::size_t n, float alpha) {
  if (n == 0) return;
  switch (kind) {
    case Activation::kIdentity: LaunchForward<Activation::kIdentity>(x, y, n, alpha); break;
    case Activation::kRelu: LaunchForward<Activation::kRelu>(x, y, n, alpha); break;
    case Activation::kLeakyRelu: LaunchForward<Activation::kLeakyRelu>(x, y, n, alpha); break;
    case Activation::kElu: LaunchForward<Activation::kElu>(x, y, n, alpha); break;
    case Activation::kTanh: LaunchForward<Activation::kTanh>(x, y, n, alpha); break;
    case Activation::kSigmoid: LaunchForward<Activation::kSigmoid>(x, y, n, alpha); break;
    case Activation::kSoftplus: LaunchForward<Activation::kSoftplus>(x, y, n, alpha); break;
  }
  check_launch("elementwise_forward");
}

void elementwise_backward(Activation kind, const float* x, const float* y, const float* dy, float* dx, std::size_t n,
                          float alpha) {
  if (n == 0) return;
  switch (kind) {
    case Activation::kIdentity: LaunchBackward<Activation::kIdentity>(x, y, dy, dx, n, alpha); break;
    case Activation::kRelu: LaunchBackward<Activation::kRelu>(x, y, dy, dx, n, alpha); break;
    case Activation::kLeakyRelu: LaunchBackward<Activation::kLeakyRelu>(x, y, dy, dx, n, alpha); break;
    case Activation::kElu: LaunchBackward<Activation::kElu>(x, y, dy, dx, n, alpha); break;
    case Activation::kTanh: LaunchBackward<Activation::kTanh>(x, y, dy, dx, n, alpha); break;
    case Activation::kSigmoid: LaunchBackward<Activation::kSigmoid>(x, y, dy, dx, n, alpha); break;
    case Activation::kSoftplus: LaunchBackward<Activation::kSoftplus>(x, y, dy, dx, n, alpha); break;
  }
  check_launch("elementwise_backward");
}

}  // namespace cuda
}  // namespace flowvae
