#include "core/blas.h"

#include <cblas.h>

namespace nnlab {

void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
          float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b,
              ldb, beta, c, ldc);
}

void Gemv(bool trans_a, int64_t rows, int64_t cols, float alpha, const float* a,
          int64_t lda, const float* x, float beta, float* y) {
  if (rows == 0 || cols == 0) return;
  cblas_sgemv(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, rows, cols,
              alpha, a, lda, x, 1, beta, y, 1);
}

int SetBlasThreads(int n) {
  const int previous = openblas_get_num_threads();
  openblas_set_num_threads(n < 1 ? 1 : n);
  return previous;
}

int BlasThreads() { return openblas_get_num_threads(); }

}  // namespace nnlab
