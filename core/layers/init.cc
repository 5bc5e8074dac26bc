#include "core/layers/init.h"

#include <cmath>

namespace nnlab {

void InitWeights(InitKind kind, int64_t fan_in, int64_t fan_out, Rng* rng,
                 Tensor* w) {
  float* p = w->data();
  const int64_t n = w->size();
  switch (kind) {
    case InitKind::kNormal:
      for (int64_t i = 0; i < n; ++i) p[i] = rng->Normal(0.0f, 1.0f);
      return;
    case InitKind::kScaledNormal: {
      const float sd = 1.0f / std::sqrt(static_cast<float>(fan_in));
      for (int64_t i = 0; i < n; ++i) p[i] = rng->Normal(0.0f, sd);
      return;
    }
    case InitKind::kGlorot: {
      const float a = std::sqrt(6.0f / static_cast<float>(fan_in + fan_out));
      for (int64_t i = 0; i < n; ++i) p[i] = rng->Uniform(-a, a);
      return;
    }
    case InitKind::kHe: {
      const float sd = std::sqrt(2.0f / static_cast<float>(fan_in));
      for (int64_t i = 0; i < n; ++i) p[i] = rng->Normal(0.0f, sd);
      return;
    }
  }
}

}  // namespace nnlab
