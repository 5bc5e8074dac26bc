#include "core/tensor/rng.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/kernels/vec_math.h"

namespace nnlab {

float Rng::Uniform(float lo, float hi) {
  // 24 random bits give every representable float step in [0, 1).
  const float u = static_cast<float>(engine_() >> 40) * (1.0f / 16777216.0f);
  return lo + (hi - lo) * u;
}

float Rng::Normal(float mean, float stddev) {
  // Box-Muller, written out so the stream does not depend on the standard
  // library's distribution implementation (and carries no hidden state).
  float u1;
  do {
    u1 = Uniform();
  } while (u1 <= 0.0f);
  const float u2 = Uniform();
  const float r = std::sqrt(-2.0f * std::log(u1));
  return mean + stddev * r * std::cos(6.28318530717958647692f * u2);
}

void Rng::FillNormal(float* out, int64_t n, float mean, float stddev) {
  constexpr int64_t kPairs = 256;
  constexpr float kScale = 1.0f / 16777216.0f;  // 2^-24.
  float u1[kPairs], u2[kPairs], c[kPairs], s[kPairs];
  while (n > 0) {
    // A block of up to 2 * kPairs values: cosines first, then sines.
    const int64_t pairs = std::min(kPairs, (n + 1) / 2);
    for (int64_t i = 0; i < pairs; ++i) {
      const uint64_t w = engine_();
      // u1 in (0, 1] (never 0, so the log is finite), u2 in [0, 1).
      u1[i] = static_cast<float>((w >> 40) + 1) * kScale;
      u2[i] = static_cast<float>((w >> 16) & 0xffffff) * kScale;
    }
    VecBoxMuller(u1, u2, pairs, mean, stddev, c, s);
    const int64_t sines = std::min(pairs, n - pairs);
    std::copy(c, c + pairs, out);
    std::copy(s, s + sines, out + pairs);
    out += pairs + sines;
    n -= pairs + sines;
  }
}

uint64_t Rng::UniformInt(uint64_t n) { return engine_() % n; }

std::string Rng::Save() const {
  std::ostringstream out;
  out << engine_;
  return out.str();
}

absl::Status Rng::Restore(const std::string& state) {
  std::istringstream in(state);
  std::mt19937_64 engine;
  in >> engine;
  if (in.fail()) return absl::InvalidArgumentError("corrupt RNG state");
  engine_ = engine;
  return absl::OkStatus();
}

}  // namespace nnlab
