// Fused Adam/AdamW step over one flat float buffer, with PyTorch's semantics
// (torch.nn.utils.clip_grad_norm_ followed by torch.optim.Adam / AdamW):
//
//   norm  = ‖g‖₂ (accumulated in double)
//   g     ← g · min(1, maxGradNorm / (norm + 1e-6))      when maxGradNorm > 0
//   Adam:  g ← g + weightDecay · p                        (L2 penalty)
//   AdamW: p ← p · (1 − lr · weightDecay)                 (decoupled decay)
//   m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²
//   p ← p − lr / (1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + eps)
//
// The per-element update is float32 arithmetic (no FMA) in the same order on
// every SIMD path, and the norm is summed in 16 double lanes over blocks whose
// layout depends on n only: results are bit-identical for any thread count
// and any SIMD level. params, grads, m and v must not overlap; grads is read only.
//
// adam_step_tensors runs the same step over a model's parameter tensors in
// place (no gather into a flat copy and back): tensor k's values and
// gradient are tensors[k], and its moments the next tensors[k].n elements
// of m and v. Blocks never cross a tensor, so the norm is summed in a layout
// set by the tensor sizes alone; with one tensor it is adam_step.
#pragma once
#include <cstddef>
#include <cstdint>

#include "flowvae/cpu_features.h"

namespace flowvae {

struct AdamOptions {
  double lr = 1e-3;            // > 0
  double beta1 = 0.9;          // in [0, 1)
  double beta2 = 0.999;        // in [0, 1)
  double eps = 1e-8;           // > 0
  double weight_decay = 0.0;   // >= 0; 0 disables
  bool decoupled = false;      // true: AdamW
  std::uint64_t step = 1;      // 1-based, for bias correction
  double max_grad_norm = 0.0;  // >= 0; 0 disables clipping
};

// One parameter tensor: n values updated in place and their gradient.
struct AdamTensor {
  float* params;
  const float* grads;
  std::size_t n;
};

// Updates params, m and v in place and returns the gradient L2 norm before
// clipping (NaN if a gradient is NaN, in which case NaN spreads as in PyTorch).
// `level` picks the SIMD path (capped at what this CPU supports).
double adam_step(float* params, const float* grads, float* m, float* v, std::size_t n, const AdamOptions& options,
                 SimdLevel level = simd_level());

// The same over `count` tensors; m and v hold the sum of their sizes.
double adam_step_tensors(const AdamTensor* tensors, std::size_t count, float* m, float* v, const AdamOptions& options,
                         SimdLevel level = simd_level());

}  // namespace flowvae
