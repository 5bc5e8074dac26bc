#include "core/model/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "core/model/sequence_model.h"
#include "core/status_macros.h"

namespace nnlab {

std::vector<int64_t> TopK(const float* scores, int64_t n, int64_t k) {
  std::vector<int64_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  const int64_t top = std::min(k, n);
  std::partial_sort(
      idx.begin(), idx.begin() + top, idx.end(), [&](int64_t a, int64_t b) {
        return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
      });
  idx.resize(top);
  return idx;
}

int64_t SampleIndex(const float* scores, int64_t n, double temperature,
                    Rng* rng) {
  int64_t pick = std::max_element(scores, scores + n) - scores;
  if (temperature > 0) {
    // Shifted by the maximum so that exp cannot overflow.
    const double m = scores[pick];
    double total = 0;
    std::vector<double> p(n);
    for (int64_t j = 0; j < n; ++j) {
      p[j] = std::exp((scores[j] - m) / temperature);
      total += p[j];
    }
    double u = rng->Uniform() * total;
    for (pick = 0; pick < n - 1 && u >= p[pick]; ++pick) u -= p[pick];
  }
  return pick;
}

absl::Status SampleSequence(Model* model, const Tensor& prime, int64_t steps,
                            double temperature, Rng* rng,
                            std::vector<int64_t>* tokens, Tensor* samples) {
  const int64_t n = prime.rank() == 3 ? prime.dim(0) : 0;
  const int64_t f = prime.rank() == 3 ? prime.dim(2) : 0;
  tokens->assign(n * steps, 0);
  samples->Resize(Shape{n, steps, f});
  samples->SetZero();
  int64_t t = 0;
  absl::Status inner = absl::OkStatus();
  NNLAB_RETURN_IF_ERROR(GenerateSequence(
      model, prime, steps, [&](const Tensor& last, Tensor* next) {
        next->Resize(Shape{n, 1, f});
        next->SetZero();
        if (last.cols() != f) {
          inner = absl::InvalidArgumentError(absl::StrCat(
              "the model outputs ", last.cols(), " values per step but takes ",
              f, " inputs; one-to-many sampling feeds outputs back"));
          return;
        }
        for (int64_t r = 0; r < n && t < steps; ++r) {
          const int64_t pick =
              SampleIndex(last.data() + r * f, f, temperature, rng);
          (*next)[r * f + pick] = 1.0f;
          (*samples)[(r * steps + t) * f + pick] = 1.0f;
          (*tokens)[r * steps + t] = pick;
        }
        ++t;
      }));
  return inner;
}

}  // namespace nnlab
