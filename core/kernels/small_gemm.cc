// GemmNTBias (core/kernels/blas.h): C = A B^T + bias for products too small for
// OpenBLAS to pay off. A [m x k] and B [n x k] are both k-contiguous, so
// each output is a dot product: a 3 x 4 block of outputs keeps twelve
// 8-lane accumulators in registers (enough to cover the FMA latency;
// 2 x 4 ran at half the speed) and streams three rows of A against four
// rows of B (7 loads per 12 FMAs), with no packing. OpenBLAS packs B
// (a layer's weights) on every call, which at a 784 -> 30 layer costs as
// much as the arithmetic.
// M = rows (batch), N = outputs (units), K = inputs.
#include <cstdint>

#include "core/kernels/blas.h"
#include "core/kernels/isa.h"
#include "core/kernels/simd_target.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NNLAB_HAVE_SMALL_GEMM 1
#endif

namespace nnlab {
namespace {

#ifdef NNLAB_HAVE_SMALL_GEMM
NNLAB_BEGIN_AVX2_REGION

constexpr int kMr = 3, kNr = 4;

inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// One MR x NR block of C: rows a[0, MR) and b[0, NR), all k inputs.
// `tail` masks the last k % 8 lanes.
template <int MR, int NR>
__attribute__((always_inline)) inline void Block(int64_t k, const float* a,
                                                 int64_t lda, const float* b,
                                                 int64_t ldb, const float* bias,
                                                 float* c, int64_t ldc,
                                                 __m256i tail) {
  __m256 acc[MR][NR];
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
  }
  int64_t p = 0;
  for (; p + 8 <= k; p += 8) {
    __m256 av[MR];
    for (int i = 0; i < MR; ++i) av[i] = _mm256_loadu_ps(a + i * lda + p);
    for (int j = 0; j < NR; ++j) {
      const __m256 bv = _mm256_loadu_ps(b + j * ldb + p);
      for (int i = 0; i < MR; ++i) {
        acc[i][j] = _mm256_fmadd_ps(av[i], bv, acc[i][j]);
      }
    }
  }
  if (p < k) {
    __m256 av[MR];
    for (int i = 0; i < MR; ++i) {
      av[i] = _mm256_maskload_ps(a + i * lda + p, tail);
    }
    for (int j = 0; j < NR; ++j) {
      const __m256 bv = _mm256_maskload_ps(b + j * ldb + p, tail);
      for (int i = 0; i < MR; ++i) {
        acc[i][j] = _mm256_fmadd_ps(av[i], bv, acc[i][j]);
      }
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) {
      c[i * ldc + j] =
          HorizontalSum(acc[i][j]) + (bias != nullptr ? bias[j] : 0.0f);
    }
  }
}

template <int MR>
void Rows(int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
          int64_t ldb, const float* bias, float* c, int64_t ldc, __m256i tail,
          int64_t j) {
  const float* bj = b + j * ldb;
  const float* biasj = bias != nullptr ? bias + j : nullptr;
  switch (n - j) {
    case 1:
      Block<MR, 1>(k, a, lda, bj, ldb, biasj, c + j, ldc, tail);
      break;
    case 2:
      Block<MR, 2>(k, a, lda, bj, ldb, biasj, c + j, ldc, tail);
      break;
    case 3:
      Block<MR, 3>(k, a, lda, bj, ldb, biasj, c + j, ldc, tail);
      break;
    default:
      Block<MR, kNr>(k, a, lda, bj, ldb, biasj, c + j, ldc, tail);
      break;
  }
}

void SmallGemmAvx2(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                   const float* b, int64_t ldb, const float* bias, float* c,
                   int64_t ldc) {
  alignas(32) int32_t mask[8];
  for (int i = 0; i < 8; ++i) mask[i] = i < k % 8 ? -1 : 0;
  const __m256i tail = _mm256_load_si256(reinterpret_cast<__m256i*>(mask));
  // Columns of C outside: a block of 4 rows of B (4 x k floats; 12.5 KB at
  // k = 784) stays in L1 while every row triple of A streams past it.
  for (int64_t j = 0; j < n; j += kNr) {
    int64_t i = 0;
    for (; i + kMr <= m; i += kMr) {
      Rows<kMr>(n, k, a + i * lda, lda, b, ldb, bias, c + i * ldc, ldc, tail,
                j);
    }
    if (m - i == 2) {
      Rows<2>(n, k, a + i * lda, lda, b, ldb, bias, c + i * ldc, ldc, tail, j);
    } else if (m - i == 1) {
      Rows<1>(n, k, a + i * lda, lda, b, ldb, bias, c + i * ldc, ldc, tail, j);
    }
  }
}

// Inputs below this run the broadcast kernel instead: with k = 30 the
// dot-product kernel spends as long reducing its accumulators as it does
// multiplying.
constexpr int64_t kBroadcastMaxK = 128;
constexpr int64_t kMaxN = 64;

// Rows a[0, MR) times 16 columns of the packed B^T (wt: [k][ldw]),
// accumulators starting from the 16 biases; writes the lanes of `mask0`
// and `mask1` (the columns that exist).
template <int MR>
__attribute__((always_inline)) inline void BroadcastBlock(
    int64_t k, const float* a, int64_t lda, const float* wt, int64_t ldw,
    const float* bias16, float* c, int64_t ldc, __m256i mask0, __m256i mask1) {
  __m256 acc[MR][2];
  for (int i = 0; i < MR; ++i) {
    acc[i][0] = _mm256_load_ps(bias16);
    acc[i][1] = _mm256_load_ps(bias16 + 8);
  }
  for (int64_t p = 0; p < k; ++p) {
    const __m256 b0 = _mm256_load_ps(wt + p * ldw);
    const __m256 b1 = _mm256_load_ps(wt + p * ldw + 8);
    for (int i = 0; i < MR; ++i) {
      const __m256 x = _mm256_broadcast_ss(a + i * lda + p);
      acc[i][0] = _mm256_fmadd_ps(x, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(x, b1, acc[i][1]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    _mm256_maskstore_ps(c + i * ldc, mask0, acc[i][0]);
    _mm256_maskstore_ps(c + i * ldc + 8, mask1, acc[i][1]);
  }
}

// C = A B^T + bias for k < kBroadcastMaxK, n <= kMaxN: B^T is packed
// (k x n floats, cheap at these sizes) into 16-column panels, then six
// rows of A at a time are broadcast against a panel (12 accumulators).
void BroadcastGemmAvx2(int64_t m, int64_t n, int64_t k, const float* a,
                       int64_t lda, const float* b, int64_t ldb,
                       const float* bias, float* c, int64_t ldc) {
  const int64_t ldw = (n + 15) / 16 * 16;
  alignas(32) float wt[kBroadcastMaxK * kMaxN];
  alignas(32) float bias_pad[kMaxN];
  for (int64_t p = 0; p < k; ++p) {
    for (int64_t j = 0; j < n; ++j) wt[p * ldw + j] = b[j * ldb + p];
    for (int64_t j = n; j < ldw; ++j) wt[p * ldw + j] = 0.0f;
  }
  for (int64_t j = 0; j < ldw; ++j) {
    bias_pad[j] = bias != nullptr && j < n ? bias[j] : 0.0f;
  }
  constexpr int kRows = 6;
  for (int64_t j = 0; j < n; j += 16) {
    alignas(32) int32_t lanes[16];
    for (int l = 0; l < 16; ++l) lanes[l] = j + l < n ? -1 : 0;
    const __m256i mask0 = _mm256_load_si256(reinterpret_cast<__m256i*>(lanes));
    const __m256i mask1 =
        _mm256_load_si256(reinterpret_cast<__m256i*>(lanes + 8));
    const float* w = wt + j;
    const float* bj = bias_pad + j;
    int64_t i = 0;
    for (; i + kRows <= m; i += kRows) {
      BroadcastBlock<kRows>(k, a + i * lda, lda, w, ldw, bj, c + i * ldc + j,
                            ldc, mask0, mask1);
    }
    const float* ai = a + i * lda;
    float* ci = c + i * ldc + j;
    switch (m - i) {
      case 5:
        BroadcastBlock<5>(k, ai, lda, w, ldw, bj, ci, ldc, mask0, mask1);
        break;
      case 4:
        BroadcastBlock<4>(k, ai, lda, w, ldw, bj, ci, ldc, mask0, mask1);
        break;
      case 3:
        BroadcastBlock<3>(k, ai, lda, w, ldw, bj, ci, ldc, mask0, mask1);
        break;
      case 2:
        BroadcastBlock<2>(k, ai, lda, w, ldw, bj, ci, ldc, mask0, mask1);
        break;
      case 1:
        BroadcastBlock<1>(k, ai, lda, w, ldw, bj, ci, ldc, mask0, mask1);
        break;
      default:
        break;
    }
  }
}

NNLAB_END_AVX2_REGION

enum class SmallPath { kNone, kDot, kBroadcast };

// `gemm` is the library Gemm would run the product on.
SmallPath ChooseSmallPath(int64_t m, int64_t n, int64_t k, GemmLibrary gemm) {
  static const bool supported = IsaAllowed(Isa::kAvx2);
  // Measured (bench/kernels_bench BM_GemmNTBias, one thread): up to 64
  // outputs, the dot-product kernel beats OpenBLAS for k >= 128 under ~4 M
  // multiply-adds (64x30x784: 47 us vs 66; 10x30x784: 8.7 us vs 23) and
  // at any size for up to 16 outputs (256x1x784: 15 us vs 86); below
  // k = 128 the broadcast kernel does from 32 rows on (64x10x30: 1.4 us vs
  // 2.1; 64x30x30: even at 2.8 us), not at 10 rows (10x30x30: 1.6 us vs
  // 1.0). OpenBLAS wins from 64 x 128 outputs on.
  if (!supported || n > kMaxN || k < 1) return SmallPath::kNone;
  // oneDNN's AVX-512 sgemm (bias filled in first) beats both kernels from
  // 30 outputs and 8 rows on (1 thread, us: 64x30x784 19 vs 28, 10x30x128
  // 0.66 vs 0.90, 256x64x30 5.7 vs 7.8; 32x30x30 0.91 vs 0.82 is the one
  // loss), and at 16 outputs from 64 rows and 64 inputs (256x16x784 33 vs
  // 51, 64x16x128 2.0 vs 2.8), but not with fewer outputs (64x10x784 11 vs
  // 9.1, 32x16x784 level) or on one row (1x30x128 0.23 vs 0.15).
  if (gemm == GemmLibrary::kOneDnn &&
      ((n > 16 && m >= 8) || (n == 16 && m >= 64 && k >= 64))) {
    return SmallPath::kNone;
  }
  if (k < kBroadcastMaxK) {
    // One output column: OpenBLAS and oneDNN are both faster (64x1x30:
    // 0.40 and 0.43 us vs 0.57; 256x1x64: 2.5 and 0.89 vs 4.2).
    if (n == 1) return SmallPath::kNone;
    // Packing B^T only pays off over enough rows.
    return m >= 32 && double(m) * n * k <= 4e6 ? SmallPath::kBroadcast
                                               : SmallPath::kNone;
  }
  return n <= 16 || double(m) * n * k <= 4e6 ? SmallPath::kDot
                                             : SmallPath::kNone;
}
#endif  // NNLAB_HAVE_SMALL_GEMM

}  // namespace

void GemmNTBias(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                const float* b, int64_t ldb, const float* bias, float* c,
                int64_t ldc) {
  if (m == 0 || n == 0) return;
#ifdef NNLAB_HAVE_SMALL_GEMM
  switch (ChooseSmallPath(m, n, k, GemmLibraryFor(false, true, m, n, k))) {
    case SmallPath::kDot:
      SmallGemmAvx2(m, n, k, a, lda, b, ldb, bias, c, ldc);
      return;
    case SmallPath::kBroadcast:
      BroadcastGemmAvx2(m, n, k, a, lda, b, ldb, bias, c, ldc);
      return;
    case SmallPath::kNone:
      break;
  }
#endif
  GemmNTBiasReference(m, n, k, a, lda, b, ldb, bias, c, ldc);
}

void GemmNTBiasReference(int64_t m, int64_t n, int64_t k, const float* a,
                         int64_t lda, const float* b, int64_t ldb,
                         const float* bias, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  float beta = 0.0f;
  if (bias != nullptr) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = bias[j];
    }
    beta = 1.0f;
  }
  Gemm(false, true, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace nnlab
