// A GAN on the MNIST digits whose progress can be seen: MLP generator
// (64-dim N(0, 1) noise -> 256 ReLU -> 784 sigmoid) and discriminator
// (784 -> 256 leaky ReLU 0.2 -> 1 logit), Adam lr 2e-4 with beta1 0.5 for
// both, batch 64, one D step per G step, non-saturating G loss. Writes a
// grid of generated digits as a PNG (libpng's simplified API) at chosen
// steps, always from the same noise so the grids show one set of samples
// evolving, and prints the per-phase statistics.
//
// Usage: gan_mnist [--steps=N] [--grid_at=0,500,1000,...] [--out_dir=DIR]
//                  [--rows=R] [--cols=C] [--seed=S]   (--help lists them)
// Writes DIR/gan_mnist_step_<step>.png (default DIR: the working directory).
#include <png.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "core/data/dataset.h"
#include "core/data/sequence_data.h"
#include "core/train/gan_trainer.h"
#include "examples/example_flags.h"

ABSL_FLAG(int64_t, steps, 5000, "generator steps (one D step each)");
ABSL_FLAG(std::vector<std::string>, grid_at,
          std::vector<std::string>({"0", "250", "500", "1000", "2000", "3000",
                                    "5000"}),
          "steps at which to write a grid of samples (comma-separated)");
ABSL_FLAG(std::string, out_dir, ".", "where the PNG grids go");
ABSL_FLAG(int, rows, 8, "grid rows");
ABSL_FLAG(int, cols, 8, "grid columns");
ABSL_FLAG(uint64_t, seed, 1, "initialisation, noise and shuffling seed");

namespace nnlab {
namespace {

// The flags' values (defaults: the ABSL_FLAGs above).
struct Flags {
  int64_t steps;
  std::vector<int64_t> grid_at;
  std::string out_dir;
  int rows, cols;
  uint64_t seed;
};

// Writes `images` [n, 784] in [0, 1] as a rows x cols grid of 28x28 tiles
// with a 2-pixel dark border, 8-bit grayscale.
bool WriteGrid(const std::string& path, const Tensor& images, int rows,
               int cols) {
  const int tile = 28, pad = 2;
  const int width = cols * (tile + pad) + pad;
  const int height = rows * (tile + pad) + pad;
  std::vector<uint8_t> pixels(size_t(width) * height, 0);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      const int64_t k = int64_t(r) * cols + c;
      if (k >= images.dim(0)) continue;
      const float* img = images.data() + k * tile * tile;
      for (int y = 0; y < tile; ++y) {
        for (int x = 0; x < tile; ++x) {
          const float v = std::min(1.0f, std::max(0.0f, img[y * tile + x]));
          const int py = pad + r * (tile + pad) + y;
          const int px = pad + c * (tile + pad) + x;
          pixels[size_t(py) * width + px] =
              static_cast<uint8_t>(v * 255.0f + 0.5f);
        }
      }
    }
  }
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  image.width = width;
  image.height = height;
  image.format = PNG_FORMAT_GRAY;
  if (!png_image_write_to_file(&image, path.c_str(), /*convert_to_8bit=*/0,
                               pixels.data(), /*row_stride=*/0,
                               /*colormap=*/nullptr)) {
    std::fprintf(stderr, "writing %s: %s\n", path.c_str(), image.message);
    return false;
  }
  return true;
}

ModelSpec Generator(uint64_t seed) {
  ModelSpec g;
  g.name = "generator";
  g.input_shape = {64};
  g.init = InitKind::kHe;
  g.seed = seed;
  g.layers.resize(4);
  g.layers[0].kind = "dense";
  g.layers[0].units = 256;
  g.layers[1].kind = "relu";
  g.layers[2].kind = "dense";
  g.layers[2].units = 784;
  g.layers[3].kind = "sigmoid";
  return g;
}

ModelSpec Discriminator(uint64_t seed) {
  ModelSpec d;
  d.name = "discriminator";
  d.input_shape = {784};
  d.init = InitKind::kHe;
  d.loss = LossKind::kSigmoidCrossEntropy;
  d.seed = seed + 1;
  d.layers.resize(3);
  d.layers[0].kind = "dense";
  d.layers[0].units = 256;
  d.layers[1].kind = "leaky_relu";
  d.layers[1].alpha = 0.2f;
  d.layers[2].kind = "dense";
  d.layers[2].units = 1;
  return d;
}

