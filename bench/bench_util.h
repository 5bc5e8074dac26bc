// Helpers shared by the whole-run benchmark tools (throughput,
// service_bench).
#ifndef NNLAB_BENCH_BENCH_UTIL_H_
#define NNLAB_BENCH_BENCH_UTIL_H_

#include <algorithm>
#include <cstddef>
#include <vector>

namespace nnlab::bench {

// Median, minimum and maximum of repeated measurements (all 0 when empty).
struct Summary {
  double median = 0, min = 0, max = 0;
};

inline Summary Summarise(std::vector<double> v) {
  Summary s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  s.min = v.front();
  s.max = v.back();
  return s;
}

}  // namespace nnlab::bench

#endif  // NNLAB_BENCH_BENCH_UTIL_H_
