// Heap allocations of warm convolutions. On im2col + GEMM: none. On
// oneDNN: only those oneDNN 2.6 makes inside every dnnl_primitive_execute
// (bench/RESULTS.md, "Allocations inside oneDNN's execute"): the argument
// map it builds from the caller's array (one node per argument plus the
// bucket array) and a std::function per parallel region. They are a fixed
// number per call: a rebuilt primitive, a regrown workspace or anything
// else of ours that allocated per call would change the counts here.
// Counts with core/testing/alloc_counter.h.
#include <memory>
#include <vector>

#include "core/kernels/blas.h"
#include "core/kernels/onednn_conv.h"
#include "core/layers/layer.h"
#include "core/layers/layer_factories.h"
#include "core/testing/alloc_counter.h"
#include "gtest/gtest.h"

namespace nnlab {
namespace {

// An execute allocates one map node per argument (at most 5 here) plus
// the bucket array, and one or two std::function wrappers: at most 8.
// A call runs at most 4 executes: reorders in, the primitive, reorder out.
constexpr int64_t kMaxPerExecute = 8;
constexpr int64_t kMaxExecutesPerCall = 4;

// Allocations of each of `calls` runs of `fn`, after two warm-up runs.
template <typename Fn>
std::vector<int64_t> CountPerCall(int calls, const Fn& fn) {
  fn();
  fn();
  std::vector<int64_t> counts;
  counts.reserve(calls);  // Before counting: the vector's own allocation.
  for (int i = 0; i < calls; ++i) {
    const int64_t before = AllocationCount();
    fn();
    counts.push_back(AllocationCount() - before);
  }
  return counts;
}

// Allocations of each warm call of a OneDnnConv for geometry `g`:
// forward, backward-data, backward-weights, 5 calls each.
std::vector<std::vector<int64_t>> CountOneDnnCalls(const ConvGeometry& g) {
  std::unique_ptr<OneDnnConv> conv = OneDnnConv::Create(g);
  if (conv == nullptr) return {};
  std::vector<float> x(g.n * g.c * g.h * g.w, 0.5f),
      w(g.f * g.c * g.k * g.k, 0.25f), b(g.f, 0.0f), y(g.n * g.f * g.ho * g.wo),
      dx(x.size()), dw(w.size()), db(b.size());
  return {
      CountPerCall(
          5, [&] { conv->Forward(x.data(), w.data(), b.data(), y.data()); }),
      CountPerCall(5,
                   [&] { conv->BackwardData(y.data(), w.data(), dx.data()); }),
      CountPerCall(5, [&] {
        conv->BackwardWeights(x.data(), y.data(), dw.data(), db.data());
      })};
}

TEST(ConvAllocTest, OneDnnCallsAllocateAFixedCountWhateverTheBatch) {
  // resnet-small's block-2 stride-2 layer at batch 32 (one part of 64)
  // and at batch 8: oneDNN's allocations depend on the executes, not on
  // the sizes, so anything that grew with the data would show.
  const auto large = CountOneDnnCalls({32, 16, 28, 28, 32, 3, 2, 1, 14, 14});
  const auto small = CountOneDnnCalls({8, 16, 28, 28, 32, 3, 2, 1, 14, 14});
  ASSERT_EQ(large.size(), 3u);
  ASSERT_EQ(small.size(), 3u);
  const char* names[] = {"forward", "backward_data", "backward_weights"};
  for (int call = 0; call < 3; ++call) {
    SCOPED_TRACE(names[call]);
    const int64_t first = large[call].front();
    for (int64_t count : large[call]) EXPECT_EQ(count, first);
    for (int64_t count : small[call]) EXPECT_EQ(count, first);
    EXPECT_LE(first, kMaxPerExecute * kMaxExecutesPerCall);
    RecordProperty(names[call], static_cast<int>(first));
  }
}

TEST(ConvAllocTest, WarmLayerStepsAllocateNothingOnIm2colAFixedCountOnOneDnn) {
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
      const std::vector<int64_t> counts = CountPerCall(5, [&] {
        (*first)->Forward(x, &h, Mode::kTrain);
        (*second)->Forward(h, &y, Mode::kTrain);
        (*second)->Backward(dy, &dh);
        (*first)->Backward(dh, &dx);
      });
      for (int64_t count : counts) EXPECT_EQ(count, counts.front());
      if (path == ConvPath::kIm2col) {
        EXPECT_EQ(counts.front(), 0);
      } else {
        // 2 layers x 3 calls (forward, backward-data, backward-weights),
        // one set per thread.
        EXPECT_LE(counts.front(),
                  2 * 3 * kMaxExecutesPerCall * kMaxPerExecute * threads);
      }
    }
  }
  SetConvPath(saved_path);
  SetBlasThreads(saved_threads);
}

}  // namespace
}  // namespace nnlab