int Run(const Flags& flags) {
  auto data = LoadMnist(DefaultDatasetsDir());
  if (!data.ok()) {
    std::fprintf(stderr, "%s (run scripts/fetch_data.sh)\n",
                 data.status().ToString().c_str());
    return 1;
  }
  GanOptions options;
  options.generator = Generator(flags.seed);
  options.discriminator = Discriminator(flags.seed);
  for (OptimizerConfig* c : {&options.g_optimizer, &options.d_optimizer}) {
    c->kind = OptimizerKind::kAdam;
    c->lr = 2e-4f;
    c->beta1 = 0.5f;
  }
  options.batch_size = 64;
  options.seed = flags.seed;
  auto gan_or = GanTrainer::Create(options);
  if (!gan_or.ok()) {
    std::fprintf(stderr, "%s\n", gan_or.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<GanTrainer> gan = std::move(gan_or).value();
  DatasetSampler real(data->train.get());

  // Fixed noise for the grids: the same samples, step after step.
  const int64_t n = int64_t(flags.rows) * flags.cols;
  Rng grid_rng(flags.seed + 77);
  Tensor z({n, 64}), images;
  for (int64_t i = 0; i < z.size(); ++i) z[i] = grid_rng.Normal();
  auto grid = [&](int64_t step) {
    images.CopyFrom(gan->generator()->layers().Forward(z, Mode::kEval));
    const std::string path =
        flags.out_dir + "/gan_mnist_step_" + std::to_string(step) + ".png";
    if (WriteGrid(path, images, flags.rows, flags.cols)) {
      std::printf("wrote %s\n", path.c_str());
    }
  };
  auto wants_grid = [&](int64_t step) {
    return std::find(flags.grid_at.begin(), flags.grid_at.end(), step) !=
           flags.grid_at.end();
  };
  if (wants_grid(0)) grid(0);
  std::printf(
      "step, D loss, G loss, mean D(x), mean D(G(z)), |grad D|, "
      "|grad G| (means over 100 steps)\n");
  const auto start = std::chrono::steady_clock::now();
  GanStepStats sum;
  GanRunOptions run;
  run.total_steps = std::max<int64_t>(0, flags.steps);
  run.steps_per_epoch =
      std::max<int64_t>(1, data->train->size() / options.batch_size);
  GanTrainer::Callbacks cb;
  cb.on_step = [&](const GanStepStats& s) {
    sum.d_loss += s.d_loss;
    sum.g_loss += s.g_loss;
    sum.d_real += s.d_real;
    sum.d_fake += s.d_fake;
    sum.d_grad_norm += s.d_grad_norm;
    sum.g_grad_norm += s.g_grad_norm;
    if (s.step % 100 == 0) {
      std::printf("%lld, %.3f, %.3f, %.3f, %.3f, %.3f, %.3f\n",
                  static_cast<long long>(s.step), sum.d_loss / 100,
                  sum.g_loss / 100, sum.d_real / 100, sum.d_fake / 100,
                  sum.d_grad_norm / 100, sum.g_grad_norm / 100);
      std::fflush(stdout);
      sum = GanStepStats();
    }
    return absl::OkStatus();
  };
  // The grids: asked for at chosen steps, so the hook filters.
  run.samples = RunCadence::Every(1);
  cb.on_sample = [&](const GanStepStats& s) {
    if (wants_grid(s.step)) grid(s.step);
    return absl::OkStatus();
  };
  absl::Status st = gan->Run(real, run, cb);
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 1;
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::printf("%lld steps in %.1f s (%.2f ms/step)\n",
              static_cast<long long>(flags.steps), secs,
              1e3 * secs / std::max<int64_t>(1, flags.steps));
  return 0;
}

}  // namespace
}  // namespace nnlab

int main(int argc, char** argv) {
  nnlab::ParseExampleFlags(argc, argv,
                           "A GAN on the MNIST digits, writing grids of "
                           "samples as it trains.\nUsage: gan_mnist [flags]");
  nnlab::Flags flags;
  flags.steps = absl::GetFlag(FLAGS_steps);
  for (const std::string& part : absl::GetFlag(FLAGS_grid_at)) {
    int64_t step;
    if (!absl::SimpleAtoi(part, &step)) {
      std::fprintf(stderr, "--grid_at: '%s' is not a step number\n",
                   part.c_str());
      return 2;
    }
    flags.grid_at.push_back(step);
  }
  flags.out_dir = absl::GetFlag(FLAGS_out_dir);
  flags.rows = std::max(1, absl::GetFlag(FLAGS_rows));
  flags.cols = std::max(1, absl::GetFlag(FLAGS_cols));
  flags.seed = absl::GetFlag(FLAGS_seed);
  return nnlab::Run(flags);
}
