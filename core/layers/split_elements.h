// Element-wise layer loops over the BLAS thread budget.
#ifndef NNLAB_CORE_LAYERS_SPLIT_ELEMENTS_H_
#define NNLAB_CORE_LAYERS_SPLIT_ELEMENTS_H_

#include <algorithm>
#include <cstdint>

#include "core/kernels/blas.h"
#include "core/kernels/parallel.h"

namespace nnlab {

// Runs fn(lo, hi) over [0, n) in contiguous ranges, one per BLAS thread
// (bounds on multiples of 64 elements), when n is large enough to pay for
// waking the helpers; else fn(0, n) on the caller. Only for loops where
// each element is computed alone (no sums, no lane-dependent code
// paths), so that the bits do not depend on the split.
template <typename Fn>
void SplitElements(int64_t n, const Fn& fn) {
  constexpr int64_t kMinElements = 1 << 16, kAlign = 64;
  const int parts =
      n >= kMinElements ? std::max(1, std::min(BlasThreads(), 16)) : 1;
  if (parts == 1) {
    fn(int64_t{0}, n);
    return;
  }
  auto bound = [&](int part) {
    return part == parts ? n : std::min(n, n * part / parts / kAlign * kAlign);
  };
  ParallelFor(parts, [&](int part) { fn(bound(part), bound(part + 1)); });
}

}  // namespace nnlab

#endif  // NNLAB_CORE_LAYERS_SPLIT_ELEMENTS_H_
