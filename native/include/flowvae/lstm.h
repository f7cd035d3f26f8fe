// LSTM layer over whole sequences, weights laid out as PyTorch nn.LSTM
// (weight_ih [4H, in], weight_hh [4H, H], bias_ih [4H], bias_hh [4H], gate
// order i, f, g, o):
//   [i f g o] = W_ih x_t + b_ih + W_hh h_{t−1} + b_hh
//   i, f, o = sigmoid(·), g = tanh(·), c_t = f ⊙ c_{t−1} + i ⊙ g, h_t = o ⊙ tanh(c_t)
//
// Sequences are batch-first, row-major: x [batch, steps, in], y [batch, steps,
// hidden] (PyTorch's batch_first=True). Row b is lengths[b] <= steps long:
// steps at or past its length leave its state unchanged and output zeros, and
// (h_n, c_n) is the state after its last step (h0/c0 for length 0). Input
// values at padded steps do not affect any output; backward multiplies them
// by zero gradients, so they must be finite.
//
// The input projection of all steps is one matrix product; each step adds
// the recurrent product (sgemm on the pool) and runs the fused gate
// nonlinearities and cell update in parallel over rows. Backward runs
// through time step by step for the recurrent product only and forms the
// weight gradients as whole-sequence products.
#pragma once
#include <cstddef>
#include <cstdint>

namespace flowvae {

// Floats per (row, step) kept by forward for backward: the activated gates
// [i f g o] (4H), h_{t−1} (H), c_{t−1} (H) and tanh(c_t) (H). The stash is
// laid out as four blocks over all (row, step) pairs:
//   gates [B·T, 4H] | h_prev [B·T, H] | c_prev [B·T, H] | tanh_c [B·T, H];
// at padded steps every block holds zeros.
constexpr std::size_t kLstmStashPerStep = 7;

// Elements of the stash of one forward: batch · steps · 7 · hidden.
inline std::size_t lstm_stash_size(std::size_t batch, std::size_t steps, std::size_t hidden) {
  return batch * steps * kLstmStashPerStep * hidden;
}

// Elements of backward's workspace (the gate gradients of every step): batch · steps · 4 · hidden.
inline std::size_t lstm_work_size(std::size_t batch, std::size_t steps, std::size_t hidden) {
  return batch * steps * 4 * hidden;
}

// Forward over `steps` steps. lengths [batch] (each <= steps) may be null
// (every row full length); h0, c0 [batch, hidden] may be null (zeros);
// b_ih, b_hh [4H] may be null (no bias). Writes y [batch, steps, hidden],
// hn, cn [batch, hidden] and stash [lstm_stash_size]. Outputs must not
// overlap inputs or each other. The first call at a new size may throw
// std::bad_alloc (sgemm's packing space).
void lstm_forward(const float* x, const uint32_t* lengths, const float* h0, const float* c0, const float* w_ih,
                  const float* w_hh, const float* b_ih, const float* b_hh, float* y, float* hn, float* cn, float* stash,
                  std::size_t batch, std::size_t steps, std::size_t in_dim, std::size_t hidden);

// Backward through time from the stash of the forward with the same x,
// lengths and weights. dy [batch, steps, hidden], dhn and dcn [batch,
// hidden] are ∂L/∂y, ∂L/∂h_n, ∂L/∂c_n, each may be null (zeros); dy at padded
// steps is ignored. Writes dx [batch, steps, in] (may be null), dh0 and dc0
// [batch, hidden] (overwritten); d_w_ih, d_w_hh, d_b_ih, d_b_hh are added to
// when accumulate, else overwritten, each may be null. work
// [lstm_work_size] is scratch. b_ih/b_hh are not needed: their gradients are
// both Σ over rows and steps of the gate gradients.
void lstm_backward(const float* x, const uint32_t* lengths, const float* w_ih, const float* w_hh, const float* stash,
                   const float* dy, const float* dhn, const float* dcn, float* dx, float* dh0, float* dc0,
                   float* d_w_ih, float* d_w_hh, float* d_b_ih, float* d_b_hh, float* work, std::size_t batch,
                   std::size_t steps, std::size_t in_dim, std::size_t hidden, bool accumulate);

}  // namespace flowvae
