// The lecture's learning-speed experiment, in-process.
//
// Network [784, 30, 30, 30, 30, 10], sigmoid, W ~ N(0, 1), on the MNIST
// digits. Prints ||delta^l|| = ||dC/db^l|| of every hidden layer at
// initialisation (mean cross-entropy cost over the first 1,000 training
// images; mean and range over 5 seeds), for W ~ N(0, 1) and
// W ~ N(0, 1/sqrt(n_in)); then trains the sigmoid network (SGD, lr 0.1) and a
// ReLU network of the same depth side by side, printing per-layer learning
// speed and test accuracy per epoch.
//
// Usage: vanishing_gradients [--epochs=N] [--batch=N] [--seeds=N]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/data/dataset.h"
#include "core/model/model.h"
#include "core/train/trainer.h"
#include "examples/example_flags.h"

ABSL_FLAG(int, epochs, 5, "training epochs per seed");
ABSL_FLAG(int64_t, batch, 10, "mini-batch size");
ABSL_FLAG(int, seeds, 5, "independent runs (seeds 1..N) averaged");

namespace nnlab {
namespace {

ModelSpec DeepNet(const char* activation, InitKind init, uint64_t seed) {
  ModelSpec spec;
  spec.name = std::string("deep_") + activation;
  spec.input_shape = {784};
  const int64_t sizes[] = {30, 30, 30, 30, 10};
  for (int i = 0; i < 5; ++i) {
    LayerSpec dense;
    dense.kind = "dense";
    dense.units = sizes[i];
    dense.name = "hidden" + std::to_string(i + 1);
    if (i == 4) dense.name = "output";
    spec.layers.push_back(dense);
    if (i < 4) {
      LayerSpec act;
      act.kind = activation;
      spec.layers.push_back(act);
    }
  }
  spec.init = init;
  spec.seed = seed;
  return spec;
}

// ||dC/db|| per layer (hidden layers first, output last) of the mean cost
// over `x`, `y`, without updating anything.
std::vector<double> LearningSpeeds(Model* model, const Tensor& x,
                                   const Tensor& y) {
  Tensor grad;
  model->ZeroGrad();
  const Tensor& out = model->Forward(x, Mode::kTrain);
  model->loss()->Compute(out, y, &grad);
  model->Backward(grad);
  std::vector<double> speeds;
  for (const LayerStats& s : model->CollectLayerStats(nullptr)) {
    speeds.push_back(s.grad_bias_norm);
  }
  return speeds;
}

void InitTable(const char* title, InitKind init, int seeds, const Tensor& x,
               const Tensor& y) {
  std::vector<std::vector<double>> runs;
  for (int seed = 1; seed <= seeds; ++seed) {
    auto model =
        std::move(Model::Build(DeepNet("sigmoid", init, seed))).value();
    runs.push_back(LearningSpeeds(model.get(), x, y));
  }
  std::printf(
      "\n%s: ||delta^l|| at initialisation, mean [min, max] over %d "
      "seeds\n\n| layer | ||delta^l|| | range | / last hidden |\n"
      "|---|---|---|---|\n",
      title, seeds);
  std::vector<double> means(4);
  for (int l = 0; l < 4; ++l) {
    double lo = 1e300, hi = 0, sum = 0;
    for (const auto& r : runs) {
      lo = std::min(lo, r[l]);
      hi = std::max(hi, r[l]);
      sum += r[l];
    }
    means[l] = sum / runs.size();
  }
  for (int l = 0; l < 4; ++l) {
    double lo = 1e300, hi = 0;
    for (const auto& r : runs) {
      lo = std::min(lo, r[l]);
      hi = std::max(hi, r[l]);
    }
    std::printf("| hidden %d | %.3g | [%.3g, %.3g] | %.3g |\n", l + 1, means[l],
                lo, hi, means[l] / means[3]);
  }
}

void TrainAndWatch(const char* activation, InitKind init, const TrainTest& data,
                   int epochs, int64_t batch) {
  auto model = std::move(Model::Build(DeepNet(activation, init, 1))).value();
  TrainOptions options;
  options.optimizer.kind = OptimizerKind::kSgd;
  options.optimizer.lr = 0.1f;
  options.epochs = epochs;
  options.batch_size = batch;
  options.stats_every = 1;
  auto trainer = std::move(Trainer::Create(model.get(), options)).value();
  std::vector<double> speed_sum(5, 0.0);
  int64_t steps = 0;
  double last_accuracy = 0;
  std::printf(
      "\n%s network [784, 30, 30, 30, 30, 10], SGD lr 0.1, batch %lld\n"
      "| epoch | ||delta^1|| | ||delta^2|| | ||delta^3|| | "
      "||delta^4|| | test accuracy |\n|---|---|---|---|---|---|\n",
      activation, static_cast<long long>(batch));
  Trainer::Callbacks callbacks;
  callbacks.on_step = [&](const StepStats& s) {
    for (size_t l = 0; l < s.layers.size(); ++l) {
      speed_sum[l] += s.layers[l].grad_bias_norm;
    }
    ++steps;
    return absl::OkStatus();
  };
  callbacks.on_eval = [&](const StepStats& at, const EvalResult& r) {
    std::printf("| %d | %.3g | %.3g | %.3g | %.3g | %.2f%% |\n", at.epoch + 1,
                speed_sum[0] / steps, speed_sum[1] / steps,
                speed_sum[2] / steps, speed_sum[3] / steps, 100 * r.accuracy);
    std::fflush(stdout);
    std::fill(speed_sum.begin(), speed_sum.end(), 0.0);
    steps = 0;
    last_accuracy = r.accuracy;
  };
  absl::Status s = trainer->Run(*data.train, data.test.get(), callbacks);
  if (!s.ok()) {
    std::fprintf(stderr, "training failed: %s\n", s.ToString().c_str());
    std::exit(1);
  }
  std::printf("final test accuracy (%s): %.2f%%\n", activation,
              100 * last_accuracy);
}

int Main(int argc, char** argv) {
  ParseExampleFlags(argc, argv,
                    "The lecture's vanishing-gradient experiment: per-layer "
                    "learning speed of a deep sigmoid net on MNIST.\n"
                    "Usage: vanishing_gradients [flags]");
  const int epochs = absl::GetFlag(FLAGS_epochs),
            seeds = absl::GetFlag(FLAGS_seeds);
  const int64_t batch = absl::GetFlag(FLAGS_batch);
  auto data = LoadMnist(DefaultDatasetsDir());
  if (!data.ok()) {
    std::fprintf(stderr, "%s (run scripts/fetch_data.sh)\n",
                 data.status().ToString().c_str());
    return 1;
  }
  // The first 1,000 training images, in file order.
  std::vector<int64_t> first(1000);
  for (int i = 0; i < 1000; ++i) first[i] = i;
  Tensor x, y;
  data->train->Gather(first, &x, &y);
  InitTable("sigmoid, W ~ N(0, 1)", InitKind::kNormal, seeds, x, y);
  InitTable("sigmoid, W ~ N(0, 1/sqrt(n_in))", InitKind::kScaledNormal, seeds,
            x, y);
  TrainAndWatch("sigmoid", InitKind::kNormal, *data, epochs, batch);
  TrainAndWatch("relu", InitKind::kHe, *data, epochs, batch);
  return 0;
}

}  // namespace
}  // namespace nnlab

int main(int argc, char** argv) { return nnlab::Main(argc, argv); }
