// The one place nnlab talks to BLAS. Only blas.cc includes <cblas.h> and
// <dnnl.h>, and controls OpenBLAS's and oneDNN's (OpenMP's) threads.
//
// Each Gemm runs on one of two libraries, chosen per call by its shape
// (GemmLibraryFor): oneDNN's sgemm (AVX-512 kernels, about twice OpenBLAS
// 0.3.21's AVX2 ones here) for all but tiny products, OpenBLAS for those
// and for Gemv. The two sum in different orders, so their results differ
// in the last bits; each is deterministic for a given thread count.
//
// All matrices are row-major. Thread-safe: concurrent Gemm calls from
// different threads are fine.
#ifndef NNLAB_CORE_KERNELS_BLAS_H_
#define NNLAB_CORE_KERNELS_BLAS_H_

#include <cstdint>

#include "core/kernels/isa.h"

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
// at these sizes), except where Gemm would use oneDNN and it is faster (over
// 16 outputs from 8 rows, 16 from 64 rows and inputs); the rest goes to Gemm.
// The two sum in different orders, so their results differ in the last bits
// (each is deterministic). REQUIRES: C does not overlap A, B or bias.
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

// Sets how many threads the BLAS libraries may use (>= 1); returns the
// previous value. Process-wide, and the one thread setting for both
// libraries: the server sets it once from its flags. Each Gemm/Gemv then
// runs on 1 thread or on all of them by its shape: small products (under
// ~4 M multiply-adds, or a side under 64) are faster on one thread, and
// so is every product inside a ParallelFor part (parallel.h). A
// threaded oneDNN product is split into blocks of C on ParallelFor's
// helpers (core/kernels/parallel.h), each a single-threaded sgemm: no heap
// allocation once warm (oneDNN's own threading allocates on every call).
int SetBlasThreads(int n);
int BlasThreads();

// Which library Gemm uses. kAuto picks per call by shape; the others force
// one library for every Gemm (to compare them). The starting value comes
// from the environment variable NNLAB_GEMM (`auto`, `openblas` or
// `onednn`; unset or anything else: auto), read once on first use.
enum class GemmPath { kAuto, kOpenBlas, kOneDnn };
// Sets the path process-wide; returns the previous one. Not meant to be
// changed while other threads run Gemm (they may still use the old one).
GemmPath SetGemmPath(GemmPath path);
GemmPath CurrentGemmPath();

// The library Gemm runs a product of this shape on under the current path.
enum class GemmLibrary { kOpenBlas, kOneDnn };
GemmLibrary GemmLibraryFor(bool trans_a, bool trans_b, int64_t m, int64_t n,
                           int64_t k);

// Prepares the calling thread for a oneDNN primitive outside blas.cc
// (core/kernels/onednn_conv.cc): caps oneDNN's ISA at MaxIsa() before its
// first kernel, and keeps oneDNN's OpenMP regions on this thread alone.
void OneDnnSingleThreadHere();

// The instruction set oneDNN's kernels run on, after the NNLAB_MAX_ISA cap
// (core/kernels/isa.h).
Isa OneDnnIsa();

}  // namespace nnlab

#endif  // NNLAB_CORE_KERNELS_BLAS_H_
