// The adding problem (Hochreiter & Schmidhuber 1997): LSTM against a
// vanilla RNN on sequences of 100 steps.
//
// Each model: a recurrent layer of 64 units (last step) -> dense(1), Glorot
// initialisation, Adam lr 1e-3, batch 64, gradients clipped at global norm
// 1, a fresh batch every step. Prints the test MSE (mean (y - y^)^2 on 1,000
// held-out sequences; predicting the mean scores 1/6 ~ 0.167) every
// --eval_every steps, and the per-timestep gradient norms ||dE/dh_t|| of
// the last training step, which show why the RNN cannot learn: its
// gradient at the marked steps (t < 50) is orders of magnitude smaller than
// at t = 99.
//
// Usage: adding_problem [--kind=lstm|rnn|both] [--steps=N] [--length=T]
//                       [--eval_every=N] [--seed=S]   (--help lists them)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/data/sequence_data.h"
#include "core/layers/recurrent.h"
#include "core/model/model.h"
#include "core/model/sequence_model.h"
#include "core/model/zoo.h"
#include "core/train/trainer.h"
#include "examples/example_flags.h"

ABSL_FLAG(std::string, kind, "both", "lstm, rnn or both");
ABSL_FLAG(int64_t, steps, 4000, "training steps per model");
ABSL_FLAG(int64_t, length, 100, "sequence length T");
ABSL_FLAG(int64_t, eval_every, 250, "steps between test evaluations");
ABSL_FLAG(uint64_t, seed, 1, "initialisation and data seed");

namespace nnlab {
namespace {

// The flags' values (defaults: the ABSL_FLAGs above).
struct Flags {
  std::string kind;
  int64_t steps, length, eval_every;
  uint64_t seed;
};

int Run(const std::string& kind, const Flags& flags) {
  auto model_or =
      Model::Build(AddingProblemModel(kind, flags.length, flags.seed));
  if (!model_or.ok()) {
    std::fprintf(stderr, "%s\n", model_or.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<Model> model = std::move(model_or).value();
  TrainOptions options;
  options.optimizer.kind = OptimizerKind::kAdam;
  options.optimizer.lr = 1e-3f;
  options.optimizer.clip_norm = 1.0f;
  auto trainer = std::move(Trainer::Create(model.get(), options)).value();
  auto task = std::move(AddingProblem::Create(flags.length)).value();
  Rng data_rng(flags.seed + 100), test_rng(12345);
  Tensor test_x, test_y, x, y;
  task->Sample(1000, &test_rng, &test_x, &test_y);
  RecurrentLayer* rec = RecurrentLayers(&model->layers())[0];

  std::printf(
      "\n%s, T = %lld, 64 units: step, train MSE (batch), test MSE, "
      "||dE/dh_0|| / ||dE/dh_T-1||, ||dE/dh_T/2-1|| / ||dE/dh_T-1|| (last "
      "training step)\n",
      kind.c_str(), static_cast<long long>(flags.length));
  std::printf("%s,0,,%.4f,,\n", kind.c_str(),
              MeanSquaredError(model.get(), test_x, test_y));
  const auto start = std::chrono::steady_clock::now();
  StepStats stats;
  double train_sum = 0;
  for (int64_t step = 1; step <= flags.steps; ++step) {
    task->Sample(64, &data_rng, &x, &y);
    absl::Status s = trainer->TrainStep(x, y, false, &stats);
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
    train_sum += 2 * stats.loss;  // The MSE loss is 1/(2N) sum d^2.
    if (step % flags.eval_every == 0) {
      const std::vector<double>& g = rec->timestep_grad_norms();
      const double last = std::max(g.back(), 1e-30);
      std::printf("%s,%lld,%.4f,%.4f,%.2e,%.2e\n", kind.c_str(),
                  static_cast<long long>(step), train_sum / flags.eval_every,
                  MeanSquaredError(model.get(), test_x, test_y),
                  g.front() / last, g[flags.length / 2 - 1] / last);
      std::fflush(stdout);
      train_sum = 0;
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::printf("%s: %.1f s, %.1f ms/step\n", kind.c_str(), secs,
              1e3 * secs / std::max<int64_t>(flags.steps, 1));
  const std::vector<double>& norms = rec->timestep_grad_norms();
  if (!norms.empty()) {
    std::printf("%s: ||dE/dh_t|| at the last step (t: norm):", kind.c_str());
    for (int64_t t = 0; t < flags.length; t += flags.length / 10) {
      std::printf(" %lld: %.2e", static_cast<long long>(t), norms[t]);
    }
    std::printf(" %lld: %.2e\n", static_cast<long long>(flags.length - 1),
                norms.back());
  }
  return 0;
}

}  // namespace
}  // namespace nnlab

int main(int argc, char** argv) {
  nnlab::ParseExampleFlags(
      argc, argv,
      "LSTM against a vanilla RNN on the adding problem; prints test MSE "
      "and per-timestep gradient norms.\nUsage: adding_problem [flags]");
  nnlab::Flags flags;
  flags.kind = absl::GetFlag(FLAGS_kind);
  flags.steps = absl::GetFlag(FLAGS_steps);
  flags.length = absl::GetFlag(FLAGS_length);
  flags.eval_every = absl::GetFlag(FLAGS_eval_every);
  flags.seed = absl::GetFlag(FLAGS_seed);
  if (flags.kind != "lstm" && flags.kind != "rnn" && flags.kind != "both") {
    std::fprintf(stderr, "--kind must be lstm, rnn or both\n");
    return 2;
  }
  if (flags.eval_every < 1 || flags.steps < 0) {
    std::fprintf(stderr, "--steps must be >= 0 and --eval_every >= 1\n");
    return 2;
  }
  int rc = 0;
  if (flags.kind == "lstm" || flags.kind == "both") {
    rc |= nnlab::Run("lstm", flags);
  }
  if (flags.kind == "rnn" || flags.kind == "both") {
    rc |= nnlab::Run("rnn", flags);
  }
  return rc;
}
