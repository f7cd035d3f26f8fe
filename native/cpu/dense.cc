// Dense kernels: a blocked SGEMM in the style of GotoBLAS/BLIS, and the dense
// layer built on it.
//
// sgemm splits C into one rectangle per thread. Each thread walks its
// rectangle in cache blocks: an NC-wide column block, a KC-deep slice of k,
// whose op(B) slice is packed into NR-wide micro-panels (kept in L2), then
// MC-tall row blocks of op(A) packed into MR-tall micro-panels (small enough
// for L1). The micro-kernel multiplies one A micro-panel by one B micro-panel
// into an MR x NR register tile and adds it into C. Packing handles all four
// transpose combinations and the zero padding of edge panels, so the
// micro-kernels only ever read contiguous, aligned memory.
//
// Three micro-kernel sets, chosen at run time by simd_level():
//   AVX-512: 14 x 32 (28 zmm accumulators), rows 1..14, columns masked.
//   AVX2+FMA: 6 x 16 (12 ymm accumulators), rows 1..6, columns masked.
//   scalar: 4 x 8 in plain C++ (any x86-64, and the sanitizer build).
#include "flowvae/dense.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "flowvae/cpu_features.h"
#include "flowvae/parallel.h"

// Register tiles are arrays indexed by loop counters; the loops over them
// must be fully unrolled for the arrays to live in registers.
#define FLOWVAE_UNROLL _Pragma("GCC unroll 32")

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FLOWVAE_X86 1
#else
#define FLOWVAE_X86 0
#endif

namespace flowvae {
namespace {

constexpr std::size_t kAlign = 64;  // bytes: one cache line, one zmm register
constexpr std::size_t kAlignFloats = kAlign / sizeof(float);
// Floats the SIMD packers may write past the end of a packed block (see pack_transposed_avx2).
constexpr std::size_t kPackSlack = 8;

std::size_t round_up(std::size_t x, std::size_t to) { return (x + to - 1) / to * to; }
std::size_t ceil_div(std::size_t x, std::size_t y) { return (x + y - 1) / y; }

// ---------------------------------------------------------------------------
// Workspace: grow-only, 64-byte aligned, one per calling thread. A call sizes
// it once for all its tasks before going parallel, so allocation failure
// surfaces as std::bad_alloc on the calling thread and no kernel allocates.

class Workspace {
 public:
  Workspace() = default;
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  ~Workspace() { std::free(data_); }

