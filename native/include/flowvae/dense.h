// Dense kernels: single-precision matrix product (SGEMM) and the dense layer
// y = x Wᵀ + b built on it, with W stored [out, in] as in PyTorch nn.Linear.
// All matrices are row-major. Other kernel families (flows, MADE layers) call
// sgemm directly.
#pragma once
#include <cstddef>
#include <cstdint>

namespace flowvae {

// C = alpha · op(A) · op(B) + beta · C, row-major, with leading dimensions
// (elements between consecutive rows as stored).
//   op(A) is [m, k]: A stored [m, k] (lda >= k), or [k, m] when trans_a (lda >= m).
//   op(B) is [k, n]: B stored [k, n] (ldb >= n), or [n, k] when trans_b (ldb >= k).
//   C is [m, n] (ldc >= n).
// beta == 0 overwrites C (NaN/Inf already in C do not propagate); alpha == 0
// or k == 0 only scales C by beta, and then A and B are not read.
// C must not overlap A or B. Large products run on the thread pool
// (parallel.h); results are bit-identical whatever the thread count. Safe to
// call from several threads at once and from inside a parallel_for task (it
// then runs on the calling thread). Packing space is a grow-only buffer per
// calling thread; the first call at a new size may throw std::bad_alloc.
void sgemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
           std::size_t lda, const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc);

// Same, with densely stored matrices (leading dimensions implied by the shapes).
void sgemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
           const float* b, float beta, float* c);

// sgemm for products with known zeros: column j of C depends only on k in
// [k_begin[j], k_end[j]) (k_begin[j] <= k_end[j] <= k), because the terms
// outside are zero by the caller's structure (the masked weights of a MADE
// layer); they are skipped, so they must really be zero (non-finite values
// there are not propagated either).
void sgemm_column_ranges(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha,
                         const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
                         std::size_t ldc, const uint32_t* k_begin, const uint32_t* k_end);

// sgemm that computes only what each row of C needs: row i the columns
// [n_begin[i], n_end[i]); micro-tiles whose rows need none of their columns
// are skipped and their entries of C may be left as they were (the caller
// discards them: a masked weight gradient, masked afterwards).
void sgemm_row_ranges(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha,
                      const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
                      std::size_t ldc, const uint32_t* n_begin, const uint32_t* n_end);

// y[batch, out] = x[batch, in] · weight[out, in]ᵀ + bias[out]; bias may be null.
void dense_forward(const float* x, const float* weight, const float* bias, float* y, std::size_t batch,
                   std::size_t in_dim, std::size_t out_dim);

// dense_forward where output j depends only on inputs [k_begin[j], k_end[j]) (as sgemm_column_ranges).
void dense_forward_column_ranges(const float* x, const float* weight, const float* bias, float* y, std::size_t batch,
                                 std::size_t in_dim, std::size_t out_dim, const uint32_t* k_begin,
                                 const uint32_t* k_end);

// Given dy = ∂L/∂y [batch, out]:
//   dx[batch, in]      = dy · W             (overwritten)
//   d_weight[out, in]  = dyᵀ · x            (added to when accumulate, else overwritten)
//   d_bias[out]        = Σ_rows dy          (added to when accumulate, else overwritten)
// Each output may be null to skip it.
void dense_backward(const float* x, const float* weight, const float* dy, float* dx, float* d_weight, float* d_bias,
                    std::size_t batch, std::size_t in_dim, std::size_t out_dim, bool accumulate);

}  // namespace flowvae
