// A small residual CNN on Fashion-MNIST, beside the same network without
// shortcuts.
//
// Stem: conv 3x3, 16 channels + batch norm + ReLU. Then three residual
// blocks conv3x3-BN-ReLU-conv3x3-BN + shortcut, each followed by ReLU, with
// 16, 32 and 64 channels at 28x28, 14x14 and 7x7 (blocks 2 and 3 start with
// a stride-2 convolution; their shortcut is a strided 1x1 convolution).
// Global average pooling and a dense layer of 10 classes close it. The
// "plain" network is the same stack with the shortcuts removed. Both train
// with SGD, momentum 0.9, lr 0.05, batch 64, He initialisation, seed 1; the
// program prints the test accuracy after every epoch and the training and
// inference throughput (per wall-clock second and per CPU second).
//
// Usage: resnet_fashion [--epochs=N] [--train=N] [--only=residual|plain]
//                       [--threads=N]   (--help lists them)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "core/data/dataset.h"
#include "core/kernels/blas.h"
#include "core/model/model.h"
#include "core/model/zoo.h"
#include "core/train/trainer.h"
#include "examples/example_flags.h"

ABSL_FLAG(int, epochs, 3, "passes over the training images");
ABSL_FLAG(int64_t, train, 60000, "training images used (all: 60,000)");
ABSL_FLAG(std::string, only, "", "train only 'residual' or 'plain'");
ABSL_FLAG(int, threads, 1, "BLAS threads");

namespace nnlab {
namespace {

struct RunResult {
  std::vector<double> accuracy;  // Test accuracy after each epoch.
  // Images per second of wall-clock time and per second of CPU time (the
  // latter is what one dedicated core would do on a shared machine).
  double train_wall = 0, train_cpu = 0, infer_wall = 0, infer_cpu = 0;
};

// Wall-clock and process CPU seconds.
struct Clocks {
  double wall, cpu;
  static Clocks Now() {
    return {std::chrono::duration<double>(
                std::chrono::steady_clock::now().time_since_epoch())
                .count(),
            double(std::clock()) / CLOCKS_PER_SEC};
  }
};

RunResult TrainOne(bool residual, const ImageDataset& train,
                   const ImageDataset& test, int epochs) {
  const char* label = residual ? "residual" : "plain";
  auto model = std::move(Model::Build(FashionResidualCnn(residual))).value();
  TrainOptions options;
  options.optimizer.kind = OptimizerKind::kMomentum;
  options.optimizer.lr = 0.05f;
  options.optimizer.momentum = 0.9f;
  options.epochs = epochs;
  options.batch_size = 64;
  options.stats_every = 0;
  auto trainer = std::move(Trainer::Create(model.get(), options)).value();
  RunResult result;
  // Training time is summed between steps; the per-epoch evaluations are
  // left out by restarting the clocks after each one.
  double train_wall = 0, train_cpu = 0;
  Clocks last = Clocks::Now();
  Trainer::Callbacks callbacks;
  callbacks.on_step = [&](const StepStats& s) {
    const Clocks now = Clocks::Now();
    train_wall += now.wall - last.wall;
    train_cpu += now.cpu - last.cpu;
    last = now;
    if (s.step % 200 == 0) {
      std::printf("  %s step %lld: loss %.4f batch accuracy %.3f\n", label,
                  static_cast<long long>(s.step), s.loss, s.accuracy);
      std::fflush(stdout);
    }
    return absl::OkStatus();
  };
  callbacks.on_eval = [&](const StepStats& at, const EvalResult& r) {
    std::printf("%s epoch %d: test loss %.4f accuracy %.2f%%\n", label,
                at.epoch + 1, r.loss, 100 * r.accuracy);
    std::fflush(stdout);
    result.accuracy.push_back(r.accuracy);
    last = Clocks::Now();
  };
  absl::Status s = trainer->Run(train, &test, callbacks);
  if (!s.ok()) {
    std::fprintf(stderr, "training failed: %s\n", s.ToString().c_str());
    std::exit(1);
  }
  result.train_wall = double(train.size()) * epochs / train_wall;
  result.train_cpu = double(train.size()) * epochs / train_cpu;
  const Clocks start = Clocks::Now();
  auto eval = Evaluate(model.get(), test, 256);
  const Clocks end = Clocks::Now();
  if (!eval.ok()) std::exit(1);
  result.infer_wall = test.size() / (end.wall - start.wall);
  result.infer_cpu = test.size() / (end.cpu - start.cpu);
  std::printf(
      "%s: %lld parameters; training %.0f images/s (%.0f per CPU "
      "second), inference %.0f images/s (%.0f per CPU second)\n",
      label, static_cast<long long>(model->ParameterCount()), result.train_wall,
      result.train_cpu, result.infer_wall, result.infer_cpu);
  std::fflush(stdout);
  return result;
}

int Main(int argc, char** argv) {
  ParseExampleFlags(argc, argv,
                    "A residual CNN on Fashion-MNIST beside the same network "
                    "without shortcuts.\nUsage: resnet_fashion [flags]");
  const int epochs = absl::GetFlag(FLAGS_epochs),
            threads = absl::GetFlag(FLAGS_threads);
  int64_t train_size = absl::GetFlag(FLAGS_train);
  const std::string only = absl::GetFlag(FLAGS_only);
  if (!only.empty() && only != "residual" && only != "plain") {
    std::fprintf(stderr, "--only must be residual or plain\n");
    return 2;
  }
  SetBlasThreads(threads);
  auto data = LoadFashionMnist(DefaultDatasetsDir());
  if (!data.ok()) {
    std::fprintf(stderr, "%s (run scripts/fetch_data.sh)\n",
                 data.status().ToString().c_str());
    return 1;
  }
  if (train_size < 1 || train_size > data->train->size()) {
    train_size = data->train->size();
  }
  std::unique_ptr<ImageDataset> train = data->train->Slice(0, train_size);
  if (!train->Reshape({1, 28, 28}).ok() ||
      !data->test->Reshape({1, 28, 28}).ok()) {
    return 1;
  }
  std::printf(
      "Fashion-MNIST: %lld training / %lld test images, %d epochs, "
      "SGD momentum 0.9 lr 0.05 batch 64, %d BLAS thread(s)\n",
      static_cast<long long>(train->size()),
      static_cast<long long>(data->test->size()), epochs, threads);
  std::vector<std::pair<std::string, RunResult>> results;
  for (bool residual : {true, false}) {
    if (!only.empty() && only != (residual ? "residual" : "plain")) continue;
    results.emplace_back(residual ? "residual (shortcuts)" : "plain (none)",
                         TrainOne(residual, *train, *data->test, epochs));
  }
  std::printf(
      "\n| network | test accuracy per epoch | training images/s "
      "(per CPU s) | inference images/s (per CPU s) |\n"
      "|---|---|---|---|\n");
  for (const auto& [name, r] : results) {
    std::string acc;
    for (double a : r.accuracy) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%s%.2f%%", acc.empty() ? "" : ", ",
                    100 * a);
      acc += buf;
    }
    std::printf("| %s | %s | %.0f (%.0f) | %.0f (%.0f) |\n", name.c_str(),
                acc.c_str(), r.train_wall, r.train_cpu, r.infer_wall,
                r.infer_cpu);
  }
  return 0;
}

}  // namespace
}  // namespace nnlab

int main(int argc, char** argv) { return nnlab::Main(argc, argv); }