  float* reserve(std::size_t floats) {
    if (floats > capacity_) {
      std::size_t bytes = round_up(floats * sizeof(float), kAlign);
      void* p = std::aligned_alloc(kAlign, bytes);
      if (p == nullptr) throw std::bad_alloc();
      std::free(data_);
      data_ = static_cast<float*>(p);
      capacity_ = bytes / sizeof(float);
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  std::size_t capacity_ = 0;
};

thread_local Workspace tls_workspace;

// ---------------------------------------------------------------------------
// Problem description shared by the drivers.

struct Gemm {
  bool trans_a, trans_b;
  std::size_t m, n, k;
  float alpha;
  const float* a;
  std::size_t lda;
  const float* b;
  std::size_t ldb;
  float beta;
  float* c;
  std::size_t ldc;
  // When set, C = alpha op(A) op(B) + bias (one value per column) and beta is
  // not used: each task writes the bias into its own rectangle of C first,
  // where the product then accumulates (the dense layer's forward).
  const float* bias = nullptr;
  // When set, column j of C needs only k in [k_begin[j], k_end[j]): the terms
  // outside are zero by the caller's structure (a MADE layer's masked
  // weight), and the micro-kernels skip them. Ranges are taken per half
  // micro-panel on the SIMD paths (16 columns on AVX-512, 8 on AVX2), so a
  // mask's staircase is followed closely.
  const uint32_t* k_begin = nullptr;
  const uint32_t* k_end = nullptr;
  // When set, row i of C needs only the columns [n_begin[i], n_end[i]); the
  // others are not written (the caller discards them: a masked weight
  // gradient). Micro-tiles whose rows need none of a piece's columns are skipped.
  const uint32_t* n_begin = nullptr;
  const uint32_t* n_end = nullptr;
};

// Element (i, p) of op(A) and (p, j) of op(B), for the scalar packers.
inline float op_a(const Gemm& g, std::size_t i, std::size_t p) {
  return g.trans_a ? g.a[p * g.lda + i] : g.a[i * g.lda + p];
}
inline float op_b(const Gemm& g, std::size_t p, std::size_t j) {
  return g.trans_b ? g.b[j * g.ldb + p] : g.b[p * g.ldb + j];
}

// C[rows, cols] = beta * C (beta == 0 writes zeros): the whole product when
// alpha == 0 or k == 0.
void scale_c(float* c, std::size_t ldc, std::size_t rows, std::size_t cols, float beta) {
  for (std::size_t i = 0; i < rows; ++i) {
    float* row = c + i * ldc;
    if (beta == 0.0f) {
      std::fill(row, row + cols, 0.0f);
    } else if (beta != 1.0f) {
      for (std::size_t j = 0; j < cols; ++j) row[j] *= beta;
    }
  }
}

// ---------------------------------------------------------------------------
// Scalar packing (portable; also the reference the SIMD packers must match).
//
// A block [i0, i0+mc) x [p0, p0+kc) goes into micro-panels of MR rows:
// panel r holds dst[r*MR*kc + p*MR + i] = op(A)(i0 + r*MR + i, p0 + p). Rows
// of the last panel beyond mc are zero.
// B block [p0, p0+kc) x [j0, j0+nc) goes into micro-panels of NR columns:
// panel s holds dst[s*NR*kc + p*NR + j] = op(B)(p0 + p, j0 + s*NR + j), with
// columns beyond nc zero.

void pack_a_scalar(const Gemm& g, std::size_t i0, std::size_t mc, std::size_t p0, std::size_t kc, std::size_t mr,
                   float* dst) {
  for (std::size_t r = 0; r < mc; r += mr) {
    std::size_t rows = std::min(mr, mc - r);
    float* panel = dst + r * kc;
    for (std::size_t p = 0; p < kc; ++p) {
      for (std::size_t i = 0; i < rows; ++i) panel[p * mr + i] = op_a(g, i0 + r + i, p0 + p);
      for (std::size_t i = rows; i < mr; ++i) panel[p * mr + i] = 0.0f;
    }
  }
}

void pack_b_scalar(const Gemm& g, std::size_t p0, std::size_t kc, std::size_t j0, std::size_t nc, std::size_t nr,
                   float* dst) {
  for (std::size_t s = 0; s < nc; s += nr) {
    std::size_t cols = std::min(nr, nc - s);
    float* panel = dst + s * kc;
    for (std::size_t p = 0; p < kc; ++p) {
      for (std::size_t j = 0; j < cols; ++j) panel[p * nr + j] = op_b(g, p0 + p, j0 + s + j);
      for (std::size_t j = cols; j < nr; ++j) panel[p * nr + j] = 0.0f;
    }
  }
}

// ---------------------------------------------------------------------------
// Scalar micro-kernel: C[rows, cols] = alpha * Ap Bp + beta * C.

constexpr std::size_t kScalarMR = 4, kScalarNR = 8;

void kernel_scalar(std::size_t rows, std::size_t cols, std::size_t kc, const float* ap, const float* bp, float* c,
                   std::size_t ldc, float alpha, float beta) {
  float acc[kScalarMR][kScalarNR] = {};
  for (std::size_t p = 0; p < kc; ++p) {
    for (std::size_t i = 0; i < kScalarMR; ++i) {
      float a = ap[p * kScalarMR + i];
      for (std::size_t j = 0; j < kScalarNR; ++j) acc[i][j] += a * bp[p * kScalarNR + j];
    }
  }
  for (std::size_t i = 0; i < rows; ++i) {
    float* row = c + i * ldc;
    for (std::size_t j = 0; j < cols; ++j) {
      row[j] = beta == 0.0f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * row[j];
    }
  }
}

struct ScalarArch {
  static constexpr std::size_t MR = kScalarMR, NR = kScalarNR;
  static constexpr std::size_t MC = 64, KC = 256, NC = 1024;
  static void pack_a(const Gemm& g, std::size_t i0, std::size_t mc, std::size_t p0, std::size_t kc, float* dst) {
    pack_a_scalar(g, i0, mc, p0, kc, MR, dst);
  }
  static void pack_b(const Gemm& g, std::size_t p0, std::size_t kc, std::size_t j0, std::size_t nc, float* dst) {
    pack_b_scalar(g, p0, kc, j0, nc, NR, dst);
  }
  static void kernel(std::size_t rows, std::size_t cols, std::size_t kc, const float* ap, const float* bp, float* c,
                     std::size_t ldc, float alpha, float beta) {
    kernel_scalar(rows, cols, kc, ap, bp, c, ldc, alpha, beta);
  }
};

#if FLOWVAE_X86

// ---------------------------------------------------------------------------
// AVX2 packing helpers (also used by the AVX-512 path: every AVX-512 CPU has
// AVX2).

// Transposes the 8x8 block held in r[0..7] (rows) into columns, in place.
__attribute__((target("avx2,fma"))) inline void transpose8x8(__m256 r[8]) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]);
  __m256 t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]);
  __m256 t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]);
  __m256 t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]);
  __m256 t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
  __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
  __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// Lane masks for _mm256_maskload_ps/_mm256_maskstore_ps: the first n lanes.
