// The one place nnlab talks to BLAS. Only blas.cc includes <cblas.h> and
// controls OpenBLAS's threads.
//
// All matrices are row-major. Thread-safe in the sense that OpenBLAS is:
// concurrent Gemm calls from different threads are fine.
#ifndef NNLAB_CORE_KERNELS_BLAS_H_
#define NNLAB_CORE_KERNELS_BLAS_H_

#include <cstdint>

namespace nnlab {

// C[m x n] = alpha * op(A) * op(B) + beta * C, where op(A) is [m x k] and
// op(B) is [k x n]; lda/ldb/ldc are row strides of the stored matrices.
void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
          float beta, float* c, int64_t ldc);

// C[m x n] = A[m x k] B[n x k]^T, plus bias[j] on every row j-th column
// when `bias` is not null: a dense layer's forward product y = x W^T + b.
// Narrow products (n <= 64 outputs, and n <= 16 or under ~4 M
// multiply-adds; with k < 128 inputs only from m >= 32 rows) run
// register-blocked AVX2 kernels on the calling thread
// (core/kernels/small_gemm.cc: little or no packing, which dominates OpenBLAS
// at these sizes); the rest goes to Gemm. The two sum in different orders, so
// their results differ in the last bits (each is deterministic). REQUIRES: C
// does not overlap A, B or bias.
void GemmNTBias(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                const float* b, int64_t ldb, const float* bias, float* c,
                int64_t ldc);
// The same product always through Gemm (for tests and benchmarks).
void GemmNTBiasReference(int64_t m, int64_t n, int64_t k, const float* a,
                         int64_t lda, const float* b, int64_t ldb,
                         const float* bias, float* c, int64_t ldc);

// y[m] = alpha * op(A) x + beta * y, A stored [rows x cols] row-major.
void Gemv(bool trans_a, int64_t rows, int64_t cols, float alpha, const float* a,
          int64_t lda, const float* x, float beta, float* y);

// Sets how many threads OpenBLAS may use (>= 1); returns the previous value.
// Process-wide: the server sets it once from its flags. Each Gemm/Gemv then
// runs on 1 thread or on all of them by its shape: small products (under
// ~4 M multiply-adds, or a side under 64) are faster on one thread.
int SetBlasThreads(int n);
int BlasThreads();

}  // namespace nnlab

#endif  // NNLAB_CORE_KERNELS_BLAS_H_
