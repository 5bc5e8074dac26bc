// Choosing outputs from a model's scores: the k best classes of a row, one
// index drawn from softmax(scores / temperature), and one-to-many sampling
// of a recurrent model that feeds each drawn index back one-hot. Pure
// functions except for the model and the Rng they are given (neither is
// thread-safe).
#ifndef NNLAB_CORE_MODEL_SAMPLING_H_
#define NNLAB_CORE_MODEL_SAMPLING_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "core/model/model.h"
#include "core/tensor/rng.h"
#include "core/tensor/tensor.h"

namespace nnlab {

// The indices of the min(k, n) largest of scores[0, n), largest first; ties
// go to the lower index. REQUIRES: k >= 0, n >= 0.
std::vector<int64_t> TopK(const float* scores, int64_t n, int64_t k);

// One index of scores[0, n): the first largest when temperature == 0, else
// a draw from softmax(scores / temperature) (shifted by the maximum for
// stability), using one rng->Uniform(). REQUIRES: n >= 1, temperature >= 0
// and finite.
int64_t SampleIndex(const float* scores, int64_t n, double temperature,
                    Rng* rng);

// One-to-many sampling of a model whose input is [T, F] per sample and
// whose output has F values per step: starting from `prime` [N, S, F]
// (S >= 1), runs `steps` steps (GenerateSequence, sequence_model.h); at
// each one picks SampleIndex of every row's last output, rows in order,
// and feeds it back one-hot. Writes the picks to `tokens` [N * steps]
// (row-major: sample r's step s at r * steps + s) and their one-hot
// encoding to `samples` [N, steps, F]. InvalidArgument if the model does
// not output F values per step or `prime` does not fit it.
// REQUIRES: steps >= 1, temperature >= 0 and finite.
absl::Status SampleSequence(Model* model, const Tensor& prime, int64_t steps,
                            double temperature, Rng* rng,
                            std::vector<int64_t>* tokens, Tensor* samples);

}  // namespace nnlab

#endif  // NNLAB_CORE_MODEL_SAMPLING_H_
