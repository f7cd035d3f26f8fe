// Fused Adam/AdamW on the GPU (native/cuda/adam.cu) with flowvae/adam.h's
// semantics. The per-element update is the cpu's float32 arithmetic in the
// same order (compiled without FMA contraction, IEEE sqrt and division), so
// params, m and v match the cpu bit for bit whenever the clipping scale does.
// The gradient norm is summed in float64 in a fixed order that depends on n
// only (deterministic, but not the cpu's order: it may differ in the last bits).
#pragma once
#include <cstddef>

#include "flowvae/adam.h"

namespace flowvae {
namespace cuda {

// Device pointers; `norm` (one double, device memory) receives the gradient
// L2 norm before clipping. Nothing waits for the device.
void adam_step(float* params, const float* grads, float* m, float* v, std::size_t n, const AdamOptions& options,
               double* norm);

}  // namespace cuda
}  // namespace flowvae
