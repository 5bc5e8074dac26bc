// Float reductions written with eight independent partial sums, so the
// compiler can vectorise them without -ffast-math (a single accumulator
// forces strictly sequential adds). Internal to core.
#ifndef NNLAB_CORE_KERNELS_VEC_SUM_H_
#define NNLAB_CORE_KERNELS_VEC_SUM_H_

#include <cstdint>

namespace nnlab {

// sum_i x[i].
inline float VecSum(const float* x, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += x[i + j];
  }
  float s = 0.0f;
  for (; i < n; ++i) s += x[i];
  for (int j = 0; j < 8; ++j) s += acc[j];
  return s;
}

// sum_i x[i] * y[i].
inline float VecDot(const float* x, const float* y, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += x[i + j] * y[i + j];
  }
  float s = 0.0f;
  for (; i < n; ++i) s += x[i] * y[i];
  for (int j = 0; j < 8; ++j) s += acc[j];
  return s;
}

// sum_i (x[i] - c)^2.
inline float VecSquaredDeviation(const float* x, float c, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) {
      const float d = x[i + j] - c;
      acc[j] += d * d;
    }
  }
  float s = 0.0f;
  for (; i < n; ++i) s += (x[i] - c) * (x[i] - c);
  for (int j = 0; j < 8; ++j) s += acc[j];
  return s;
}

}  // namespace nnlab

#endif  // NNLAB_CORE_KERNELS_VEC_SUM_H_
