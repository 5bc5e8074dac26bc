// GemmNTBias (core/kernels/blas.h) against the OpenBLAS path, over shapes that
// hit every block remainder of the small-product kernel and both sides of its
// size thresholds, with and without bias, with row strides wider than k.
#include <cmath>
#include <vector>

#include "core/kernels/blas.h"
#include "core/tensor/rng.h"
#include "gtest/gtest.h"

namespace nnlab {
namespace {

void ExpectSameProduct(int64_t m, int64_t n, int64_t k, bool with_bias) {
  SCOPED_TRACE(testing::Message()
               << m << "x" << n << "x" << k << (with_bias ? " bias" : ""));
  Rng rng(m * 1000 + n * 10 + k);
  const int64_t lda = k + 3, ldb = k + 5, ldc = n + 2;
  std::vector<float> a(m * lda), b(n * ldb), bias(n);
  for (float& v : a) v = rng.Uniform(-1, 1);
  for (float& v : b) v = rng.Uniform(-1, 1);
  for (float& v : bias) v = rng.Uniform(-1, 1);
  // NaN in the padding between rows and outside C's columns: the kernel
  // must neither read the former nor write the latter.
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t p = k; p < lda; ++p) a[i * lda + p] = NAN;
  }
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t p = k; p < ldb; ++p) b[j * ldb + p] = NAN;
  }
  std::vector<float> got(m * ldc, -7.0f), want(m * ldc, -7.0f);
  const float* bp = with_bias ? bias.data() : nullptr;
  GemmNTBias(m, n, k, a.data(), lda, b.data(), ldb, bp, got.data(), ldc);
  GemmNTBiasReference(m, n, k, a.data(), lda, b.data(), ldb, bp, want.data(),
                      ldc);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      const float w = want[i * ldc + j], g = got[i * ldc + j];
      if (j >= n) {
        EXPECT_EQ(g, -7.0f) << "wrote outside C at " << i << "," << j;
      } else {
        // Sums of k products of values in [-1, 1]: rounding ~ sqrt(k) ulp.
        EXPECT_NEAR(g, w, 1e-5 * std::sqrt(double(k)) * (1 + std::abs(w)))
            << i << "," << j;
      }
    }
  }
}

TEST(SmallGemmTest, MatchesOpenBlasOnEveryRemainder) {
  for (int64_t m : {1, 2, 3, 4, 5, 7, 10}) {
    for (int64_t n : {1, 2, 3, 4, 5, 6, 7, 8, 9, 30}) {
      for (int64_t k : {128, 129, 135, 136, 784}) {
        ExpectSameProduct(m, n, k, true);
      }
    }
  }
  ExpectSameProduct(6, 5, 200, false);
  // The broadcast kernel (k < 128, m >= 32): every row remainder of its
  // 6-row blocks and column counts around its 16-column panels.
  for (int64_t m : {32, 33, 34, 35, 36, 37, 64}) {
    for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 30, 64}) {
      for (int64_t k : {1, 2, 30, 127}) ExpectSameProduct(m, n, k, true);
    }
  }
  ExpectSameProduct(40, 20, 50, false);
}

TEST(SmallGemmTest, MatchesOpenBlasAcrossThresholds) {
  // Small k, wide n and large products go to OpenBLAS; these straddle
  // the thresholds either way.
  for (auto [m, n, k] :
       std::vector<std::tuple<int64_t, int64_t, int64_t>>{{64, 30, 784},
                                                          {64, 30, 30},
                                                          {64, 10, 30},
                                                          {256, 10, 1024},
                                                          {256, 1, 784},
                                                          {64, 64, 784},
                                                          {256, 64, 784},
                                                          {64, 65, 256},
                                                          {64, 1, 256},
                                                          {3, 17, 127}}) {
    ExpectSameProduct(m, n, k, true);
    ExpectSameProduct(m, n, k, false);
  }
}

}  // namespace
}  // namespace nnlab
