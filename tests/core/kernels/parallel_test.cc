// ParallelFor: every part runs exactly once per call, helpers join on their
// first call, concurrent callers both complete, and InParallelPart tells a
// part from the code around it.
#include "core/kernels/parallel.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace nnlab {
namespace {

TEST(ParallelForTest, RunsEveryPartOncePerCall) {
  for (int round = 0; round < 50; ++round) {
    for (int parts : {1, 2, 3, 4}) {
      std::vector<std::atomic<int>> hits(parts);
      ParallelFor(parts, [&](int part) { hits[part]++; });
      for (int p = 0; p < parts; ++p) {
        ASSERT_EQ(hits[p].load(), 1) << "parts " << parts << " part " << p;
      }
    }
  }
}

TEST(ParallelForTest, ConcurrentCallersBothFinish) {
  std::atomic<long> total{0};
  auto work = [&] {
    for (int i = 0; i < 200; ++i) {
      ParallelFor(2, [&](int part) { total += part + 1; });
    }
  };
  std::thread other(work);
  work();
  other.join();
  EXPECT_EQ(total.load(), 2 * 200 * 3);
}

TEST(ParallelForTest, InParallelPartHoldsInsidePartsOnly) {
  EXPECT_FALSE(InParallelPart());
  std::vector<std::atomic<int>> inside(3);
  std::atomic<int> after_nested{0};
  ParallelFor(3, [&](int part) {
    if (InParallelPart()) inside[part]++;
    // A nested call runs inside this part; the flag outlives it.
    ParallelFor(2, [](int) {});
    if (InParallelPart()) after_nested++;
  });
  for (int p = 0; p < 3; ++p) EXPECT_EQ(inside[p].load(), 1) << "part " << p;
  EXPECT_EQ(after_nested.load(), 3);
  EXPECT_FALSE(InParallelPart());
  // One part is no split: the caller keeps the whole thread budget.
  ParallelFor(1, [](int) { EXPECT_FALSE(InParallelPart()); });
}

}  // namespace
}  // namespace nnlab
