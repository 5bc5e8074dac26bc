// The lecture's cure for vanishing gradients, measured.
//
// Networks [784, 30 x L, 10] on the MNIST digits, L = 4 and L = 10 hidden
// layers, in four variants:
//   (a) sigmoid, W ~ N(0, 1)                  (the problem)
//   (b) ReLU, He initialisation               (a non-saturating unit)
//   (c) sigmoid + batch norm, W ~ N(0, 1)     (dense -> batch_norm -> sigmoid)
//   (d) residual, sigmoid, W ~ N(0, 1)        (hidden layers 2..L are blocks
//                                              x + sigmoid(W x + b))
// For each, prints the learning speed ||delta^l|| = ||dC/db^l|| of every
// hidden layer (for (c) the batch-norm shift beta, the bias that feeds the
// sigmoid; the dense bias before a batch norm has zero gradient) at
// initialisation and after one epoch of SGD (lr 0.1, batch 10), both for the
// mean cost over the first 1,000 training images, averaged over seeds, with
// the ratios first/last and first/second-to-last hidden layer, and the test
// accuracy. (In (c) only the last hidden layer is not followed by another
// batch norm, whose mean subtraction cancels the batch sum of the gradient
// that reaches beta below it; so in (c) the last layer's ||dC/dbeta|| stands
// apart, and first/(L-1) compares like with like.)
//
// Then the dropout effect: a wide ReLU MLP [784, 800, 800, 10] trained on
// the first 1,000 training digits, tested on the 2,000 held-out digits, with
// and without dropout.
//
// Usage: vanishing_cure [--seeds=N] [--dropout_epochs=N] [--dropout_seeds=N]
//                       [--skip_dropout] [--skip_cure]   (--help lists them)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/data/dataset.h"
#include "core/kernels/blas.h"
#include "core/model/model.h"
#include "core/train/trainer.h"
#include "examples/example_flags.h"

ABSL_FLAG(int, seeds, 3, "independent runs per network in the cure study");
ABSL_FLAG(int, dropout_epochs, 100, "epochs of the dropout study");
ABSL_FLAG(int, dropout_seeds, 3, "independent runs in the dropout study");
ABSL_FLAG(bool, skip_cure, false, "skip the vanishing-gradient cure study");
ABSL_FLAG(bool, skip_dropout, false, "skip the dropout study");

