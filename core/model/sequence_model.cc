#include "core/model/sequence_model.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace nnlab {

std::vector<RecurrentLayer*> RecurrentLayers(LayerStack* stack) {
  std::vector<RecurrentLayer*> out;
  for (int i = 0; i < stack->size(); ++i) {
    if (auto* r = dynamic_cast<RecurrentLayer*>(stack->layer(i))) {
      out.push_back(r);
    }
  }
  return out;
}

void SetStateful(LayerStack* stack, bool on) {
  for (RecurrentLayer* r : RecurrentLayers(stack)) {
    r->set_stateful(on);
    r->ResetState();
  }
}

absl::Status GenerateSequence(
    Model* model, const Tensor& prime, int64_t steps,
    const std::function<void(const Tensor& last_output, Tensor* next_input)>&
        next_input) {
  const Shape& in = model->input_shape();
  if (in.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "generation needs a sequence model ([steps, features] input), got ",
        ShapeToString(in)));
  }
  if (prime.rank() != 3 || prime.dim(0) < 1 || prime.dim(1) < 1 ||
      prime.dim(2) != in[1]) {
    return absl::InvalidArgumentError(
        absl::StrCat("prime must be [N, S >= 1, ", in[1], "], got ",
                     ShapeToString(prime.shape())));
  }
  if (!prime.AllFinite()) {
    return absl::InvalidArgumentError("prime contains NaN or infinity");
  }
  if (steps < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("steps must be >= 0, got ", steps));
  }
  LayerStack& stack = model->layers();
  SetStateful(&stack, true);
  const int64_t n = prime.dim(0);
  const bool per_step = model->output_shape().size() == 2;
  Tensor last, x({n, 1, in[1]});
  const Tensor* input = &prime;
  for (int64_t s = 0; s < steps; ++s) {
    const Tensor& out = stack.Forward(*input, Mode::kEval);
    // Last step's row of [N, S, O] outputs, or the [N, O] output itself.
    if (per_step) {
      const int64_t t = out.dim(1), o = out.dim(2);
      last.Resize({n, o});
      for (int64_t i = 0; i < n; ++i) {
        std::copy(out.data() + (i * t + t - 1) * o,
                  out.data() + (i * t + t) * o, last.data() + i * o);
      }
    } else {
      last.CopyFrom(out);
    }
    x.Resize({n, 1, in[1]});
    next_input(last, &x);
    input = &x;
  }
  SetStateful(&stack, false);
  return absl::OkStatus();
}

absl::StatusOr<std::string> GenerateText(const CharCorpus& corpus, Model* model,
                                         absl::string_view seed, int64_t length,
                                         float temperature, Rng* rng) {
  const int64_t v = corpus.vocab_size();
  if (seed.empty()) {
    return absl::InvalidArgumentError("seed: must not be empty");
  }
  for (char c : seed) {
    if (corpus.Index(c) < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("seed: character code ",
                       static_cast<int>(static_cast<unsigned char>(c)),
                       " is not in the vocabulary"));
    }
  }
  if (!(temperature > 0) || !std::isfinite(temperature)) {
    return absl::InvalidArgumentError(
        absl::StrCat("temperature: must be > 0, got ", temperature));
  }
  if (length < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("length: must be >= 0, got ", length));
  }
  const Shape& in = model->input_shape();
  const Shape& out = model->output_shape();
  if (in.size() != 2 || in[1] != v || out.empty() || out.back() != v) {
    return absl::InvalidArgumentError(
        absl::StrCat("model: needs [T, ", v, "] inputs and ", v,
                     " logits per step, has input ", ShapeToString(in),
                     " and output ", ShapeToString(out)));
  }
  const int64_t s = static_cast<int64_t>(seed.size());
  Tensor prime({1, s, v});
  for (int64_t i = 0; i < s; ++i) prime[i * v + corpus.Index(seed[i])] = 1.0f;
  std::string generated;
  std::vector<double> p(v);
  auto next = [&](const Tensor& logits, Tensor* x) {
    // Sample from softmax(logits / temperature), shifted for stability.
    const float* z = logits.data();
    const float m = *std::max_element(z, z + v);
    double sum = 0;
    for (int64_t k = 0; k < v; ++k) {
      p[k] = std::exp((z[k] - m) / temperature);
      sum += p[k];
    }
    double u = rng->Uniform() * sum;
    int64_t pick = v - 1;
    for (int64_t k = 0; k < v; ++k) {
      u -= p[k];
      if (u < 0) {
        pick = k;
        break;
      }
    }
    generated.push_back(corpus.Char(static_cast<int>(pick)));
    x->SetZero();
    (*x)[pick] = 1.0f;
  };
  NNLAB_RETURN_IF_ERROR(GenerateSequence(model, prime, length, next));
  return generated;
}

}  // namespace nnlab
