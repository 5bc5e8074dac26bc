// Rng: the seedable random source of the core. Every random draw (weight
// initialisation, shuffling, dropout masks, noise) goes through one, so a
// seed fixes a run. Its state can be saved and restored, so a resumed job
// draws the same numbers it would have drawn. Not thread-safe.
#ifndef NNLAB_CORE_TENSOR_RNG_H_
#define NNLAB_CORE_TENSOR_RNG_H_

#include <cstdint>
#include <random>
#include <string>

#include "absl/status/status.h"

namespace nnlab {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) : engine_(seed) {}

  void Seed(uint64_t seed) { engine_.seed(seed); }
  // Uniform in [lo, hi).
  float Uniform(float lo = 0.0f, float hi = 1.0f);
  // Normal with the given mean and standard deviation.
  float Normal(float mean = 0.0f, float stddev = 1.0f);
  // Fills out[0, n) with N(mean, stddev^2) draws, vectorised (core/
  // vec_math.h): Box-Muller on the two 24-bit uniforms of one 64-bit draw,
  // both of its outputs used, so ceil(n / 2) engine draws. A different
  // stream from n calls of Normal(), which keeps its one-at-a-time form.
  void FillNormal(float* out, int64_t n, float mean = 0.0f,
                  float stddev = 1.0f);
  // Uniform integer in [0, n). REQUIRES: n > 0.
  uint64_t UniformInt(uint64_t n);
  uint64_t Next() { return engine_(); }

  // Textual engine state; Restore(Save()) continues the same stream.
  std::string Save() const;
  absl::Status Restore(const std::string& state);

 private:
  std::mt19937_64 engine_;
};

}  // namespace nnlab

#endif  // NNLAB_CORE_TENSOR_RNG_H_
