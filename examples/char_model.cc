// A character model on any text file, and one-to-many generation from it.
//
// LSTM (return_sequences) -> time_dense(V) -> per-step softmax
// cross-entropy, trained on random windows of the first 90% of the text
// (Adam, gradients clipped at global norm 1); the validation loss on the
// last 10% (non-overlapping windows) is printed against the unigram
// baseline, then the model writes text from a seed, each sampled
// character fed back as the next input.
//
// Usage: char_model [--text=PATH] [--steps=N] [--units=H] [--length=T]
//                   [--batch=N] [--lr=LR] [--seed_text=S] [--generate=N]
//                   [--temperature=X] [--eval_every=N]   (--help lists them)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/data/sequence_data.h"
#include "core/layers/recurrent.h"
#include "core/model/model.h"
#include "core/model/sequence_model.h"
#include "core/optim/optimizer.h"
#include "examples/example_flags.h"

ABSL_FLAG(std::string, text, "/usr/share/common-licenses/GPL-3",
          "the text file to learn");
ABSL_FLAG(int64_t, steps, 1500, "training steps");
ABSL_FLAG(int64_t, units, 128, "LSTM units");
ABSL_FLAG(int64_t, length, 64, "characters per training window");
ABSL_FLAG(int64_t, batch, 32, "windows per step");
ABSL_FLAG(float, lr, 3e-3f, "Adam learning rate");
ABSL_FLAG(std::string, seed_text, "This License",
          "text the generation starts from");
ABSL_FLAG(int64_t, generate, 400, "characters to generate");
ABSL_FLAG(float, temperature, 0.8f, "sampling temperature");
ABSL_FLAG(int64_t, eval_every, 250, "steps between validation losses");

int main(int argc, char** argv) {
  using namespace nnlab;  // NOLINT: a small program.
  ParseExampleFlags(argc, argv,
                    "A character-level LSTM on a text file, then text "
                    "generated from it.\nUsage: char_model [flags]");
  const std::string path = absl::GetFlag(FLAGS_text);
  const int64_t steps = absl::GetFlag(FLAGS_steps),
                units = absl::GetFlag(FLAGS_units),
                length = absl::GetFlag(FLAGS_length),
                batch = absl::GetFlag(FLAGS_batch),
                generate = absl::GetFlag(FLAGS_generate),
                eval_every =
                    std::max<int64_t>(1, absl::GetFlag(FLAGS_eval_every));
  const float lr = absl::GetFlag(FLAGS_lr),
              temperature = absl::GetFlag(FLAGS_temperature);
  const std::string seed_text = absl::GetFlag(FLAGS_seed_text);
  auto corpus = CharCorpus::FromFile(path);
  if (!corpus.ok()) {
    std::fprintf(stderr, "%s\n", corpus.status().ToString().c_str());
    return 1;
  }
  const int64_t split = corpus->size() * 9 / 10;
  auto train = corpus->WindowSampler(0, split, length);
  auto valid = corpus->Windows(split, corpus->size(), length, length);
  if (!train.ok() || !valid.ok()) {
    std::fprintf(stderr, "text too short: %s %s\n",
                 train.status().ToString().c_str(),
                 valid.status().ToString().c_str());
    return 1;
  }
  const int64_t v = corpus->vocab_size();
  ModelSpec spec;
  spec.name = "char_model";
  spec.input_shape = {length, v};
  spec.init = InitKind::kGlorot;
  spec.loss = LossKind::kMse;  // Unused: the per-step loss is below.
  spec.layers.resize(2);
  spec.layers[0].kind = "lstm";
  spec.layers[0].units = units;
  spec.layers[0].return_sequences = true;
  spec.layers[1].kind = "time_dense";
  spec.layers[1].units = v;
  auto model_or = Model::Build(spec);
  if (!model_or.ok()) {
    std::fprintf(stderr, "%s\n", model_or.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<Model> model = std::move(model_or).value();
  OptimizerConfig config;
  config.kind = OptimizerKind::kAdam;
  config.lr = lr;
  const std::vector<Param> params = model->Params();
  auto opt = MakeOptimizer(config, params);
  SequenceSoftmaxCrossEntropy loss;
  Rng rng(1);
  Tensor x, y, grad;
  auto validation = [&]() {
    Rng unused;
    BatchIterator it(valid->get(), 64, false, &unused);
    it.StartEpoch();
    double sum = 0;
    int64_t count = 0;
    while (it.Next(&x, &y)) {
      sum += loss.Compute(model->Forward(x, Mode::kEval), y, &grad) *
             double(x.dim(0));
      count += x.dim(0);
    }
    return sum / count;
  };
  std::printf(
      "%s: %lld characters, vocabulary %lld; unigram baseline on the "
      "validation text %.3f nats/char\nstep, train loss, validation "
      "loss, seconds\n",
      path.c_str(), static_cast<long long>(corpus->size()),
      static_cast<long long>(v),
      corpus->UnigramCrossEntropy(0, split, split, corpus->size()));
  const auto start = std::chrono::steady_clock::now();
  double train_sum = 0;
  for (int64_t step = 1; step <= steps; ++step) {
    (*train)->Sample(batch, &rng, &x, &y);
    model->ZeroGrad();
    train_sum += loss.Compute(model->Forward(x, Mode::kTrain), y, &grad);
    model->Backward(grad);
    ClipGradNorm(params, 1.0f);
    opt->Step(lr);
    if (step % eval_every == 0 || step == steps) {
      const double secs = std::chrono::duration<double>(
                              std::chrono::steady_clock::now() - start)
                              .count();
      const int64_t n = step % eval_every == 0 ? eval_every : step % eval_every;
      std::printf("%lld, %.3f, %.3f, %.0f\n", static_cast<long long>(step),
                  train_sum / n, validation(), secs);
      std::fflush(stdout);
      train_sum = 0;
    }
  }
  auto text = GenerateText(*corpus, model.get(), seed_text, generate,
                           temperature, &rng);
  if (!text.ok()) {
    std::fprintf(stderr, "%s\n", text.status().ToString().c_str());
    return 1;
  }
  std::printf("\n--- generated (temperature %.2f) ---\n%s%s\n", temperature,
              seed_text.c_str(), text->c_str());
  return 0;
}
