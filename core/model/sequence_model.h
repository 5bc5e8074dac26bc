// Operations on whole models with recurrent layers: finding those layers,
// stateful stepping, and one-to-many generation (sequences, and text from a
// character model). Not thread-safe: they run the model.
#ifndef NNLAB_CORE_MODEL_SEQUENCE_MODEL_H_
#define NNLAB_CORE_MODEL_SEQUENCE_MODEL_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/data/sequence_data.h"
#include "core/layers/recurrent.h"
#include "core/model/model.h"
#include "core/tensor/rng.h"
#include "core/tensor/tensor.h"

namespace nnlab {

// The recurrent layers among the top-level layers of `stack`.
std::vector<RecurrentLayer*> RecurrentLayers(LayerStack* stack);
// Sets stateful mode on all of them and resets their state.
void SetStateful(LayerStack* stack, bool on);

// One-to-many generation. With the model's recurrent layers stateful,
// runs `steps` times: feed the input (first `prime` [N, S, F], S >= 1, then
// the fed-back step); pass the output at the last step [N, O] to
// `next_input`, which writes the next input [N, 1, F]. Eval mode; restores
// stateless mode afterwards. InvalidArgument if `prime` does not fit the
// model. REQUIRES: the model's input is [T, F] per sample.
absl::Status GenerateSequence(
    Model* model, const Tensor& prime, int64_t steps,
    const std::function<void(const Tensor& last_output, Tensor* next_input)>&
        next_input);

// One-to-many generation: primes a character model (input [T, V],
// output [T, V] logits per step, e.g. lstm + time_dense) with `seed`
// (characters of `corpus`), then samples `length` characters from
// softmax(logits / temperature), each fed back as the next input. Returns the
// generated characters (without the seed). InvalidArgument for an empty seed or
// one with characters outside the vocabulary, temperature <= 0, length < 0, or
// a model whose input or output does not have V features per step.
absl::StatusOr<std::string> GenerateText(const CharCorpus& corpus, Model* model,
                                         absl::string_view seed, int64_t length,
                                         float temperature, Rng* rng);

}  // namespace nnlab

#endif  // NNLAB_CORE_MODEL_SEQUENCE_MODEL_H_