alignas(32) const int32_t kLaneMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
__attribute__((target("avx2,fma"))) inline __m256i lane_mask(std::size_t n) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLaneMaskTable + 8 - n));
}

// Packed panels are written with whole 8-float stores even where a panel is
// narrower than a multiple of 8 (A panels of 14 or 6 rows): masked stores are
// microcoded and slow on AMD. The lanes past the panel's width spill into the
// first slots of the next k step (or the next panel), which are always
// written afterwards, so the order of the stores below matters. After the
// last panel of a buffer up to kPackSlack floats spill past its end.

// Loads 8 floats of a row, or the first n of them (n < 8) with zeros after,
// never touching memory past the n-th.
__attribute__((target("avx2,fma"))) inline __m256 load_row(const float* p, std::size_t n) {
  return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, lane_mask(n));
}

// Transposing pack: dst[c * width + r] = src[r * ld + c] for r < rows,
// c < cols; dst[c * width + r] = 0 for rows <= r < width (rows <= width).
// Rows go in groups of 8 through 8x8 register transposes; the groups are
// stored last to first so a partial group's spill into the next column is
// overwritten by that column's group 0.
__attribute__((target("avx2,fma"))) void pack_transposed_avx2(const float* src, std::size_t ld, std::size_t rows,
                                                              std::size_t cols, std::size_t width, float* dst) {
  std::size_t groups = ceil_div(width, 8);
  for (std::size_t gi = groups; gi-- > 0;) {
    std::size_t r0 = gi * 8;
    std::size_t live = rows > r0 ? std::min<std::size_t>(8, rows - r0) : 0;  // rows with data in this group
    const float* base = src + r0 * ld;
    float* out = dst + r0;
    for (std::size_t c0 = 0; c0 < cols; c0 += 8) {
      std::size_t n = std::min<std::size_t>(8, cols - c0);
      __m256 r[8];
      if (live == 8) {
        for (std::size_t i = 0; i < 8; ++i) r[i] = load_row(base + i * ld + c0, n);
      } else {
        for (std::size_t i = 0; i < 8; ++i) r[i] = i < live ? load_row(base + i * ld + c0, n) : _mm256_setzero_ps();
      }
      transpose8x8(r);
      for (std::size_t j = 0; j < n; ++j) _mm256_storeu_ps(out + (c0 + j) * width, r[j]);
    }
  }
}

// Copying pack: dst[p * width + j] = src[p * ld + j] for j < cols, zero for
// cols <= j < width. Steps go in increasing p so each step's spill past
// `width` is overwritten by the next step.
__attribute__((target("avx2,fma"))) void pack_copy_avx2(const float* src, std::size_t ld, std::size_t kc,
                                                        std::size_t cols, std::size_t width, float* dst) {
  for (std::size_t p = 0; p < kc; ++p) {
    const float* in = src + p * ld;
    float* out = dst + p * width;
    for (std::size_t j = 0; j < width; j += 8) {
      __m256 v = j < cols ? load_row(in + j, cols - j) : _mm256_setzero_ps();
      _mm256_storeu_ps(out + j, v);
    }
  }
}

template <std::size_t MR>
void pack_a_simd(const Gemm& g, std::size_t i0, std::size_t mc, std::size_t p0, std::size_t kc, float* dst) {
  for (std::size_t r = 0; r < mc; r += MR) {
    std::size_t rows = std::min(MR, mc - r);
    float* panel = dst + r * kc;
    if (g.trans_a) {
      // op(A)(i, p) = A[p, i]: each k step is a contiguous run of rows.
      pack_copy_avx2(g.a + p0 * g.lda + i0 + r, g.lda, kc, rows, MR, panel);
    } else {
      pack_transposed_avx2(g.a + (i0 + r) * g.lda + p0, g.lda, rows, kc, MR, panel);
    }
  }
}

template <std::size_t NR>
void pack_b_simd(const Gemm& g, std::size_t p0, std::size_t kc, std::size_t j0, std::size_t nc, float* dst) {
  for (std::size_t s = 0; s < nc; s += NR) {
    std::size_t cols = std::min(NR, nc - s);
    float* panel = dst + s * kc;
    if (g.trans_b) {
      // op(B)(p, j) = B[j, p]: a transpose of `cols` rows of B.
      pack_transposed_avx2(g.b + (j0 + s) * g.ldb + p0, g.ldb, cols, kc, NR, panel);
    } else {
      pack_copy_avx2(g.b + p0 * g.ldb + j0 + s, g.ldb, kc, cols, NR, panel);
    }
  }
}