namespace nnlab {
namespace {

enum class Variant { kSigmoid, kReluHe, kBatchNorm, kResidual };

const char* VariantName(Variant v) {
  switch (v) {
    case Variant::kSigmoid:
      return "(a) sigmoid, N(0,1)";
    case Variant::kReluHe:
      return "(b) ReLU, He";
    case Variant::kBatchNorm:
      return "(c) sigmoid + batch norm";
    case Variant::kResidual:
      return "(d) residual sigmoid";
  }
  return "";
}

LayerSpec Spec(const char* kind, std::string name = "") {
  LayerSpec spec;
  spec.kind = kind;
  spec.name = std::move(name);
  return spec;
}

LayerSpec Dense(int64_t units, std::string name) {
  LayerSpec spec = Spec("dense", std::move(name));
  spec.units = units;
  return spec;
}

// The network and, per hidden layer, the name of the layer whose bias-like
// gradient is that layer's ||delta^l||.
ModelSpec CureNet(Variant v, int hidden, uint64_t seed,
                  std::vector<std::string>* speed_layers) {
  ModelSpec spec;
  spec.input_shape = {784};
  spec.seed = seed;
  spec.init = v == Variant::kReluHe ? InitKind::kHe : InitKind::kNormal;
  const char* act = v == Variant::kReluHe ? "relu" : "sigmoid";
  speed_layers->clear();
  for (int l = 1; l <= hidden; ++l) {
    const std::string name = "hidden" + std::to_string(l);
    switch (v) {
      case Variant::kSigmoid:
      case Variant::kReluHe:
        spec.layers.push_back(Dense(30, name));
        spec.layers.push_back(Spec(act));
        speed_layers->push_back(name);
        break;
      case Variant::kBatchNorm:
        spec.layers.push_back(Dense(30, name));
        spec.layers.push_back(Spec("batch_norm", "bn" + std::to_string(l)));
        spec.layers.push_back(Spec(act));
        speed_layers->push_back("bn" + std::to_string(l));
        break;
      case Variant::kResidual:
        if (l == 1) {
          // 784 -> 30 cannot be an identity shortcut.
          spec.layers.push_back(Dense(30, name));
          spec.layers.push_back(Spec(act));
        } else {
          LayerSpec block = Spec("residual", name);
          block.body = {Dense(30, "dense"), Spec(act)};
          spec.layers.push_back(std::move(block));
        }
        speed_layers->push_back(name);
        break;
    }
  }
  spec.layers.push_back(Dense(10, "output"));
  return spec;
}

// ||delta^l|| of each hidden layer for the mean cost over (x, y).
std::vector<double> LearningSpeeds(Model* model, const Tensor& x,
                                   const Tensor& y,
                                   const std::vector<std::string>& names) {
  Tensor grad;
  model->ZeroGrad();
  const Tensor& out = model->Forward(x, Mode::kTrain);
  model->loss()->Compute(out, y, &grad);
  model->Backward(grad);
  std::vector<LayerStats> stats = model->CollectLayerStats(nullptr);
  std::vector<double> speeds;
  for (const std::string& name : names) {
    double v = std::nan("");
    for (const LayerStats& s : stats) {
      if (s.name == name) v = s.grad_bias_norm;
    }
    speeds.push_back(v);
  }
  model->ZeroGrad();
  return speeds;
}

struct CureResult {
  std::vector<double> at_init, after_epoch;  // Mean over seeds, per layer.
  double accuracy = 0;                       // Mean test accuracy.
  int failed_seeds = 0;                      // Seeds whose training blew up.
};

CureResult MeasureCure(Variant v, int hidden, int seeds, const TrainTest& data,
                       const Tensor& x1000, const Tensor& y1000) {
  CureResult r;
  r.at_init.assign(hidden, 0.0);
  r.after_epoch.assign(hidden, 0.0);
  int ok_seeds = 0;
  for (int seed = 1; seed <= seeds; ++seed) {
    std::vector<std::string> names;
    ModelSpec spec = CureNet(v, hidden, seed, &names);
    auto model = std::move(Model::Build(spec)).value();
    std::vector<double> init = LearningSpeeds(model.get(), x1000, y1000, names);
    TrainOptions options;
    options.optimizer.kind = OptimizerKind::kSgd;
    options.optimizer.lr = 0.1f;
    options.epochs = 1;
    options.batch_size = 10;
    options.stats_every = 0;
    options.shuffle_seed = seed;
    auto trainer = std::move(Trainer::Create(model.get(), options)).value();
    double accuracy = 0;
    Trainer::Callbacks callbacks;
    callbacks.on_eval = [&](const StepStats&, const EvalResult& e) {
      accuracy = e.accuracy;
    };
    absl::Status s = trainer->Run(*data.train, data.test.get(), callbacks);
    if (!s.ok()) {
      std::fprintf(stderr, "%s, %d hidden, seed %d: %s\n", VariantName(v),
                   hidden, seed, s.ToString().c_str());
      ++r.failed_seeds;
      continue;
    }
    std::vector<double> after =
        LearningSpeeds(model.get(), x1000, y1000, names);
    for (int l = 0; l < hidden; ++l) {
      r.at_init[l] += init[l];
      r.after_epoch[l] += after[l];
    }
    r.accuracy += accuracy;
    ++ok_seeds;
  }
  for (int l = 0; l < hidden && ok_seeds > 0; ++l) {
    r.at_init[l] /= ok_seeds;
    r.after_epoch[l] /= ok_seeds;
  }
  if (ok_seeds > 0) r.accuracy /= ok_seeds;
  return r;
}

void PrintCureTable(int hidden, int seeds, const TrainTest& data,
                    const Tensor& x1000, const Tensor& y1000) {
  std::string sizes;
  for (int l = 0; l < hidden; ++l) sizes += "30, ";
  std::printf(
      "\n### [784, %s10]: ||delta^l|| per hidden layer (mean over %d seeds)"
      "\n\n| variant | when |",
      sizes.c_str(), seeds);
  for (int l = 1; l <= hidden; ++l) std::printf(" l=%d |", l);
  std::printf(" first/last | first/(L-1) | test acc. |\n|---|---|");
  for (int l = 0; l < hidden + 3; ++l) std::printf("---|");
  std::printf("\n");
  for (Variant v : {Variant::kSigmoid, Variant::kReluHe, Variant::kBatchNorm,
                    Variant::kResidual}) {
    CureResult r = MeasureCure(v, hidden, seeds, data, x1000, y1000);
    for (int when = 0; when < 2; ++when) {
      const std::vector<double>& speeds = when == 0 ? r.at_init : r.after_epoch;
      std::printf("| %s | %s |", VariantName(v),
                  when == 0 ? "init" : "1 epoch");
      for (double s : speeds) std::printf(" %.2g |", s);
      std::printf(" %.2g | %.2g |", speeds[0] / speeds[hidden - 1],
                  speeds[0] / speeds[hidden - 2]);
      if (when == 0) {
        std::printf(" |\n");
      } else if (r.failed_seeds > 0) {
        std::printf(" %.1f%% (%d seeds diverged) |\n", 100 * r.accuracy,
                    r.failed_seeds);
      } else {
        std::printf(" %.1f%% |\n", 100 * r.accuracy);
      }
    }
    std::fflush(stdout);
  }
}

ModelSpec WideMlp(bool dropout, uint64_t seed) {
  ModelSpec spec;
  spec.input_shape = {784};
  spec.init = InitKind::kHe;
  spec.seed = seed;
  LayerSpec in_drop = Spec("dropout");
  in_drop.keep_prob = 0.8f;
  LayerSpec hidden_drop = Spec("dropout");
  hidden_drop.keep_prob = 0.5f;
  if (dropout) spec.layers.push_back(in_drop);
  for (int l = 1; l <= 2; ++l) {
    spec.layers.push_back(Dense(800, "hidden" + std::to_string(l)));
    spec.layers.push_back(Spec("relu"));
    if (dropout) spec.layers.push_back(hidden_drop);
  }
  spec.layers.push_back(Dense(10, "output"));
  return spec;
}

void DropoutEffect(const TrainTest& data, int epochs, int seeds) {
  std::unique_ptr<ImageDataset> train = data.train->Slice(0, 1000);
  std::printf(
      "\n### Dropout: [784, 800, 800, 10] ReLU, He, on 1,000 MNIST digits\n\n"
      "SGD momentum 0.9, lr 0.01, batch 32, %d epochs; test = the 2,000 "
      "held-out digits; mean over %d seeds [min, max].\n"
      "Dropout: keep 0.8 on the input, 0.5 after each hidden layer.\n\n"
      "| network | train accuracy | test accuracy | best test accuracy |\n"
      "|---|---|---|---|\n",
      epochs, seeds);
  for (bool dropout : {false, true}) {
    double train_sum = 0, test_sum = 0, best_sum = 0, lo = 1, hi = 0;
    for (int seed = 1; seed <= seeds; ++seed) {
      auto model = std::move(Model::Build(WideMlp(dropout, seed))).value();
      TrainOptions options;
      options.optimizer.kind = OptimizerKind::kMomentum;
      options.optimizer.lr = 0.01f;
      options.optimizer.momentum = 0.9f;
      options.epochs = epochs;
      options.batch_size = 32;
      options.stats_every = 0;
      options.shuffle_seed = seed;
      auto trainer = std::move(Trainer::Create(model.get(), options)).value();
      double last = 0, best = 0;
      Trainer::Callbacks callbacks;
      callbacks.on_eval = [&](const StepStats&, const EvalResult& e) {
        last = e.accuracy;
        best = std::max(best, e.accuracy);
      };
      absl::Status s = trainer->Run(*train, data.test.get(), callbacks);
      if (!s.ok()) {
        std::fprintf(stderr, "dropout run failed: %s\n", s.ToString().c_str());
        std::exit(1);
      }
      auto on_train = Evaluate(model.get(), *train);
      train_sum += on_train.ok() ? on_train->accuracy : 0;
      test_sum += last;
      best_sum += best;
      lo = std::min(lo, last);
      hi = std::max(hi, last);
    }
    std::printf("| %s | %.1f%% | %.2f%% [%.2f, %.2f] | %.2f%% |\n",
                dropout ? "with dropout" : "without dropout",
                100 * train_sum / seeds, 100 * test_sum / seeds, 100 * lo,
                100 * hi, 100 * best_sum / seeds);
    std::fflush(stdout);
  }
}

int Main(int argc, char** argv) {
  ParseExampleFlags(argc, argv,
                    "Cures for vanishing gradients (ReLU + He, batch norm, "
                    "residual blocks) and dropout's effect, measured.\n"
                    "Usage: vanishing_cure [flags]");
  const int seeds = std::max(1, absl::GetFlag(FLAGS_seeds)),
            dropout_epochs = std::max(1, absl::GetFlag(FLAGS_dropout_epochs)),
            dropout_seeds = std::max(1, absl::GetFlag(FLAGS_dropout_seeds));
  const bool cure = !absl::GetFlag(FLAGS_skip_cure),
             dropout = !absl::GetFlag(FLAGS_skip_dropout);
  SetBlasThreads(1);
  auto data = LoadMnist(DefaultDatasetsDir());
  if (!data.ok()) {
    std::fprintf(stderr, "%s (run scripts/fetch_data.sh)\n",
                 data.status().ToString().c_str());
    return 1;
  }
  if (cure) {
    std::vector<int64_t> first(1000);
    for (int64_t i = 0; i < 1000; ++i) first[i] = i;
    Tensor x1000, y1000;
    data->train->Gather(first, &x1000, &y1000);
    for (int hidden : {4, 10}) {
      PrintCureTable(hidden, seeds, *data, x1000, y1000);
    }
  }
  if (dropout) DropoutEffect(*data, dropout_epochs, dropout_seeds);
  return 0;
}

}  // namespace
}  // namespace nnlab

int main(int argc, char** argv) { return nnlab::Main(argc, argv); }
