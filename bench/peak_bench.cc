// How close nnlab's GEMMs come to the CPU's peak: the FP32 FMA throughput
// of one and two cores with the widest vector ISA the CPU has (AVX-512F,
// else AVX2+FMA), and Gemm (core/kernels/blas.h) on each library path
// (OpenBLAS, oneDNN, auto) on the workloads' dense-layer shapes at 1 and 2
// BLAS threads, as GFLOP/s and as a fraction of that peak.
//
// Run: build-bench/bench/peak_bench [--reps=N]
// Each figure is the median of N timed samples (default 7), with min-max.
// On a shared machine run it under `chrt -f 10` (root) or `nice -n -5`.
// "2 threads" is the BLAS thread budget: Gemm still runs products under
// ~4 M multiply-adds or with a side under 64 on one thread.
#include <immintrin.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "core/kernels/blas.h"
#include "core/tensor/rng.h"

namespace nnlab {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// Independent FMA chains: acc = acc * x + y, 16 chains of 16 lanes, far
// more than the FMA latency times the FMA ports, so the loop is bound by
// FMA throughput alone. Returns a sum so nothing is optimised away; x and
// y keep the values near 1 (no overflow, no denormals).
constexpr int kChains = 16;

__attribute__((target("avx512f"))) float FmaLoopAvx512(int64_t iters) {
  __m512 acc[kChains];  // fully unrolled below, so it lives in registers
#pragma GCC unroll 16
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(1.0f + j * 1e-3f);
  const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(0.001f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], x, y);
  }
  __m512 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm512_add_ps(s, acc[j]);
  // Not _mm512_reduce_add_ps: GCC 12 warns inside it (-Wuninitialized).
  float lanes[16];
  _mm512_storeu_ps(lanes, s);
  float total = 0;
  for (float v : lanes) total += v;
  return total;
}

// AVX2: 12 chains, so that they, x and y fit in the 16 ymm registers.
constexpr int kChains2 = 12;

__attribute__((target("avx2,fma"))) float FmaLoopAvx2(int64_t iters) {
  __m256 acc[kChains2];
#pragma GCC unroll 16
  for (int j = 0; j < kChains2; ++j) {
    acc[j] = _mm256_set1_ps(1.0f + j * 1e-3f);
  }
  const __m256 x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(0.001f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < kChains2; ++j) acc[j] = _mm256_fmadd_ps(acc[j], x, y);
  }
  __m256 s = acc[0];
  for (int j = 1; j < kChains2; ++j) s = _mm256_add_ps(s, acc[j]);
  float lanes[8];
  _mm256_storeu_ps(lanes, s);
  float total = 0;
  for (float v : lanes) total += v;
  return total;
}

struct Isa {
  const char* name;
  float (*loop)(int64_t);
  double flops_per_iter;  // 2 per FMA lane
};

Isa BestIsa() {
  if (__builtin_cpu_supports("avx512f")) {
    return {"AVX-512F", FmaLoopAvx512, 2.0 * 16 * kChains};
  }
  return {"AVX2+FMA", FmaLoopAvx2, 2.0 * 8 * kChains2};
}

volatile float g_sink;

// GFLOP/s of `threads` threads each running the FMA loop at once.
bench::Summary PeakGflops(const Isa& isa, int threads, int reps) {
  const int64_t iters = 20'000'000;
  isa.loop(iters / 10);  // warm-up: clocks up, code paged in
  std::vector<double> samples;
  for (int r = 0; r < reps; ++r) {
    std::vector<std::thread> pool;
    const Clock::time_point start = Clock::now();
    for (int t = 1; t < threads; ++t) {
      pool.emplace_back([&] { g_sink = isa.loop(iters); });
    }
    g_sink = isa.loop(iters);
    for (std::thread& th : pool) th.join();
    samples.push_back(threads * iters * isa.flops_per_iter / Seconds(start) *
                      1e-9);
  }
  return bench::Summarise(samples);
}

struct Shape {
  int64_t m, n, k;
  bool trans_a, trans_b;
};

