// Coupling flow kernels (NICE: Dinh et al. 2015; RealNVP: Dinh et al. 2017):
// the elementwise parts of a coupling layer, fused over the batch. The
// conditioner network runs on sgemm (dense.h).
//
// Rows are [batch, dim], row-major. A coupling layer transforms the columns
// [offset, offset + width) of each row in place in the full rows (no copies of
// halves): the transform kernels write only those columns of their output and
// leave the others untouched.
//
//   additive (NICE):   y_b = x_b + m,                       log|det| = 0
//   affine (RealNVP):  s = scale ⊙ tanh(ŝ), y_b = x_b ⊙ exp(s) + t,  log|det| = Σ s
//   scaling layer:     y = x ⊙ exp(log_scale),               log|det| = Σ log_scale
//
// Conditioner output h per row: m [width] (additive), or ŝ [width] then t
// [width] (affine, row stride 2·width). Outputs are overwritten except the
// parameter gradients d_scale / d_log_scale and scatter_add, which accumulate.
// Outputs must not share memory with inputs. Every result is the same bits at
// any thread count.
#pragma once
#include <cstddef>

namespace flowvae {

// out[r] = [x[r, offset : offset + width], context[r]]: out [batch, width + context_dim].
// context may be null when context_dim is 0.
void coupling_gather(const float* x, const float* context, float* out, std::size_t batch, std::size_t dim,
                     std::size_t offset, std::size_t width, std::size_t context_dim);
// The transpose of coupling_gather, accumulating: dx[r, offset + j] += d_in[r, j],
// d_context[r, c] += d_in[r, width + c] (d_context may be null when context_dim is 0).
void coupling_scatter_add(const float* d_in, float* dx, float* d_context, std::size_t batch, std::size_t dim,
                          std::size_t offset, std::size_t width, std::size_t context_dim);

// Affine forward: columns [offset, offset + width) of y; log_det [batch] = Σ s.
void coupling_affine_forward(const float* x, const float* h, const float* scale, float* y, float* log_det,
                             std::size_t batch, std::size_t dim, std::size_t offset, std::size_t width);
// Affine inverse: x_b = (y_b − t) ⊙ exp(−s) in columns [offset, offset + width) of x; log_det = −Σ s.
void coupling_affine_inverse(const float* y, const float* h, const float* scale, float* x, float* log_det,
                             std::size_t batch, std::size_t dim, std::size_t offset, std::size_t width);
// Affine backward: columns [offset, offset + width) of dx, dh [batch, 2·width]
// (overwritten), d_scale [width] (accumulated).
void coupling_affine_backward(const float* x, const float* h, const float* scale, const float* dy,
                              const float* d_log_det, float* dx, float* dh, float* d_scale, std::size_t batch,
                              std::size_t dim, std::size_t offset, std::size_t width);

// Additive forward / inverse: y_b = x_b + m, x_b = y_b − m (columns [offset, offset + width)).
void coupling_additive_forward(const float* x, const float* h, float* y, std::size_t batch, std::size_t dim,
                               std::size_t offset, std::size_t width);
void coupling_additive_inverse(const float* y, const float* h, float* x, std::size_t batch, std::size_t dim,
                               std::size_t offset, std::size_t width);
// Additive backward: columns [offset, offset + width) of dx and all of dh [batch, width], both dy_b.
void coupling_additive_backward(const float* dy, float* dx, float* dh, std::size_t batch, std::size_t dim,
                                std::size_t offset, std::size_t width);

// NICE scaling layer on whole rows: y = x ⊙ exp(log_scale), log_det = Σ log_scale.
void coupling_scale_forward(const float* x, const float* log_scale, float* y, float* log_det, std::size_t batch,
                            std::size_t dim);
// x = y ⊙ exp(−log_scale), log_det = −Σ log_scale.
void coupling_scale_inverse(const float* y, const float* log_scale, float* x, float* log_det, std::size_t batch,
                            std::size_t dim);
// dx = dy ⊙ exp(log_scale) (overwritten), d_log_scale += Σ_rows (dy ⊙ x ⊙ exp(log_scale) + d_log_det).
void coupling_scale_backward(const float* x, const float* log_scale, const float* dy, const float* d_log_det, float* dx,
                             float* d_log_scale, std::size_t batch, std::size_t dim);

}  // namespace flowvae
