#include "core/rng.h"

#include <cmath>
#include <sstream>

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
