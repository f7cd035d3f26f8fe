// LSTM forward and backward through time on the GPU (native/cuda/lstm.cu):
// the mathematics, layouts and stash of flowvae/lstm.h, over device
// pointers, enqueued on cuda::stream(). `lengths` is a device array of
// uint32 (or null: every row full length); `work` is device scratch of
// lstm_work_size elements.
#pragma once
#include <cstddef>
#include <cstdint>

namespace flowvae {
namespace cuda {

void lstm_forward(const float* x, const uint32_t* lengths, const float* h0, const float* c0, const float* w_ih,
                  const float* w_hh, const float* b_ih, const float* b_hh, float* y, float* hn, float* cn, float* stash,
                  std::size_t batch, std::size_t steps, std::size_t in_dim, std::size_t hidden);

// The bias gradients are float64 column sums in a fixed order (deterministic).
void lstm_backward(const float* x, const uint32_t* lengths, const float* w_ih, const float* w_hh, const float* stash,
                   const float* dy, const float* dhn, const float* dcn, float* dx, float* dh0, float* dc0,
                   float* d_w_ih, float* d_w_hh, float* d_b_ih, float* d_b_hh, float* work, std::size_t batch,
                   std::size_t steps, std::size_t in_dim, std::size_t hidden, bool accumulate);

}  // namespace cuda
}  // namespace flowvae