// Starts loading the micro-tile of C the kernel will update (M rows of
// `cols` floats) while its k loop runs: C is usually cold (a gradient last
// touched a whole training step ago), and 2-3 cache misses per row, taken
// only after the loop, would stall the kernel on short k (the batch of a
// weight-gradient product).
template <std::size_t M>
inline void prefetch_c_tile(const float* c, std::size_t ldc, std::size_t cols) {
  FLOWVAE_UNROLL
  for (std::size_t i = 0; i < M; ++i) {
    const char* row = reinterpret_cast<const char*>(c + i * ldc);
    const char* last = reinterpret_cast<const char*>(c + i * ldc + cols - 1);
    _mm_prefetch(row, _MM_HINT_T0);
    _mm_prefetch(last, _MM_HINT_T0);
    if (cols > 16) _mm_prefetch(row + 64, _MM_HINT_T0);
  }
}

// ---------------------------------------------------------------------------
// AVX2 + FMA micro-kernel: 6 x 16, i.e. 12 ymm accumulators, 2 ymm of B and
// one broadcast of A per k step (15 of the 16 ymm registers).

constexpr std::size_t kAvx2MR = 6, kAvx2NR = 16;

template <std::size_t M, std::size_t NV>
__attribute__((target("avx2,fma"))) void kernel_avx2(std::size_t cols, std::size_t kc, const float* ap, const float* bp,
                                                     float* c, std::size_t ldc, float alpha, float beta) {
  __m256 acc[M][NV];
  FLOWVAE_UNROLL
  for (std::size_t i = 0; i < M; ++i) {
    FLOWVAE_UNROLL
    for (std::size_t v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_ps();
  }
  prefetch_c_tile<M>(c, ldc, cols);
  for (std::size_t p = 0; p < kc; ++p) {
    __m256 b[NV];
    FLOWVAE_UNROLL
    for (std::size_t v = 0; v < NV; ++v) b[v] = _mm256_load_ps(bp + 8 * v);
    FLOWVAE_UNROLL
    for (std::size_t i = 0; i < M; ++i) {
      __m256 a = _mm256_broadcast_ss(ap + i);
      FLOWVAE_UNROLL
      for (std::size_t v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(a, b[v], acc[i][v]);
    }
    ap += kAvx2MR;
    bp += kAvx2NR;
  }
  // The last vector may be partial: masked loads/stores never touch memory
  // past column `cols`.
  const __m256i tail_mask = lane_mask(cols - 8 * (NV - 1));
  const bool tail_full = cols == 8 * NV;
  const __m256 va = _mm256_set1_ps(alpha);
  const __m256 vb = _mm256_set1_ps(beta);
  FLOWVAE_UNROLL
  for (std::size_t i = 0; i < M; ++i) {
    float* row = c + i * ldc;
    FLOWVAE_UNROLL
    for (std::size_t v = 0; v < NV; ++v) {
      bool masked = v == NV - 1 && !tail_full;
      __m256 out;
      if (beta == 0.0f) {
        out = _mm256_mul_ps(va, acc[i][v]);
      } else {
        __m256 old = masked ? _mm256_maskload_ps(row + 8 * v, tail_mask) : _mm256_loadu_ps(row + 8 * v);
        out = _mm256_fmadd_ps(va, acc[i][v], _mm256_mul_ps(vb, old));
      }
      if (masked) {
        _mm256_maskstore_ps(row + 8 * v, tail_mask, out);
      } else {
        _mm256_storeu_ps(row + 8 * v, out);
      }
    }
  }
}

using KernelFn = void (*)(std::size_t cols, std::size_t kc, const float* ap, const float* bp, float* c, std::size_t ldc,
                          float alpha, float beta);

// Kernels for every edge height 1..MR and 1 or 2 column vectors, in a table
// built at compile time: table[rows - 1][vectors - 1].
template <class Kernels, std::size_t... Rows>
constexpr std::array<std::array<KernelFn, 2>, sizeof...(Rows)> make_kernel_table(std::index_sequence<Rows...>) {
  return {{{Kernels::template fn<Rows + 1, 1>(), Kernels::template fn<Rows + 1, 2>()}...}};
}

struct Avx2Kernels {
  template <std::size_t M, std::size_t NV>
  static constexpr KernelFn fn() {
    return &kernel_avx2<M, NV>;
  }
};

struct Avx2Arch {
  static constexpr std::size_t MR = kAvx2MR, NR = kAvx2NR;
  static constexpr std::size_t MC = 120, KC = 320, NC = 2048;
  static void pack_a(const Gemm& g, std::size_t i0, std::size_t mc, std::size_t p0, std::size_t kc, float* dst) {
    pack_a_simd<MR>(g, i0, mc, p0, kc, dst);
  }
  static void pack_b(const Gemm& g, std::size_t p0, std::size_t kc, std::size_t j0, std::size_t nc, float* dst) {
    pack_b_simd<NR>(g, p0, kc, j0, nc, dst);
  }
  static constexpr auto kTable = make_kernel_table<Avx2Kernels>(std::make_index_sequence<MR>{});
  static void kernel(std::size_t rows, std::size_t cols, std::size_t kc, const float* ap, const float* bp, float* c,
                     std::size_t ldc, float alpha, float beta) {
    kTable[rows - 1][ceil_div(cols, 8) - 1](cols, kc, ap, bp, c, ldc, alpha, beta);
  }
};

// ---------------------------------------------------------------------------
// AVX-512 micro-kernel: 14 x 32, i.e. 28 zmm accumulators, 2 zmm of B and one
// broadcast of A per k step (31 of the 32 zmm registers). Partial columns use
// write masks, so an edge tile costs only the rows and vectors it has.

constexpr std::size_t kAvx512MR = 14, kAvx512NR = 32;

template <std::size_t M, std::size_t NV>
__attribute__((target("avx512f"))) void kernel_avx512(std::size_t cols, std::size_t kc, const float* ap,
                                                      const float* bp, float* c, std::size_t ldc, float alpha,
                                                      float beta) {
  __m512 acc[M][NV];
  FLOWVAE_UNROLL
  for (std::size_t i = 0; i < M; ++i) {
    FLOWVAE_UNROLL
    for (std::size_t v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  }
  prefetch_c_tile<M>(c, ldc, cols);
  for (std::size_t p = 0; p < kc; ++p) {
    __m512 b[NV];
    FLOWVAE_UNROLL
    for (std::size_t v = 0; v < NV; ++v) b[v] = _mm512_load_ps(bp + 16 * v);
    FLOWVAE_UNROLL
    for (std::size_t i = 0; i < M; ++i) {
      __m512 a = _mm512_set1_ps(ap[i]);
      FLOWVAE_UNROLL
      for (std::size_t v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(a, b[v], acc[i][v]);
    }
    ap += kAvx512MR;
    bp += kAvx512NR;
  }
  const std::size_t tail = cols - 16 * (NV - 1);
  const __mmask16 tail_mask = static_cast<__mmask16>(tail >= 16 ? 0xFFFFu : (1u << tail) - 1u);
  const __m512 va = _mm512_set1_ps(alpha);
  const __m512 vb = _mm512_set1_ps(beta);
  FLOWVAE_UNROLL
  for (std::size_t i = 0; i < M; ++i) {
    float* row = c + i * ldc;
    FLOWVAE_UNROLL
    for (std::size_t v = 0; v < NV; ++v) {
      __mmask16 mask = v == NV - 1 ? tail_mask : static_cast<__mmask16>(0xFFFF);
      __m512 out;
      if (beta == 0.0f) {
        out = _mm512_mul_ps(va, acc[i][v]);
      } else {
        __m512 old = _mm512_maskz_loadu_ps(mask, row + 16 * v);
        out = _mm512_fmadd_ps(va, acc[i][v], _mm512_mul_ps(vb, old));
      }
      _mm512_mask_storeu_ps(row + 16 * v, mask, out);
    }
  }
}

struct Avx512Kernels {
  template <std::size_t M, std::size_t NV>
  static constexpr KernelFn fn() {
    return &kernel_avx512<M, NV>;
  }
};

struct Avx512Arch {
  static constexpr std::size_t MR = kAvx512MR, NR = kAvx512NR;
  static constexpr std::size_t MC = 140, KC = 384, NC = 2048;
  static void pack_a(const Gemm& g, std::size_t i0, std::size_t mc, std::size_t p0, std::size_t kc, float* dst) {
    pack_a_simd<MR>(g, i0, mc, p0, kc, dst);
  }
  static void pack_b(const Gemm& g, std::size_t p0, std::size_t kc, std::size_t j0, std::size_t nc, float* dst) {
    pack_b_simd<NR>(g, p0, kc, j0, nc, dst);
  }
  static constexpr auto kTable = make_kernel_table<Avx512Kernels>(std::make_index_sequence<MR>{});
  static void kernel(std::size_t rows, std::size_t cols, std::size_t kc, const float* ap, const float* bp, float* c,
                     std::size_t ldc, float alpha, float beta) {
    kTable[rows - 1][ceil_div(cols, 16) - 1](cols, kc, ap, bp, c, ldc, alpha, beta);
  }
};

#endif  // FLOWVAE_X86

// ---------------------------------------------------------------------------
// Driver.

// The rectangle of C one task computes.
struct Tile {
  std::size_t m0, m1, n0, n1;
};

// Splits [0, len) into `parts` pieces whose boundaries are multiples of
// `unit` (except the end), as equal as possible; returns piece `index`.
std::pair<std::size_t, std::size_t> split_range(std::size_t len, std::size_t unit, std::size_t parts,
                                                std::size_t index) {
  std::size_t units = ceil_div(len, unit);
  std::size_t begin = std::min(len, units * index / parts * unit);
  std::size_t end = std::min(len, units * (index + 1) / parts * unit);
  return {begin, end};
}

// Relative cost of a task's rectangle per step of k, in vector FMAs: the
// rows each column vector really computes, a per-tile overhead (C traffic,
// loop entry), and packing its rows of A and columns of B (about a quarter
// of a vector FMA per element), which every task does for itself.
double tile_cost(std::size_t rows, std::size_t cols, std::size_t mr, std::size_t nr) {
  if (rows == 0 || cols == 0) return 0.0;
  double vectors = static_cast<double>(ceil_div(cols, nr / 2));  // half-panel granularity
  double compute = vectors * (static_cast<double>(rows) + 2.0 * static_cast<double>(ceil_div(rows, mr)));
  return compute + 0.25 * static_cast<double>(rows + cols);
}

// Below this many multiply-adds a product runs on the calling thread. A pool
// worker still polling from the previous call joins in under a microsecond,
// but a sleeping one takes 30-50 us to wake on these virtual machines; 2^20
// FMAs take about 20 us on one core, so smaller products stay on one thread.
constexpr double kParallelMinFmas = 1048576.0;

// Largest piece of split_range(len, unit, parts, *).
std::size_t largest_piece(std::size_t len, std::size_t unit, std::size_t parts) {
  std::size_t largest = 0;
  for (std::size_t i = 0; i < parts; ++i) {
    auto piece = split_range(len, unit, parts, i);
    largest = std::max(largest, piece.second - piece.first);
  }
  return largest;
}

// Chooses a tasks_m x tasks_n grid over C (tasks_m * tasks_n <= threads)
// minimising the most expensive task. The cost grows with rows and columns,
// so the most expensive task is the one with the largest row and column
// pieces, and only grids using as many threads as possible need trying.
void choose_grid(std::size_t m, std::size_t n, std::size_t k, std::size_t mr, std::size_t nr, std::size_t* tasks_m,
                 std::size_t* tasks_n) {
  *tasks_m = 1;
  *tasks_n = 1;
  double work = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  std::size_t threads = static_cast<std::size_t>(std::max(1, num_threads()));
  if (threads == 1 || work < kParallelMinFmas) return;
  // At least 2^19 FMAs per task.
  threads = std::min<std::size_t>(threads, static_cast<std::size_t>(work / (kParallelMinFmas / 2)));
  double best = tile_cost(m, n, mr, nr);
  for (std::size_t tm = 1; tm <= threads; ++tm) {
    std::size_t tn = threads / tm;
    if (tm * tn == 1 || tm > ceil_div(m, mr) || tn > ceil_div(n, nr / 2)) continue;
    double worst = tile_cost(largest_piece(m, mr, tm), largest_piece(n, nr / 2, tn), mr, nr);
    // Prefer more tasks only when it pays (1% margin against noise in the model).
    if (worst < best * 0.99) {
      best = worst;
      *tasks_m = tm;
      *tasks_n = tn;
    }
  }
}

// Block sizes for a dimension: `len` cut into ceil(len / max_block) nearly
// equal blocks, rounded up to `unit`.
std::size_t balanced_block(std::size_t len, std::size_t max_block, std::size_t unit) {
  std::size_t blocks = ceil_div(len, max_block);
  return round_up(ceil_div(len, blocks), unit);
}

template <class Arch>
struct Driver {
  static constexpr std::size_t MR = Arch::MR, NR = Arch::NR;

  // Floats of packing space one task needs for its rectangle.
  static std::size_t workspace_floats(const Gemm& g, std::size_t rows, std::size_t cols) {
    std::size_t kc = balanced_block(g.k, Arch::KC, 1);
    std::size_t mc = std::min(balanced_block(rows, Arch::MC, MR), round_up(rows, MR));
    std::size_t nc = std::min(balanced_block(cols, Arch::NC, NR), round_up(cols, NR));
    return round_up(mc * kc + kPackSlack, kAlignFloats) + round_up(nc * kc + kPackSlack, kAlignFloats);
  }

  // Whether some row of [i, i + rows) needs a column of [j, j + width) (Gemm::n_begin/n_end).
  static bool rows_need(const Gemm& g, std::size_t i, std::size_t rows, std::size_t j, std::size_t width) {
    for (std::size_t r = i; r < i + rows; ++r) {
      if (g.n_begin[r] < g.n_end[r] && g.n_begin[r] < j + width && g.n_end[r] > j) return true;
    }
    return false;
  }

  // One packed micro-panel of B (columns [j, j + ncols) of C) against the
  // packed rows [ic, ic + mc) of A, over only the k each piece of columns
  // needs (Gemm::k_begin/k_end) within this k block [pc, pc + kc), and only
  // for the rows that need the piece (Gemm::n_begin/n_end).
  static void run_ranged_panel(const Gemm& g, std::size_t j, std::size_t ncols, std::size_t pc, std::size_t kc,
                               const float* bp, const float* a_pack, std::size_t ic, std::size_t mc, float beta) {
    // Half panels where the kernels can take them (they read B with the panel's stride, NR).
    constexpr std::size_t kPiece = NR >= 16 ? NR / 2 : NR;
    for (std::size_t j0 = 0; j0 < ncols; j0 += kPiece) {
      const std::size_t width = std::min(kPiece, ncols - j0);
      std::size_t lo = pc, hi = pc + kc;
      if (g.k_begin != nullptr) {
        lo = g.k;
        hi = 0;
        for (std::size_t c = j + j0; c < j + j0 + width; ++c) {
          lo = std::min<std::size_t>(lo, g.k_begin[c]);
          hi = std::max<std::size_t>(hi, g.k_end[c]);
        }
        lo = std::max(lo, pc);
        hi = std::min(hi, pc + kc);
      }
      const std::size_t span = hi > lo ? hi - lo : 0;
      // Nothing to add to C: only the first k block's beta (0: clear) still has to be applied.
      if (span == 0 && beta == 1.0f) continue;
      const std::size_t skip = span == 0 ? 0 : lo - pc;
      for (std::size_t ir = 0; ir < mc; ir += MR) {
        const std::size_t nrows = std::min(MR, mc - ir);
        if (g.n_begin != nullptr && !rows_need(g, ic + ir, nrows, j + j0, width)) continue;
        float* cp = g.c + (ic + ir) * g.ldc + j + j0;
        Arch::kernel(nrows, width, span, a_pack + ir * kc + skip * MR, bp + j0 + skip * NR, cp, g.ldc, g.alpha, beta);
      }
    }
  }

  // Computes the rectangle `t` of C with packing space `work`.
  static void run_tile(const Gemm& g, const Tile& t, float* work) {
    std::size_t rows = t.m1 - t.m0, cols = t.n1 - t.n0;
    if (rows == 0 || cols == 0) return;
    std::size_t kc_max = balanced_block(g.k, Arch::KC, 1);
    std::size_t mc_max = std::min(balanced_block(rows, Arch::MC, MR), round_up(rows, MR));
    std::size_t nc_max = std::min(balanced_block(cols, Arch::NC, NR), round_up(cols, NR));
    float* a_pack = work;
    float* b_pack = work + round_up(mc_max * kc_max + kPackSlack, kAlignFloats);
    if (g.bias != nullptr) {
      for (std::size_t i = t.m0; i < t.m1; ++i)
        std::memcpy(g.c + i * g.ldc + t.n0, g.bias + t.n0, cols * sizeof(float));
    }
    for (std::size_t jc = t.n0; jc < t.n1; jc += nc_max) {
      std::size_t nc = std::min(nc_max, t.n1 - jc);
      for (std::size_t pc = 0; pc < g.k; pc += kc_max) {
        std::size_t kc = std::min(kc_max, g.k - pc);
        // The first k slice applies beta (or adds to the bias); later slices add to it.
        float beta = pc == 0 && g.bias == nullptr ? g.beta : 1.0f;
        Arch::pack_b(g, pc, kc, jc, nc, b_pack);
        for (std::size_t ic = t.m0; ic < t.m1; ic += mc_max) {
          std::size_t mc = std::min(mc_max, t.m1 - ic);
          Arch::pack_a(g, ic, mc, pc, kc, a_pack);
          for (std::size_t jr = 0; jr < nc; jr += NR) {
            std::size_t ncols = std::min(NR, nc - jr);
            const float* bp = b_pack + jr * kc;
            if (g.k_begin != nullptr || g.n_begin != nullptr) {
              run_ranged_panel(g, jc + jr, ncols, pc, kc, bp, a_pack, ic, mc, beta);
              continue;
            }
            for (std::size_t ir = 0; ir < mc; ir += MR) {
              std::size_t nrows = std::min(MR, mc - ir);
              float* cp = g.c + (ic + ir) * g.ldc + jc + jr;
              Arch::kernel(nrows, ncols, kc, a_pack + ir * kc, bp, cp, g.ldc, g.alpha, beta);
            }
          }
        }
      }
    }
  }

  static void run(const Gemm& g) {
    std::size_t tasks_m = 1, tasks_n = 1;
    choose_grid(g.m, g.n, g.k, MR, NR, &tasks_m, &tasks_n);
    std::size_t tasks = tasks_m * tasks_n;
    auto tile_of = [&](std::size_t task) {
      auto rows = split_range(g.m, MR, tasks_m, task / tasks_n);
      auto cols = split_range(g.n, NR / 2, tasks_n, task % tasks_n);
      return Tile{rows.first, rows.second, cols.first, cols.second};
    };
    // One workspace slice per task, all reserved up front on this thread.
    std::size_t slice = 0;
    for (std::size_t t = 0; t < tasks; ++t) {
      Tile tile = tile_of(t);
      slice = std::max(slice, workspace_floats(g, tile.m1 - tile.m0, tile.n1 - tile.n0));
    }
    float* work = tls_workspace.reserve(slice * tasks);
    if (tasks == 1) {
      run_tile(g, tile_of(0), work);
      return;
    }
    parallel_tasks(static_cast<int>(tasks), [&](int task, int ntasks) {
      // With fewer threads than asked for (pool busy), each thread takes
      // several rectangles; the rectangles themselves never change.
      for (std::size_t t = static_cast<std::size_t>(task); t < tasks; t += static_cast<std::size_t>(ntasks)) {
        run_tile(g, tile_of(t), work + t * slice);
      }
    });
  }
};

// Runs a product with m, n, k > 0 and alpha != 0 on the best kernels here.
void run_gemm(const Gemm& g) {
#if FLOWVAE_X86
  switch (simd_level()) {
    case SimdLevel::kAvx512: Driver<Avx512Arch>::run(g); return;
    case SimdLevel::kAvx2: Driver<Avx2Arch>::run(g); return;
    default: break;
  }
#endif
  Driver<ScalarArch>::run(g);
}

// Runs a product, or only C = beta·C when it has no terms (k == 0 or alpha == 0:
// A and B are not read).
void run_product(const Gemm& g) {
  if (g.m == 0 || g.n == 0) return;
  if (g.k == 0 || g.alpha == 0.0f) {
    scale_c(g.c, g.ldc, g.m, g.n, g.beta);
    return;
  }
  run_gemm(g);
}

// The dense layer's forward C = op(A) op(B) + bias on the product `g` (beta 0); bias may be null.
void run_dense_forward(Gemm g, const float* bias) {
  if (bias == nullptr) {
    run_product(g);
  } else if (g.m == 0 || g.n == 0) {
    return;
  } else if (g.k == 0) {
    for (std::size_t r = 0; r < g.m; ++r) std::memcpy(g.c + r * g.ldc, bias, g.n * sizeof(float));
  } else {
    g.bias = bias;
    run_gemm(g);
  }
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
           std::size_t lda, const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc) {
  run_product(Gemm{trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc});
}

void sgemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
           const float* b, float beta, float* c) {
  sgemm(trans_a, trans_b, m, n, k, alpha, a, trans_a ? m : k, b, trans_b ? k : n, beta, c, n);
}

void sgemm_column_ranges(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha,
                         const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
                         std::size_t ldc, const uint32_t* k_begin, const uint32_t* k_end) {
  Gemm g{trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc};
  g.k_begin = k_begin;
  g.k_end = k_end;
  run_product(g);
}

void sgemm_row_ranges(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha,
                      const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
                      std::size_t ldc, const uint32_t* n_begin, const uint32_t* n_end) {
  Gemm g{trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc};
  g.n_begin = n_begin;
  g.n_end = n_end;
  run_product(g);
}

void dense_forward(const float* x, const float* weight, const float* bias, float* y, std::size_t batch,
                   std::size_t in_dim, std::size_t out_dim) {
  run_dense_forward(Gemm{false, true, batch, out_dim, in_dim, 1.0f, x, in_dim, weight, in_dim, 0.0f, y, out_dim}, bias);
}

void dense_forward_column_ranges(const float* x, const float* weight, const float* bias, float* y, std::size_t batch,
                                 std::size_t in_dim, std::size_t out_dim, const uint32_t* k_begin,
                                 const uint32_t* k_end) {
  Gemm g{false, true, batch, out_dim, in_dim, 1.0f, x, in_dim, weight, in_dim, 0.0f, y, out_dim};
  g.k_begin = k_begin;
  g.k_end = k_end;
  run_dense_forward(g, bias);
}

void dense_backward(const float* x, const float* weight, const float* dy, float* dx, float* d_weight, float* d_bias,
                    std::size_t batch, std::size_t in_dim, std::size_t out_dim, bool accumulate) {
  float beta = accumulate ? 1.0f : 0.0f;
  if (dx != nullptr) sgemm(false, false, batch, in_dim, out_dim, 1.0f, dy, weight, 0.0f, dx);
  if (d_weight != nullptr) sgemm(true, false, out_dim, in_dim, batch, 1.0f, dy, x, beta, d_weight);
  if (d_bias != nullptr) {
    if (!accumulate) std::fill(d_bias, d_bias + out_dim, 0.0f);
    for (std::size_t r = 0; r < batch; ++r) {
      const float* row = dy + r * out_dim;
      for (std::size_t j = 0; j < out_dim; ++j) d_bias[j] += row[j];
    }
  }
}

}  // namespace flowvae
