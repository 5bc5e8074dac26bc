// ParallelFor: every part runs exactly once per call, helpers join on their
// first call, and concurrent callers both complete.
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

}  // namespace
}  // namespace nnlab
