// Fused Adam/AdamW step (see flowvae/adam.h).
//
// Each tensor is cut into blocks of a size set by the total element count,
// so the block layout depends on the tensor sizes only. Each block's
// sum of squared gradients is accumulated in 16 double lanes (lane j takes the
// elements ≡ j mod 16 of the block) and reduced in lane order; the block sums
// are then added in block order. Threads take whole blocks, so the norm does
// not depend on the thread count, and the lanes are the same on every ISA.
// Without clipping one pass updates and sums; with clipping a first pass
// computes the norm and a second applies the scaled update.
#include "flowvae/adam.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "flowvae/parallel.h"
#include "flowvae/simd_ops.h"

namespace flowvae {
namespace {

constexpr std::size_t kLanes = 16;
// Blocks of at least 16384 elements (a multiple of 16), about 1024 of them at
// most (each tensor adds at most one partial block); threads take at least 2.
constexpr std::size_t kMinBlock = 16384;
constexpr std::size_t kMaxBlocks = 1024;
constexpr std::size_t kGrainBlocks = 2;

// Loop constants, computed once in double and rounded to float as PyTorch
// does with its Python-float hyper-parameters.
struct Coefficients {
  float scale;  // clipping factor
  float l2;     // Adam's weight decay, added to the gradient
  float decay;  // AdamW's factor 1 − lr·weightDecay
  float beta1, one_minus_beta1, beta2, one_minus_beta2;
  float bias2_sqrt;  // √(1 − β₂ᵗ)
  float eps;
  float step_size;  // lr / (1 − β₁ᵗ)
  bool clip, add_l2, apply_decay;
};

// One block's slices of the four buffers.
struct Block {
  float* params;
  const float* grads;
  float* m;
  float* v;
};

namespace scalar {

inline void update_one(const Coefficients& c, float& param, float grad, float& m, float& v) {
  float g = grad;
  if (c.clip) g = g * c.scale;
  float p = param;
  if (c.add_l2) g = g + c.l2 * p;
  if (c.apply_decay) p = p * c.decay;
  m = c.beta1 * m + c.one_minus_beta1 * g;
  v = c.beta2 * v + c.one_minus_beta2 * (g * g);
  float denom = std::sqrt(v) / c.bias2_sqrt + c.eps;
  param = p - c.step_size * (m / denom);
}

// Elements [begin, end) of a block; lanes (when given) receive the squares of
// the raw gradients at lane (index mod 16).
void update(const Coefficients& c, const Block& b, std::size_t begin, std::size_t end, double* lanes) {
  for (std::size_t i = begin; i < end; ++i) {
    if (lanes) lanes[i % kLanes] += static_cast<double>(b.grads[i]) * b.grads[i];
    update_one(c, b.params[i], b.grads[i], b.m[i], b.v[i]);
  }
}

void sum_squares(const float* g, std::size_t begin, std::size_t end, double* lanes) {
  for (std::size_t i = begin; i < end; ++i) lanes[i % kLanes] += static_cast<double>(g[i]) * g[i];
}

}  // namespace scalar

#if FLOWVAE_SIMD_X86
FLOWVAE_TARGET_AVX2
namespace avx2 {
using namespace simd::avx2;
#include "adam_vec.inc"
}  // namespace avx2
FLOWVAE_TARGET_END

FLOWVAE_TARGET_AVX512
namespace avx512 {
using namespace simd::avx512;
#include "adam_vec.inc"
}  // namespace avx512
FLOWVAE_TARGET_END
#endif  // FLOWVAE_SIMD_X86

enum class Pass { kNorm, kUpdate, kUpdateAndNorm };

struct Job {
  Pass pass;
  SimdLevel level;
  const Coefficients* coefficients;
  const Block* blocks;
  const std::size_t* lengths;
  double* block_sums;
};

// Runs one pass over block `index`; returns its sum of squared gradients
// (0 for kUpdate).
double run_block(const Job& job, std::size_t index) {
  const std::size_t len = job.lengths[index];
  const std::size_t full = len - len % kLanes;  // handled by the vector path
  const Block& b = job.blocks[index];
  const Coefficients& c = *job.coefficients;
  const bool norm = job.pass != Pass::kUpdate;
  double lanes[kLanes] = {};
  std::size_t done = 0;
#if FLOWVAE_SIMD_X86
  if (job.level != SimdLevel::kScalar && full > 0) {
    const bool wide = job.level == SimdLevel::kAvx512;
    switch (job.pass) {
      case Pass::kNorm:
        wide ? avx512::sum_squares(b.grads, full, lanes) : avx2::sum_squares(b.grads, full, lanes);
        break;
      case Pass::kUpdate:
        wide ? avx512::update<false>(c, b, full, lanes) : avx2::update<false>(c, b, full, lanes);
        break;
      case Pass::kUpdateAndNorm:
        wide ? avx512::update<true>(c, b, full, lanes) : avx2::update<true>(c, b, full, lanes);
        break;
    }
    done = full;
  }
#endif
  if (job.pass == Pass::kNorm) {
    scalar::sum_squares(b.grads, done, len, lanes);
  } else {
    scalar::update(c, b, done, len, norm ? lanes : nullptr);
  }
  double sum = 0.0;
  for (double lane : lanes) sum += lane;
  return sum;
}

// Runs a pass over every block (threads take contiguous runs of blocks) and
// returns the square root of the block sums added in block order.
double run_pass(Job& job, Pass pass, std::size_t blocks) {
  job.pass = pass;
  const Job& shared = job;  // one reference keeps the std::function small
  parallel_for(blocks, kGrainBlocks, [&shared](std::size_t first, std::size_t last) {
    for (std::size_t k = first; k < last; ++k) shared.block_sums[k] = run_block(shared, k);
  });
  double total = 0.0;
  for (std::size_t k = 0; k < blocks; ++k) total += job.block_sums[k];
  return std::sqrt(total);
}

// The block list of a call, kept per calling thread and grown only when a
// model has more blocks than any before it, so steps do not allocate.
struct BlockPlan {
  std::vector<Block> blocks;
  std::vector<std::size_t> lengths;
  std::vector<double> sums;
};
thread_local BlockPlan tls_plan;

}  // namespace

double adam_step(float* params, const float* grads, float* m, float* v, std::size_t n, const AdamOptions& o,
                 SimdLevel level) {
  const AdamTensor whole{params, grads, n};
  return adam_step_tensors(&whole, 1, m, v, o, level);
}

double adam_step_tensors(const AdamTensor* tensors, std::size_t count, float* m, float* v, const AdamOptions& o,
                         SimdLevel level) {
  std::size_t n = 0;
  for (std::size_t t = 0; t < count; ++t) n += tensors[t].n;
  if (n == 0) return 0.0;
  // Block size from the total alone: as few blocks as kMinBlock allows, capped.
  const std::size_t target_blocks = std::min(kMaxBlocks, (n + kMinBlock - 1) / kMinBlock);
  std::size_t block_size = (n + target_blocks - 1) / target_blocks;
  block_size = (block_size + kLanes - 1) / kLanes * kLanes;

  BlockPlan& plan = tls_plan;
  plan.blocks.clear();
  plan.lengths.clear();
  std::size_t offset = 0;  // of the tensor's moments in m and v
  for (std::size_t t = 0; t < count; ++t) {
    const AdamTensor& x = tensors[t];
    for (std::size_t begin = 0; begin < x.n; begin += block_size) {
      plan.blocks.push_back(Block{x.params + begin, x.grads + begin, m + offset + begin, v + offset + begin});
      plan.lengths.push_back(std::min(block_size, x.n - begin));
    }
    offset += x.n;
  }
  const std::size_t blocks = plan.blocks.size();
  plan.sums.resize(blocks);

  const double step = static_cast<double>(o.step);
  const double bias1 = 1.0 - std::pow(o.beta1, step);
  const double bias2 = 1.0 - std::pow(o.beta2, step);
  Coefficients c{};
  c.scale = 1.0f;
  c.add_l2 = !o.decoupled && o.weight_decay > 0.0;
  c.apply_decay = o.decoupled && o.weight_decay > 0.0;
  c.l2 = static_cast<float>(o.weight_decay);
  c.decay = static_cast<float>(1.0 - o.lr * o.weight_decay);
  c.beta1 = static_cast<float>(o.beta1);
  c.one_minus_beta1 = static_cast<float>(1.0 - o.beta1);
  c.beta2 = static_cast<float>(o.beta2);
  c.one_minus_beta2 = static_cast<float>(1.0 - o.beta2);
  c.bias2_sqrt = static_cast<float>(std::sqrt(bias2));
  c.eps = static_cast<float>(o.eps);
  c.step_size = static_cast<float>(o.lr / bias1);

  Job job{Pass::kNorm, simd::capped(level), &c, plan.blocks.data(), plan.lengths.data(), plan.sums.data()};
  if (o.max_grad_norm <= 0.0) return run_pass(job, Pass::kUpdateAndNorm, blocks);

  const double norm = run_pass(job, Pass::kNorm, blocks);
  // As torch.nn.utils.clip_grad_norm_; a NaN norm gives a NaN scale (clamp keeps NaN).
  const double ratio = o.max_grad_norm / (norm + 1e-6);
  c.clip = true;
  c.scale = static_cast<float>(std::isnan(ratio) ? ratio : std::min(1.0, ratio));
  run_pass(job, Pass::kUpdate, blocks);
  return norm;
}

}  // namespace flowvae
