// Activations on the GPU (native/cuda/elementwise.cu), as flowvae/elementwise.h
// defines them, over device pointers. Arrays may coincide exactly.
#pragma once
#include <cstddef>

#include "flowvae/elementwise.h"

namespace flowvae {
namespace cuda {

void elementwise_forward(Activation kind, const float* x, float* y, std::size_t n, float alpha);
void elementwise_backward(Activation kind, const float* x, const float* y, const float* dy, float* dx, std::size_t n,
                          float alpha);

}  // namespace cuda
}  // namespace flowvae
