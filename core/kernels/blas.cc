#include "core/kernels/blas.h"

#include <cblas.h>
#include <dnnl.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "core/kernels/isa.h"
#include "core/kernels/parallel.h"
#include "core/status_macros.h"

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
// 1024-wide layers at batch 256 run 1.7x faster on 2. Inside a part of a
// ParallelFor (a convolution's or a recurrence's slice of the batch) the
// other threads are busy with the other parts: 1.
int ThreadsFor(int64_t m, int64_t n, int64_t k) {
  const int max = MaxThreads();
  if (max <= 1 || InParallelPart()) return 1;
  const bool big = static_cast<double>(m) * n * k >= 4.0 * (1 << 20) &&
                   std::min({m, n, k}) >= 64;
  return big ? max : 1;
}

// OpenBLAS's thread count is process-wide.
void UseOpenBlasThreads(int n) {
  if (g_current_threads.load(std::memory_order_relaxed) != n) {
    openblas_set_num_threads(n);
    g_current_threads.store(n, std::memory_order_relaxed);
  }
}

// oneDNN (Debian's OpenMP build) runs on as many threads as
// omp_get_max_threads() of the calling thread, a per-thread OpenMP
// setting: set it on each thread before its first call, and on a change.
void UseOneDnnThreads(int n) {
  thread_local int current = -1;
  if (current != n) {
    omp_set_num_threads(n);
    current = n;
  }
}

// Below this many multiply-adds OpenBLAS can be faster: oneDNN's fixed
// cost per call (dispatch, packing set-up) dominates. Measured here
// (1 thread): 8x16x8 runs at 12 GFLOP/s on OpenBLAS and 5 on oneDNN,
// 64x10x30 at 27 and 25; from 16x784x9 up oneDNN is ahead (173 vs 33
// GFLOP/s with no transposes), and on the dense-layer, convolution and
// recurrent shapes nnlab uses it is 1.5-7x faster (bench/peak_bench).
// A B^T (a dense layer's forward product) from 64 inputs is the exception:
// oneDNN wins there at any size (1x64x64 0.25 us vs 0.91, 10x30x64 0.46
// vs 1.03).
constexpr double kOneDnnMinMacs = 32768;

bool OneDnnFasterWhenTiny(bool trans_a, bool trans_b, int64_t k) {
  return !trans_a && trans_b && k >= 64;
}

// oneDNN's A B^T with a handful of output columns is slower than
// OpenBLAS's (C = A[m x k] B[n x k]^T + bias, n = 4: 64x4x128 2.3 us vs
// 1.8, 32x4x784 10 us vs 6.9); from 10 columns on it is mostly level or
// ahead.
bool OneDnnSlowNarrowNT(bool trans_a, bool trans_b, int64_t n) {
  return !trans_a && trans_b && n >= 2 && n <= 8;
}

GemmPath PathFromEnv() {
  const char* v = std::getenv("NNLAB_GEMM");
  if (v == nullptr) return GemmPath::kAuto;
  if (std::strcmp(v, "openblas") == 0) return GemmPath::kOpenBlas;
  if (std::strcmp(v, "onednn") == 0) return GemmPath::kOneDnn;
  return GemmPath::kAuto;
}

std::atomic<GemmPath>& PathSetting() {
  static std::atomic<GemmPath> path{PathFromEnv()};
  return path;
}

void OpenBlasGemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                  float alpha, const float* a, int64_t lda, const float* b,
                  int64_t ldb, float beta, float* c, int64_t ldc, int threads) {
  UseOpenBlasThreads(threads);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b,
              ldb, beta, c, ldc);
}

// Caps oneDNN's kernels at MaxIsa() (core/kernels/isa.h) when that is below
// what the CPU has. oneDNN accepts the cap only before it generates its
// first kernel: every oneDNN call in nnlab goes through OneDnnGemmHere,
// which calls this first. Uncapped, oneDNN keeps its own default (and
// honours ONEDNN_MAX_CPU_ISA).
void CapOneDnnIsaOnce() {
  static const bool capped = [] {
    if (MaxIsa() >= CpuIsa()) return false;
    const dnnl_cpu_isa_t isa = MaxIsa() == Isa::kAvx2 ? dnnl_cpu_isa_avx2
                               : MaxIsa() == Isa::kAvx512
                                   ? dnnl_cpu_isa_avx512_core
                                   : dnnl_cpu_isa_sse41;
    return dnnl_set_max_cpu_isa(isa) == dnnl_success;
  }();
  (void)capped;
}

// oneDNN's sgemm on the calling thread alone (OpenMP threads 1).
bool OneDnnGemmHere(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                    float alpha, const float* a, int64_t lda, const float* b,
                    int64_t ldb, float beta, float* c, int64_t ldc) {
  CapOneDnnIsaOnce();
  UseOneDnnThreads(1);
  // oneDNN's C API is row-major, like ours.
  return dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a,
                    lda, b, ldb, beta, c, ldc) == dnnl_success;
}

// Splits of C smaller than this many rows or columns are not worth a
// thread; part boundaries fall on multiples of it, so parts never share a
// 64-byte line of C.
constexpr int64_t kOneDnnPartAlign = 16;

