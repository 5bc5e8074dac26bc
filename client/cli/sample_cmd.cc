// nnlab sample: draws from a GAN's generator or a sequence model; --out
// writes image samples as a PNG grid; --prime / --length generate text from
// a character model.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cli/common.h"
#include "client/cli/plot.h"

namespace nnlab::cli {
namespace {

struct SampleFlags {
  std::string model, noise, out;
  int count = 16;
  uint64_t seed = 1;
  int steps = 0;
  float temperature = 0;
  // Character models (SampleText): set when --prime or --length is given.
  bool text = false;
  bool temperature_set = false;
  std::string prime, dataset;
  int length = 200;
};

// Character models: prints exactly the generated characters, then a
// newline.
int RunSampleText(const Globals& g, const SampleFlags& f) {
  auto client = Connect(g);
  if (!client.ok()) return Fail(client.status());
  v1::SampleTextRequest req;
  req.set_model_id(f.model);
  req.set_dataset(f.dataset);
  req.set_prime(f.prime);
  req.set_length(f.length);
  // Unset, the model's own distribution (temperature 1).
  req.set_temperature(f.temperature_set ? f.temperature : 1.0f);
  req.set_seed(f.seed);
  auto resp = (*client)->SampleText(req);
  if (!resp.ok()) return Fail(resp.status());
  if (g.json) {
    PrintJson(*resp);
  } else {
    std::fwrite(resp->text().data(), 1, resp->text().size(), stdout);
    std::fputc('\n', stdout);
  }
  return kExitOk;
}

int RunSample(const Globals& g, const SampleFlags& f) {
  auto client = Connect(g);
  if (!client.ok()) return Fail(client.status());
  v1::SampleRequest req;
  req.set_model_id(f.model);
  req.set_count(f.count);
  req.set_seed(f.seed);
  if (f.noise == "uniform") req.set_noise(v1::NOISE_UNIFORM);
  if (f.noise == "normal") req.set_noise(v1::NOISE_NORMAL);
  req.set_steps(f.steps);
  req.set_temperature(f.temperature);
  auto resp = (*client)->Sample(req);
  if (!resp.ok()) return Fail(resp.status());
  if (g.json) {
    PrintJson(*resp);
  } else {
    std::printf("%d samples %s (weights at step %lld)\n", f.count,
                ShapeString(resp->samples().shape()).c_str(),
                static_cast<long long>(resp->weights_step()));
    if (resp->tokens_size() > 0 && f.count > 0) {
      const int per = resp->tokens_size() / f.count;
      for (int i = 0; i < f.count; ++i) {
        std::vector<int64_t> toks(resp->tokens().begin() + i * per,
                                  resp->tokens().begin() + (i + 1) * per);
        std::printf("sample %d: %s\n", i, absl::StrJoin(toks, " ").c_str());
      }
    }
  }
  if (!f.out.empty()) {
    // Images: a grid of square samples, values mapped from [min, max].
    const v1::Tensor& t = resp->samples();
    const int64_t n = t.shape_size() > 0 ? t.shape(0) : 0;
    std::vector<float> values(t.data().begin(), t.data().end());
    if (values.empty() && !t.raw_data().empty()) {
      values.resize(t.raw_data().size() / 4);
      std::memcpy(values.data(), t.raw_data().data(), values.size() * 4);
    }
    const int64_t per = n > 0 ? static_cast<int64_t>(values.size()) / n : 0;
    const int64_t side =
        static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(per))));
    if (n == 0 || side * side != per) {
      return Usage(absl::StrCat("--out: samples of ", per,
                                " values are not square images"));
    }
    float lo = values[0], hi = values[0];
    for (float v : values) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    const int64_t cols =
        static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
    const int64_t rows = (n + cols - 1) / cols;
    const int64_t cell = side + 2;
    const int width = static_cast<int>(cols * cell),
              height = static_cast<int>(rows * cell);
    std::vector<uint8_t> px(static_cast<size_t>(width) * height, 0);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t ox = (i % cols) * cell + 1, oy = (i / cols) * cell + 1;
      for (int64_t y = 0; y < side; ++y) {
        for (int64_t x = 0; x < side; ++x) {
          float v = values[i * per + y * side + x];
          float u = hi > lo ? (v - lo) / (hi - lo) : 0.f;
          px[(oy + y) * width + ox + x] =
              static_cast<uint8_t>(std::lround(u * 255));
        }
      }
    }
    absl::Status s = WriteGrayPng(f.out, width, height, px);
    if (!s.ok()) return Fail(s);
    if (!g.json) std::printf("wrote %s\n", f.out.c_str());
  }
  return kExitOk;
}

}  // namespace

void AddSampleCommand(CLI::App& app, Cli& cli) {
  auto sf = std::make_shared<SampleFlags>();
  CLI::App* sample = app.add_subcommand(
      "sample", "Draw samples from a GAN's generator or a sequence model");
  sample->add_option("--model", sf->model, "Model id")->required();
  sample->add_option("--count", sf->count, "Number of samples")
      ->capture_default_str();
  sample->add_option("--seed", sf->seed, "Seed")->capture_default_str();
  sample->add_option("--noise", sf->noise, "Noise distribution")
      ->check(CLI::IsMember({"uniform", "normal"}));
  sample->add_option("--steps", sf->steps,
                     "Sequence models: steps to generate");
  sample->add_option("--temperature", sf->temperature,
                     "Softmax temperature: sequence models 0 (argmax) or more; "
                     "character models > 0 (default 1)");
  sample->add_option("--out", sf->out, "Write image samples as a PNG grid");
  CLI::Option* prime =
      sample->add_option("--prime", sf->prime,
                         "Character models: the text generation starts from");
  CLI::Option* length = sample->add_option(
      "--length", sf->length, "Character models: characters to generate");
  sample->add_option("--dataset", sf->dataset,
                     "Character models: the data set whose vocabulary the "
                     "model uses (default: that of its latest job)");
  sample->callback([&cli, sf, prime, length, sample] {
    sf->text = prime->count() > 0 || length->count() > 0;
    sf->temperature_set = sample->count("--temperature") > 0;
    cli.run = [&g = cli.globals, sf] {
      return sf->text ? RunSampleText(g, *sf) : RunSample(g, *sf);
    };
  });
}

}  // namespace nnlab::cli
