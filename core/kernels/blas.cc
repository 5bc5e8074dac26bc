#include "core/kernels/blas.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>

namespace nnlab {
namespace {

// The thread budget set by SetBlasThreads (-1: OpenBLAS's own default).
std::atomic<int> g_max_threads{-1};
// What OpenBLAS is currently set to, so a call changes it only when needed.
std::atomic<int> g_current_threads{-1};

int MaxThreads() {
  int n = g_max_threads.load(std::memory_order_relaxed);
  if (n < 1) {
    n = openblas_get_num_threads();
    g_max_threads.store(n, std::memory_order_relaxed);
    g_current_threads.store(n, std::memory_order_relaxed);
  }
  return n;
}

// Threads for one C[m x n] += A[m x k] B[k x n]. Measured here
// (bench/kernels_bench BM_Gemm, OpenBLAS 0.3.21): below ~4 M
// multiply-adds, or with a side under 64 (a 30- or 10-unit layer, a
// 28-feature input), the hand-off to a second thread costs more than it
// saves (784x30 at batch 64: 73 us on 1 thread, 125 us on 2), while
// 1024-wide layers at batch 256 run 1.7x faster on 2.
int ThreadsFor(int64_t m, int64_t n, int64_t k) {
  const int max = MaxThreads();
  if (max <= 1) return 1;
  const bool big = static_cast<double>(m) * n * k >= 4.0 * (1 << 20) &&
                   std::min({m, n, k}) >= 64;
  return big ? max : 1;
}

void UseThreads(int n) {
  if (g_current_threads.load(std::memory_order_relaxed) != n) {
    openblas_set_num_threads(n);
    g_current_threads.store(n, std::memory_order_relaxed);
  }
}

}  // namespace

void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
          float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  UseThreads(ThreadsFor(m, n, k));
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b,
              ldb, beta, c, ldc);
}

void Gemv(bool trans_a, int64_t rows, int64_t cols, float alpha, const float* a,
          int64_t lda, const float* x, float beta, float* y) {
  if (rows == 0 || cols == 0) return;
  UseThreads(ThreadsFor(rows, cols, 1));
  cblas_sgemv(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, rows, cols,
              alpha, a, lda, x, 1, beta, y, 1);
}

int SetBlasThreads(int n) {
  const int previous = MaxThreads();
  n = std::max(n, 1);
  g_max_threads.store(n, std::memory_order_relaxed);
  UseThreads(n);
  return previous;
}

int BlasThreads() { return MaxThreads(); }

}  // namespace nnlab