// C = alpha op(A) op(B) + beta C on oneDNN with `threads` threads. Threaded
// products are split here, into blocks of C's rows (or columns, whichever
// side is longer) that ParallelFor's helpers each compute with a
// single-threaded sgemm, rather than by oneDNN's own OpenMP threading:
// oneDNN 2.6 heap-allocates on every threaded call (a std::function for
// its parallel region: 1 allocation per call, bench/throughput allocs/step
// 0.38 -> 5.4 on wide-mlp, 2.1 -> 58 on lstm-rows at 2 threads), and
// matmul primitives would not help: each execute builds its argument map
// on the heap. ParallelFor allocates nothing once its helpers run. Every
// element of C is one dot product computed by one thread, so the result is
// deterministic for a given thread count. Returns false (C untouched) when
// oneDNN refuses the arguments, which happens only for leading dimensions
// cblas_sgemm refuses too.
bool OneDnnGemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                float alpha, const float* a, int64_t lda, const float* b,
                int64_t ldb, float beta, float* c, int64_t ldc, int threads) {
  // C's rows r0..r1 and columns c0..c1.
  auto block = [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    return OneDnnGemmHere(trans_a, trans_b, r1 - r0, c1 - c0, k, alpha,
                          trans_a ? a + r0 : a + r0 * lda, lda,
                          trans_b ? b + c0 * ldb : b + c0, ldb, beta,
                          c + r0 * ldc + c0, ldc);
  };
  // Checked up front, so that no block has written C when one is refused.
  if (lda < std::max<int64_t>(1, trans_a ? m : k) ||
      ldb < std::max<int64_t>(1, trans_b ? k : n) ||
      ldc < std::max<int64_t>(1, n)) {
    return false;
  }
  // Columns unless there are more rows: oneDNN 2.6 packs a 1.5 MB buffer
  // per call for 1024 columns but 72 KB for 512 (1024x1024x256, A^T B), and
  // each helper thread's malloc arena keeps its own (peak RSS of wide-mlp
  // at 2 threads: 76.0 MB splitting rows of that product, 73.6 columns).
  const bool split_rows = m > n;
  const int64_t side = split_rows ? m : n;
  const int parts =
      static_cast<int>(std::min<int64_t>(threads, side / kOneDnnPartAlign));
  if (parts <= 1) return block(0, m, 0, n);
  const int64_t blocks = (side + kOneDnnPartAlign - 1) / kOneDnnPartAlign;
  std::atomic<bool> ok{true};
  ParallelFor(parts, [&](int part) {
    const int64_t lo = std::min(side, blocks * part / parts * kOneDnnPartAlign);
    const int64_t hi =
        std::min(side, blocks * (part + 1) / parts * kOneDnnPartAlign);
    if (lo >= hi) return;
    const bool done = split_rows ? block(lo, hi, 0, n) : block(0, m, lo, hi);
    if (!done) ok.store(false, std::memory_order_relaxed);
  });
  // Valid leading dimensions were checked above, so no part is refused.
  NNLAB_CHECK(ok.load());
  return true;
}

}  // namespace

GemmPath SetGemmPath(GemmPath path) { return PathSetting().exchange(path); }

GemmPath CurrentGemmPath() { return PathSetting().load(); }

GemmLibrary GemmLibraryFor(bool trans_a, bool trans_b, int64_t m, int64_t n,
                           int64_t k) {
  switch (CurrentGemmPath()) {
    case GemmPath::kOpenBlas:
      return GemmLibrary::kOpenBlas;
    case GemmPath::kOneDnn:
      // k == 0 (C = beta C) is not a product oneDNN accepts.
      return k > 0 ? GemmLibrary::kOneDnn : GemmLibrary::kOpenBlas;
    case GemmPath::kAuto:
      break;
  }
  // Every product that ThreadsFor gives more than one thread (>= 4 M
  // multiply-adds, every side >= 64) goes to oneDNN, so in auto OpenBLAS
  // only ever runs on the calling thread: the two libraries' thread pools
  // never both spin.
  const bool big_enough = static_cast<double>(m) * n * k >= kOneDnnMinMacs ||
                          OneDnnFasterWhenTiny(trans_a, trans_b, k);
  return k > 0 && big_enough && !OneDnnSlowNarrowNT(trans_a, trans_b, n)
             ? GemmLibrary::kOneDnn
             : GemmLibrary::kOpenBlas;
}

void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
          float alpha, const float* a, int64_t lda, const float* b, int64_t ldb,
          float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  const int threads = ThreadsFor(m, n, k);
  if (GemmLibraryFor(trans_a, trans_b, m, n, k) == GemmLibrary::kOneDnn &&
      OneDnnGemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                 threads)) {
    return;
  }
  OpenBlasGemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
               threads);
}

void Gemv(bool trans_a, int64_t rows, int64_t cols, float alpha, const float* a,
          int64_t lda, const float* x, float beta, float* y) {
  if (rows == 0 || cols == 0) return;
  UseOpenBlasThreads(ThreadsFor(rows, cols, 1));
  cblas_sgemv(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, rows, cols,
              alpha, a, lda, x, 1, beta, y, 1);
}

int SetBlasThreads(int n) {
  const int previous = MaxThreads();
  n = std::max(n, 1);
  g_max_threads.store(n, std::memory_order_relaxed);
  UseOpenBlasThreads(n);
  return previous;
}

int BlasThreads() { return MaxThreads(); }

void OneDnnSingleThreadHere() {
  CapOneDnnIsaOnce();
  UseOneDnnThreads(1);
}

Isa OneDnnIsa() {
  CapOneDnnIsaOnce();
  // dnnl_cpu_isa_t values are bit sets: each level contains the ones below.
  const unsigned isa = dnnl_get_effective_cpu_isa();
  auto has = [isa](dnnl_cpu_isa_t level) {
    return (isa & level) == static_cast<unsigned>(level);
  };
  if (has(dnnl_cpu_isa_avx512_core)) return Isa::kAvx512;
  if (has(dnnl_cpu_isa_avx2)) return Isa::kAvx2;
  return Isa::kBaseline;
}

}  // namespace nnlab
