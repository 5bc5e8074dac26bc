// Heap allocations of a warm Conv2D step on each path: none on im2col +
// GEMM; on oneDNN only those inside oneDNN 2.6's execute calls (its
// argument map and a std::function per parallel region, about 6 per
// primitive run), never a rebuilt primitive or a regrown buffer, and the
// same count every step. Its own binary: it replaces the global operator
// new to count.
#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>

#include "core/kernels/blas.h"
#include "core/kernels/onednn_conv.h"
#include "core/layers/layer.h"
#include "core/layers/layer_factories.h"
#include "gtest/gtest.h"

namespace {
std::atomic<long> g_allocations{0};
}  // namespace

void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  std::abort();  // Out of memory: nothing sensible to do in a test.
}
void* operator new[](std::size_t size) { return operator new(size); }
// The replacements pair with each other; GCC cannot see that.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace nnlab {
namespace {

TEST(ConvAllocTest, WarmStepsAllocateAFixedSmallCount) {
  const ConvPath saved_path = CurrentConvPath();
  const int saved_threads = BlasThreads();
  for (ConvPath path : {ConvPath::kIm2col, ConvPath::kOneDnn}) {
    for (int threads : {1, 2}) {
      SCOPED_TRACE(testing::Message()
                   << (path == ConvPath::kOneDnn ? "onednn" : "im2col") << ", "
                   << threads << " threads");
      SetConvPath(path);
      SetBlasThreads(threads);
      // Two layers of resnet-small's second block, sharing each thread's
      // workspace: the strided one first, then a same-size one.
      LayerSpec spec;
      spec.kind = "conv2d";
      spec.filters = 32;
      spec.kernel = 3;
      spec.stride = 2;
      spec.padding = 1;
      Rng rng(1);
      Shape mid, out;
      auto first =
          MakeLayer(spec, "c1", {16, 28, 28}, InitKind::kHe, &rng, &mid);
      ASSERT_TRUE(first.ok()) << first.status();
      spec.stride = 1;
      auto second = MakeLayer(spec, "c2", mid, InitKind::kHe, &rng, &out);
      ASSERT_TRUE(second.ok()) << second.status();
      Tensor x({16, 16, 28, 28}), h, y, dy({16, 32, 14, 14}), dh, dx;
      x.SetZero();
      dy.SetZero();
      auto step = [&] {
        (*first)->Forward(x, &h, Mode::kTrain);
        (*second)->Forward(h, &y, Mode::kTrain);
        (*second)->Backward(dy, &dh);
        (*first)->Backward(dh, &dx);
      };
      step();  // Warm-up: primitives, workspaces, helper threads.
      step();
      long counts[3];
      for (long& count : counts) {
        const long before = g_allocations.load();
        step();
        count = g_allocations.load() - before;
      }
      EXPECT_EQ(counts[1], counts[0]);
      EXPECT_EQ(counts[2], counts[0]);
      if (path == ConvPath::kIm2col) {
        EXPECT_EQ(counts[0], 0);
      } else {
        // 2 layers x 3 calls (forward, backward-data, backward-weights) x
        // up to 4 executes x ~6, per thread.
        EXPECT_LE(counts[0], 2 * 3 * 4 * 8 * threads);
      }
    }
  }
  SetConvPath(saved_path);
  SetBlasThreads(saved_threads);
}

}  // namespace
}  // namespace nnlab
