// A warm Gemm allocates nothing on the C++ heap, on either library and at
// 1 or 2 threads (the trainer's zero-allocations-per-step promise rests on
// it; oneDNN's own OpenMP threading allocated once per threaded call).
// Counts with core/testing/alloc_counter.h.
#include <vector>

#include "core/kernels/blas.h"
#include "core/testing/alloc_counter.h"
#include "gtest/gtest.h"

namespace nnlab {
namespace {

struct Product {
  bool trans_a, trans_b;
  int64_t m, n, k;
};

TEST(BlasAllocTest, WarmGemmAllocatesNothing) {
  const GemmPath saved_path = CurrentGemmPath();
  const int saved_threads = BlasThreads();
  // Layer-sized products in every transpose form (all >= 4 M multiply-adds
  // with every side >= 64, so they get both threads), and a small one.
  const Product products[] = {{false, true, 256, 1024, 784},   // y = x W^T
                              {false, false, 256, 784, 1024},  // dx = dy W
                              {true, false, 1024, 784, 256},   // dW = dy^T x
                              {true, true, 128, 512, 64},
                              {false, true, 64, 512, 128},
                              {false, false, 8, 16, 8}};
  std::vector<float> a(1024 * 1024, 0.5f), b(1024 * 1024, 0.25f),
      c(1024 * 1024, 0.0f);
  for (GemmPath path :
       {GemmPath::kAuto, GemmPath::kOneDnn, GemmPath::kOpenBlas}) {
    SetGemmPath(path);
    for (int threads : {1, 2}) {
      SetBlasThreads(threads);
      SCOPED_TRACE(testing::Message() << "path " << static_cast<int>(path)
                                      << ", " << threads << " threads");
      auto run_all = [&] {
        for (const Product& p : products) {
          Gemm(p.trans_a, p.trans_b, p.m, p.n, p.k, 1.0f, a.data(),
               p.trans_a ? p.m : p.k, b.data(), p.trans_b ? p.k : p.n, 1.0f,
               c.data(), p.n);
        }
      };
      run_all();  // Warm-up: helper threads, kernels, thread-local state.
      const long before = AllocationCount();
      for (int round = 0; round < 5; ++round) run_all();
      EXPECT_EQ(AllocationCount() - before, 0);
    }
  }
  SetGemmPath(saved_path);
  SetBlasThreads(saved_threads);
}

}  // namespace
}  // namespace nnlab
