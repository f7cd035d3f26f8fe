// Glow pieces (Kingma & Dhariwal 2018) that are not matrix products: the
// per-column affine map behind ActNorm and the elementwise affine flow, and
// fixed column permutations. The invertible 1×1 ("LU") linear map is a dense
// product (dense.h) on a weight assembled from its LU factors by the module.
//
//   affine:     y[r, j] = x[r, j] · e^{logScale[j]} + shift[j],  log|det| = Σ_j logScale[j]
//   permute:    y[r, j] = x[r, perm[j]]                          log|det| = 0
//   unpermute:  x[r, perm[j]] = y[r, j]                          (the inverse)
//
// Arrays are row-major [batch, dim]. Outputs must not overlap inputs.
// Parameter-gradient reductions over rows use fixed row chunks combined in
// order (reduce_in_chunks), so they are the same bits at any thread count.
#pragma once
#include <cstddef>
#include <cstdint>

namespace flowvae {

// y = x ⊙ e^{log_scale} + shift per row; log_det[r] = Σ_j log_scale[j] (overwritten).
void glow_affine_forward(const float* x, const float* log_scale, const float* shift, float* y, float* log_det,
                         std::size_t batch, std::size_t dim);

// x = (y − shift) ⊙ e^{−log_scale}; log_det[r] = −Σ_j log_scale[j] = log|det ∂x/∂y| (overwritten).
void glow_affine_inverse(const float* y, const float* log_scale, const float* shift, float* x, float* log_det,
                         std::size_t batch, std::size_t dim);

// Given dy = ∂L/∂y and d_log_det = ∂L/∂log_det of a forward from x:
//   dx = dy ⊙ e^{log_scale}                                (overwritten)
//   d_log_scale[j] += Σ_r (dy[r, j] · x[r, j] · e^{log_scale[j]} + d_log_det[r])
//   d_shift[j]     += Σ_r dy[r, j]                          (both accumulated)
void glow_affine_backward(const float* x, const float* log_scale, const float* dy, const float* d_log_det, float* dx,
                          float* d_log_scale, float* d_shift, std::size_t batch, std::size_t dim);

// y[r, j] = x[r, perm[j]]. perm must be a permutation of 0..dim−1 (the binding checks).
void glow_permute_columns(const float* x, const uint32_t* perm, float* y, std::size_t batch, std::size_t dim);

// x[r, perm[j]] = y[r, j]: the inverse of glow_permute_columns (and its backward).
void glow_unpermute_columns(const float* y, const uint32_t* perm, float* x, std::size_t batch, std::size_t dim);

}  // namespace flowvae