// GFLOP/s of Gemm on one shape (of GemmNTBias, the dense layers' forward
// product, when `nt_bias`): each sample repeats the product for at least
// ~0.1 s.
bench::Summary GemmGflops(const Shape& s, bool nt_bias, int reps) {
  Rng rng(1);
  const int64_t lda = s.trans_a ? s.m : s.k, ldb = s.trans_b ? s.k : s.n;
  std::vector<float> a(s.m * s.k), b(s.k * s.n), c(s.m * s.n, 0.0f);
  for (float& v : a) v = rng.Uniform(-1, 1);
  for (float& v : b) v = rng.Uniform(-1, 1);
  const double flops = 2.0 * s.m * s.n * s.k;
  std::vector<float> bias(s.n, 0.5f);
  auto run = [&] {
    if (nt_bias) {
      GemmNTBias(s.m, s.n, s.k, a.data(), lda, b.data(), ldb, bias.data(),
                 c.data(), s.n);
    } else {
      Gemm(s.trans_a, s.trans_b, s.m, s.n, s.k, 1.0f, a.data(), lda, b.data(),
           ldb, 0.0f, c.data(), s.n);
    }
  };
  // Warm-up (oneDNN generates its kernels on first use) and calibration.
  run();
  Clock::time_point start = Clock::now();
  int64_t iters = 0;
  do {
    run();
    ++iters;
  } while (Seconds(start) < 0.02);
  iters = std::max<int64_t>(1, iters * 5);
  std::vector<double> samples;
  for (int r = 0; r < reps; ++r) {
    start = Clock::now();
    for (int64_t i = 0; i < iters; ++i) run();
    samples.push_back(flops * iters / Seconds(start) * 1e-9);
  }
  g_sink = c[0];
  return bench::Summarise(samples);
}

const char* LibraryName(GemmLibrary lib) {
  return lib == GemmLibrary::kOneDnn ? "onednn" : "openblas";
}

int Main(int argc, char** argv) {
  int reps = 7;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--reps=", 7) == 0) {
      reps = std::max(1, std::atoi(argv[i] + 7));
    } else {
      std::fprintf(stderr, "usage: %s [--reps=N]\n", argv[0]);
      return 2;
    }
  }
  const Isa isa = BestIsa();
  const bench::Summary peak[2] = {PeakGflops(isa, 1, reps),
                                  PeakGflops(isa, 2, reps)};
  std::printf("FP32 FMA peak (%s), median of %d (min-max) GFLOP/s:\n", isa.name,
              reps);
  for (int t = 0; t < 2; ++t) {
    std::printf("  %d thread%s: %7.1f (%.1f-%.1f)\n", t + 1, t ? "s" : " ",
                peak[t].median, peak[t].min, peak[t].max);
  }

  const Shape shapes[] = {
      {256, 1024, 784, false, true},
      {1024, 1024, 1024, false, false},
      {64, 30, 784, false, true},
      {64, 512, 128, false, true},
  };
  const struct {
    GemmPath path;
    const char* name;
  } paths[] = {{GemmPath::kOpenBlas, "openblas"},
               {GemmPath::kOneDnn, "onednn"},
               {GemmPath::kAuto, "auto"}};
  const GemmPath saved_path = CurrentGemmPath();
  const int saved_threads = BlasThreads();
  std::printf(
      "\nGemm, median of %d (min-max) GFLOP/s and %% of the peak for the "
      "same thread count:\n",
      reps);
  std::printf("%-22s %-3s %-9s %26s %7s\n", "m x n x k", "thr", "path",
              "GFLOP/s", "% peak");
  auto print_row = [&](const Shape& s, int threads, const char* name,
                       const bench::Summary& g) {
    char label[64];
    std::snprintf(label, sizeof label, "%lldx%lldx%lld %c%c",
                  static_cast<long long>(s.m), static_cast<long long>(s.n),
                  static_cast<long long>(s.k), s.trans_a ? 'T' : 'N',
                  s.trans_b ? 'T' : 'N');
    std::printf("%-22s %-3d %-16s %7.1f (%6.1f-%6.1f) %6.1f%%\n", label,
                threads, name, g.median, g.min, g.max,
                100.0 * g.median / peak[threads - 1].median);
  };
  for (const Shape& s : shapes) {
    for (int threads : {1, 2}) {
      SetBlasThreads(threads);
      for (const auto& p : paths) {
        SetGemmPath(p.path);
        char name[32];
        std::snprintf(name, sizeof name, "%s%s%s", p.name,
                      p.path == GemmPath::kAuto ? "=" : "",
                      p.path == GemmPath::kAuto
                          ? LibraryName(GemmLibraryFor(s.trans_a, s.trans_b,
                                                       s.m, s.n, s.k))
                          : "");
        print_row(s, threads, name, GemmGflops(s, false, reps));
      }
      // What a dense layer's forward pass runs (GemmNTBias: the AVX2
      // small-product kernels for narrow outputs, else Gemm on auto).
      if (!s.trans_a && s.trans_b) {
        print_row(s, threads, "GemmNTBias", GemmGflops(s, true, reps));
      }
    }
  }
  SetGemmPath(saved_path);
  SetBlasThreads(saved_threads);
  return 0;
}

}  // namespace
}  // namespace nnlab

int main(int argc, char** argv) { return nnlab::Main(argc, argv); }
