// Dense kernels on the GPU (native/cuda/dense.cu): the same products as
// flowvae/dense.h, over device pointers, enqueued on cuda::stream().
#pragma once
#include <cstddef>

namespace flowvae {
namespace cuda {

// C = alpha · op(A) · op(B) + beta · C (+ bias[j] added to every row when bias
// is not null), row-major, densely stored (shapes as in flowvae::sgemm).
// beta == 0 overwrites C; alpha == 0 or k == 0 reads neither A nor B.
void sgemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
           const float* b, float beta, float* c, const float* bias = nullptr);

// y[batch, out] = x[batch, in] · weight[out, in]ᵀ + bias[out]; bias may be null.
void dense_forward(const float* x, const float* weight, const float* bias, float* y, std::size_t batch,
                   std::size_t in_dim, std::size_t out_dim);

// dx = dy · W (overwritten), d_weight = dyᵀ · x and d_bias = Σ_rows dy (added
// to when accumulate, else overwritten); each output may be null.
void dense_backward(const float* x, const float* weight, const float* dy, float* dx, float* d_weight, float* d_bias,
                    std::size_t batch, std::size_t in_dim, std::size_t out_dim, bool accumulate);

}  // namespace cuda
}  // namespace flowvae
