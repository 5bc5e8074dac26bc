// The lecture's exploding-gradient case, |sigma'(z) w| > 1, in-process.
//
// A sigmoid network [784, H x --width, 10] with weights N(0, 1) and biases
// b = -W (1/2, ..., 1/2) (BiasInit::kCentered), which keep z near 0 where
// sigma' is largest: each backward step multiplies the gradient by about
// sigma'(z) w > 1, so the learning speed ||delta^l|| grows towards the
// input. Trains it with SGD twice, without and with gradient clipping
// (clip_norm), printing every step's per-layer learning speed; without
// clipping the run stops on the core's non-finite diagnosis naming the
// layer. The service's spec is examples/exploding_gradients.textproto.
//
// Usage: exploding_gradients [--hidden=N] [--width=N] [--lr=X] [--clip=X]
//                            [--steps=N]
#include <cstdio>
#include <memory>
#include <string>

#include "core/data/dataset.h"
#include "core/model/model.h"
#include "core/train/trainer.h"
#include "examples/example_flags.h"

ABSL_FLAG(int, hidden, 10, "hidden sigmoid layers");
ABSL_FLAG(int64_t, width, 256, "units per hidden layer");
ABSL_FLAG(double, lr, 1.0, "SGD learning rate");
ABSL_FLAG(double, clip, 1.0, "clip_norm of the second run");
ABSL_FLAG(int64_t, steps, 40, "at most this many steps per run");

namespace nnlab {
namespace {

ModelSpec ExplodingNet(int hidden, int64_t width) {
  ModelSpec spec;
  spec.name = "exploding";
  spec.input_shape = {784};
  for (int i = 0; i < hidden; ++i) {
    LayerSpec dense;
    dense.kind = "dense";
    dense.units = width;
    spec.layers.push_back(dense);
    LayerSpec act;
    act.kind = "sigmoid";
    spec.layers.push_back(act);
  }
  LayerSpec out;
  out.kind = "dense";
  out.units = 10;
  spec.layers.push_back(out);
  spec.init = InitKind::kNormal;
  spec.bias_init = BiasInit::kCentered;
  spec.seed = 1;
  return spec;
}

absl::Status RunOnce(const TrainTest& data, float clip, int64_t max_steps) {
  auto model = std::move(Model::Build(ExplodingNet(absl::GetFlag(FLAGS_hidden),
                                                   absl::GetFlag(FLAGS_width))))
                   .value();
  TrainOptions options;
  options.optimizer.kind = OptimizerKind::kSgd;
  options.optimizer.lr = static_cast<float>(absl::GetFlag(FLAGS_lr));
  options.optimizer.clip_norm = clip;
  options.batch_size = 10;
  options.stats_every = 1;
  auto trainer = std::move(Trainer::Create(model.get(), options)).value();
  std::printf("\nclip_norm %g: ||delta^l|| per layer, input first\n", clip);
  Trainer::Callbacks callbacks;
  callbacks.on_step = [&](const StepStats& s) {
    std::printf("step %3lld loss %8.3g |grad| %9.3g |", (long long)s.step,
                s.loss, s.grad_norm);
    for (const LayerStats& l : s.layers)
      std::printf(" %8.2e", l.grad_bias_norm);
    std::printf("\n");
    if (s.step >= max_steps) return absl::CancelledError("enough steps");
    return absl::OkStatus();
  };
  return trainer->Run(*data.train, nullptr, callbacks);
}

int Main(int argc, char** argv) {
  ParseExampleFlags(argc, argv,
                    "Exploding gradients: sigmoid net, large weights, "
                    "centred biases, SGD without and with clipping.");
  auto data = LoadMnist(DefaultDatasetsDir());
  if (!data.ok()) {
    std::fprintf(stderr, "%s (run scripts/fetch_data.sh)\n",
                 data.status().ToString().c_str());
    return 1;
  }
  const int64_t steps = absl::GetFlag(FLAGS_steps);
  absl::Status plain = RunOnce(*data, 0.0f, steps);
  std::printf("without clipping: %s\n", plain.ToString().c_str());
  absl::Status clipped =
      RunOnce(*data, static_cast<float>(absl::GetFlag(FLAGS_clip)), steps);
  std::printf("with clipping: %s\n", clipped.ToString().c_str());
  return 0;
}

}  // namespace
}  // namespace nnlab

int main(int argc, char** argv) { return nnlab::Main(argc, argv); }
