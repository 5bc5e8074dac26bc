// MNIST read row by row: each digit is a sequence of 28 steps of 28 pixels.
// LSTM with 128 units (last step) -> dense(10) -> softmax cross-entropy,
// Glorot initialisation, Adam lr 1e-3, batch 64, gradients clipped at
// global norm 1; trained on the 8,000 training digits, evaluated on the
// 2,000 held-out digits after every epoch.
//
// Usage: mnist_rows [--epochs=N] [--units=H] [--kind=lstm|rnn] [--seed=S]
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "core/data/sequence_data.h"
#include "core/model/model.h"
#include "core/train/trainer.h"
#include "examples/example_flags.h"

ABSL_FLAG(int, epochs, 12, "passes over the 8,000 training digits");
ABSL_FLAG(int64_t, units, 128, "recurrent units");
ABSL_FLAG(std::string, kind, "lstm", "recurrent layer: lstm or rnn");
ABSL_FLAG(uint64_t, seed, 1, "initialisation and shuffling seed");

int main(int argc, char** argv) {
  using namespace nnlab;  // NOLINT: a small program.
  ParseExampleFlags(argc, argv,
                    "MNIST read row by row (28 steps of 28 pixels) by an LSTM "
                    "or RNN.\nUsage: mnist_rows [flags]");
  const int epochs = absl::GetFlag(FLAGS_epochs);
  const int64_t units = absl::GetFlag(FLAGS_units);
  const std::string kind = absl::GetFlag(FLAGS_kind);
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  auto data = LoadMnistRows(DefaultDatasetsDir());
  if (!data.ok()) {
    std::fprintf(stderr, "%s (run scripts/fetch_data.sh)\n",
                 data.status().ToString().c_str());
    return 1;
  }
  ModelSpec spec;
  spec.name = "mnist_rows_" + kind;
  spec.input_shape = {28, 28};
  spec.init = InitKind::kGlorot;
  spec.seed = seed;
  spec.layers.resize(2);
  spec.layers[0].kind = kind;
  spec.layers[0].units = units;
  spec.layers[1].kind = "dense";
  spec.layers[1].units = 10;
  auto model_or = Model::Build(spec);
  if (!model_or.ok()) {
    std::fprintf(stderr, "%s\n", model_or.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<Model> model = std::move(model_or).value();
  TrainOptions options;
  options.optimizer.kind = OptimizerKind::kAdam;
  options.optimizer.lr = 1e-3f;
  options.optimizer.clip_norm = 1.0f;
  options.epochs = epochs;
  options.batch_size = 64;
  options.stats_every = 0;
  options.shuffle_seed = seed;
  auto trainer = std::move(Trainer::Create(model.get(), options)).value();
  const auto start = std::chrono::steady_clock::now();
  std::printf(
      "%s %lld units on MNIST rows: epoch, step, test loss, test "
      "accuracy, seconds\n",
      kind.c_str(), static_cast<long long>(units));
  Trainer::Callbacks callbacks;
  callbacks.on_eval = [&](const StepStats& at, const EvalResult& r) {
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    std::printf("%d, %lld, %.4f, %.4f, %.0f\n", at.epoch + 1,
                static_cast<long long>(at.step), r.loss, r.accuracy, secs);
    std::fflush(stdout);
  };
  absl::Status s = trainer->Run(*data->train, data->test.get(), callbacks);
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
