// Nielsen's vanishing-gradient table (Neural Networks and Deep Learning,
// ch. 5), set up as the book does: sigmoid hidden and output units, the
// cross-entropy cost summed over the ten outputs against one-hot labels
// (LossKind::kSigmoidCrossEntropyClasses), weights N(0, 1/sqrt(n_in)),
// biases N(0, 1) (BiasInit::kNormal). The service's spec is
// examples/nielsen_ch5.textproto.
//
// For [784, 30, 30, 10], [784, 30, 30, 30, 10] and [784, 30, 30, 30, 30, 10]
// prints the learning speed ||delta^l|| = ||dC/db^l|| of every hidden layer at
// initialisation (gradient of the mean cost over the first 1,000 training
// digits), mean and range over --seeds seeds, beside the book's figures.
//
// --dump_dir=DIR also writes, for seed 1 of each network, what an
// independent check needs (tests/core/model/nielsen_check.py):
//   DIR/<net>/<param>.f32   each parameter, raw little-endian float32, in
//                           nnlab's layout (dense W [out, in], b [out])
//   DIR/<net>/params.txt    one line per parameter, input to output:
//                           "<name> [<shape>]"
//   DIR/<net>/speeds.txt    one line per hidden layer: nnlab's ||delta^l||
// where <net> is "h2", "h3" or "h4" (the number of hidden layers).
//
// Usage: nielsen_ch5 [--seeds=N] [--dump_dir=DIR]
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "core/data/dataset.h"
#include "core/model/model.h"
#include "examples/example_flags.h"

ABSL_FLAG(int, seeds, 5, "independent initialisations (seeds 1..N)");
ABSL_FLAG(std::string, dump_dir, "",
          "write seed 1's parameters and speeds here for an outside check");

namespace nnlab {
namespace {

ModelSpec NielsenNet(int hidden_layers, uint64_t seed) {
  ModelSpec spec;
  spec.name = "nielsen-ch5";
  spec.input_shape = {784};
  for (int i = 0; i < hidden_layers; ++i) {
    LayerSpec dense;
    dense.kind = "dense";
    dense.units = 30;
    spec.layers.push_back(dense);
    LayerSpec act;
    act.kind = "sigmoid";
    spec.layers.push_back(act);
  }
  LayerSpec out;
  out.kind = "dense";
  out.units = 10;
  spec.layers.push_back(out);
  // The output sigmoid lives in the loss: dC/dz^L = a^L - y, as in the book.
  spec.loss = LossKind::kSigmoidCrossEntropyClasses;
  spec.init = InitKind::kScaledNormal;
  spec.bias_init = BiasInit::kNormal;
  spec.seed = seed;
  return spec;
}

// ||dC/db|| of every hidden layer of the mean cost over `x`, `y`.
std::vector<double> HiddenSpeeds(Model* model, const Tensor& x,
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
  speeds.pop_back();  // The output layer: the book's table leaves it out.
  return speeds;
}

bool WriteFile(const std::string& path, const void* data, size_t bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(data, 1, bytes, f) == bytes;
  return std::fclose(f) == 0 && ok;
}

bool Dump(const std::string& dir, Model* model,
          const std::vector<double>& speeds) {
  std::string index;
  for (const Param& p : model->Params()) {
    if (!WriteFile(dir + "/" + p.name + ".f32", p.value->data(),
                   sizeof(float) * p.value->size())) {
      return false;
    }
    index += p.name + " " + ShapeToString(p.value->shape()) + "\n";
  }
  if (!WriteFile(dir + "/params.txt", index.data(), index.size())) {
    return false;
  }
  std::string text;
  char line[64];
  for (double s : speeds) {
    std::snprintf(line, sizeof(line), "%.9g\n", s);
    text += line;
  }
  return WriteFile(dir + "/speeds.txt", text.data(), text.size());
}

int Main(int argc, char** argv) {
  ParseExampleFlags(argc, argv,
                    "Nielsen's ch. 5 learning speeds at initialisation.\n"
                    "Usage: nielsen_ch5 [--seeds=N] [--dump_dir=DIR]");
  const int seeds = absl::GetFlag(FLAGS_seeds);
  const std::string dump_dir = absl::GetFlag(FLAGS_dump_dir);
  if (seeds < 1) {
    std::fprintf(stderr, "--seeds must be >= 1\n");
    return 2;
  }
  auto data = LoadMnist(DefaultDatasetsDir());
  if (!data.ok()) {
    std::fprintf(stderr, "%s (run scripts/fetch_data.sh)\n",
                 data.status().ToString().c_str());
    return 1;
  }
  std::vector<int64_t> first(1000);
  for (int i = 0; i < 1000; ++i) first[i] = i;
  Tensor x, y;
  data->train->Gather(first, &x, &y);

  // The book's figures (ch. 5, "The vanishing gradient problem").
  const std::vector<std::vector<double>> published = {
      {0.07, 0.31}, {0.012, 0.060, 0.283}, {0.003, 0.017, 0.070, 0.285}};
  std::printf(
      "||delta^l|| at initialisation, first 1,000 training digits, mean "
      "[min, max] over %d seeds\n\n"
      "| network | layer | nnlab | range | Nielsen |\n|---|---|---|---|---|\n",
      seeds);
  for (int hidden = 2; hidden <= 4; ++hidden) {
    std::vector<std::vector<double>> runs;
    for (int seed = 1; seed <= seeds; ++seed) {
      auto model = Model::Build(NielsenNet(hidden, seed));
      if (!model.ok()) {
        std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
        return 1;
      }
      runs.push_back(HiddenSpeeds(model->get(), x, y));
      if (seed == 1 && !dump_dir.empty()) {
        const std::string dir = dump_dir + "/h" + std::to_string(hidden);
        std::error_code error;
        std::filesystem::create_directories(dir, error);
        if (error || !Dump(dir, model->get(), runs.back())) {
          std::fprintf(stderr, "cannot write %s\n", dir.c_str());
          return 1;
        }
      }
    }
    for (int l = 0; l < hidden; ++l) {
      double lo = 1e300, hi = 0, sum = 0;
      for (const auto& r : runs) {
        lo = std::min(lo, r[l]);
        hi = std::max(hi, r[l]);
        sum += r[l];
      }
      std::printf("| [784, %s10] | hidden %d | %.3g | [%.3g, %.3g] | %.3g |\n",
                  hidden == 2   ? "30, 30, "
                  : hidden == 3 ? "30, 30, 30, "
                                : "30, 30, 30, 30, ",
                  l + 1, sum / runs.size(), lo, hi, published[hidden - 2][l]);
    }
  }
  return 0;
}

}  // namespace
}  // namespace nnlab

int main(int argc, char** argv) { return nnlab::Main(argc, argv); }
