// Whole-run throughput of the performance workloads: training and
// inference samples/s (median of several epochs after a warm-up epoch, with
// min and max), achieved GFLOP/s of the matrix products, peak RSS, and heap
// allocations per training step after warm-up, for 1 and 2 BLAS threads.
//
// Usage: throughput [--workload=NAME[,NAME...]] [--threads=N[,N...]]
//                   [--epochs=N] [--stats_every=N] [--json] [--list]
// --stats_every=N collects the per-layer statistics a job streams every N
// steps (a job's default is 1; the comparison with PyTorch runs without).
// Each (workload, threads) pair runs in its own child process (this binary
// re-executed), so peak RSS belongs to that workload alone. Workloads whose
// layers do not build are reported as skipped with the reason.
// bench/torch_reference.py runs the same workloads in PyTorch;
// bench/compare.sh runs both and prints the ratio table.
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "bench/bench_util.h"
#include "core/data/dataset.h"
#include "core/data/sequence_data.h"
#include "core/kernels/blas.h"
#include "core/model/model.h"
#include "core/model/zoo.h"
#include "core/status_macros.h"
#include "core/testing/alloc_counter.h"
#include "core/train/gan_trainer.h"
#include "core/train/trainer.h"

extern char** environ;

namespace nnlab {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// CPU seconds used by the whole process (all threads). On a shared machine
// samples per CPU-second is less disturbed by other load than wall time.
double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

enum class DataKind { kMnistFlat, kMnistRows, kFashionImages };

struct Workload {
  std::string name;
  std::string description;
  DataKind data = DataKind::kMnistFlat;
  ModelSpec model;  // Classifier workloads.
  GanOptions gan;   // gan-mlp.
  bool is_gan = false;
  TrainOptions train;
  // Training samples per epoch (0 = the whole training set); the CNN uses
  // a subset so an epoch takes seconds, not minutes.
  int64_t train_limit = 0;
  int epochs = 5;  // Timed epochs (after one warm-up epoch).
};

LayerSpec L(const char* kind, int64_t units = 0) {
  LayerSpec spec;
  spec.kind = kind;
  spec.units = units;
  return spec;
}

ModelSpec Mlp(const std::vector<int64_t>& widths, const char* activation,
              bool bn_dropout, InitKind init) {
  ModelSpec spec;
  spec.input_shape = {widths[0]};
  for (size_t i = 1; i < widths.size(); ++i) {
    spec.layers.push_back(L("dense", widths[i]));
    if (i + 1 == widths.size()) break;
    if (bn_dropout) spec.layers.push_back(L("batch_norm"));
    spec.layers.push_back(L(activation));
    if (bn_dropout) {
      LayerSpec dropout = L("dropout");
      dropout.keep_prob = 0.5f;
      spec.layers.push_back(dropout);
    }
  }
  spec.init = init;
  spec.seed = 1;
  return spec;
}

std::vector<Workload> Workloads() {
  std::vector<Workload> all;
  {
    Workload w;
    w.name = "lecture-b10";
    w.description = "[784,30,30,30,30,10] sigmoid, SGD 0.1, batch 10";
    w.model =
        Mlp({784, 30, 30, 30, 30, 10}, "sigmoid", false, InitKind::kNormal);
    w.train.optimizer.kind = OptimizerKind::kSgd;
    w.train.optimizer.lr = 0.1f;
    w.train.batch_size = 10;
    w.epochs = 7;
    all.push_back(w);
    w.name = "lecture-b64";
    w.description = "[784,30,30,30,30,10] sigmoid, SGD 0.1, batch 64";
    w.train.batch_size = 64;
    all.push_back(w);
  }
  {
    Workload w;
    w.name = "wide-mlp";
    w.description = "[784,1024,1024,10] ReLU, Adam 1e-3, batch 256";
    w.model = Mlp({784, 1024, 1024, 10}, "relu", false, InitKind::kHe);
    w.train.optimizer.kind = OptimizerKind::kAdam;
    w.train.optimizer.lr = 1e-3f;
    w.train.batch_size = 256;
    w.epochs = 5;
    all.push_back(w);
    w.name = "wide-mlp-bn-dropout";
    w.description =
        "[784,1024,1024,10] dense-BN-ReLU-dropout 0.5, Adam 1e-3, batch 256";
    w.model = Mlp({784, 1024, 1024, 10}, "relu", true, InitKind::kHe);
    all.push_back(w);
  }
  {
    Workload w;
    w.name = "lstm-rows";
    w.description =
        "MNIST rows 28x28, LSTM 128 many-to-one, dense 10, Adam, "
        "batch 64";
    w.data = DataKind::kMnistRows;
    w.model.input_shape = {28, 28};
    w.model.layers = {L("lstm", 128), L("dense", 10)};
    w.model.init = InitKind::kGlorot;
    w.train.optimizer.kind = OptimizerKind::kAdam;
    w.train.optimizer.lr = 1e-3f;
    w.train.batch_size = 64;
    w.epochs = 3;
    all.push_back(w);
  }
  {
    Workload w;
    w.name = "resnet-small";
    w.description =
        "Fashion-MNIST (6,400-image epochs), conv16 stem + 3 "
        "residual blocks (16/32/64), GAP, dense 10, SGD momentum "
        "0.9, batch 64";
    w.data = DataKind::kFashionImages;
    w.model = FashionResidualCnn();
    w.train.optimizer.kind = OptimizerKind::kMomentum;
    w.train.optimizer.lr = 0.05f;
    w.train.optimizer.momentum = 0.9f;
    w.train.batch_size = 64;
    w.train_limit = 6400;
    w.epochs = 3;
    all.push_back(w);
  }
  {
    Workload w;
    w.name = "gan-mlp";
    w.description =
        "MNIST, G 64->256 ReLU->784 tanh, D 784->256 leaky "
        "ReLU->1, Adam 2e-4 (beta1 0.5), batch 64, 1 D + 1 G step";
    w.is_gan = true;
    ModelSpec& g = w.gan.generator;
    g.input_shape = {64};
    g.layers = {L("dense", 256), L("relu"), L("dense", 784), L("tanh")};
    g.init = InitKind::kGlorot;
    ModelSpec& d = w.gan.discriminator;
    d.input_shape = {784};
    LayerSpec leaky = L("leaky_relu");
    leaky.alpha = 0.2f;
    d.layers = {L("dense", 256), leaky, L("dense", 1)};
    d.loss = LossKind::kSigmoidCrossEntropy;
    d.init = InitKind::kGlorot;
    d.seed = 2;
    for (OptimizerConfig* c : {&w.gan.g_optimizer, &w.gan.d_optimizer}) {
      c->kind = OptimizerKind::kAdam;
      c->lr = 2e-4f;
      c->beta1 = 0.5f;
    }
    w.gan.batch_size = 64;
    w.gan.d_steps = 1;
    w.train.batch_size = 64;
    w.epochs = 3;
    all.push_back(w);
  }
  return all;
}

// Multiply-accumulates of the matrix products of one sample through
// `specs` from per-sample input `in`: forward, and the part of the
// input-gradient products that the first layer of a model skips (dE/dx of
// the data is never needed). Elementwise work is not counted.
struct Macs {
  double forward = 0;
  double input_grad = 0;  // Products with the layer input's gradient.
};

bool CountMacs(const std::vector<LayerSpec>& specs, Shape* shape, Macs* total,
               double* first_input_grad) {
  for (const LayerSpec& s : specs) {
    Macs m;
    Shape out = *shape;
    if (s.kind == "dense") {
      if (shape->size() != 1) return false;
      m.forward = m.input_grad = double((*shape)[0]) * s.units;
      out = {s.units};
    } else if (s.kind == "conv2d") {
      const int64_t ho =
          ((*shape)[1] + 2 * s.padding - s.kernel) / s.stride + 1;
      const int64_t wo =
          ((*shape)[2] + 2 * s.padding - s.kernel) / s.stride + 1;
      m.forward = m.input_grad =
          double(s.filters) * (*shape)[0] * s.kernel * s.kernel * ho * wo;
      out = {s.filters, ho, wo};
    } else if (s.kind == "lstm") {
      const double t = (*shape)[0], f = (*shape)[1], h = s.units;
      m.forward = t * (f + h) * 4 * h;
      m.input_grad = t * f * 4 * h;  // The recurrent part counts as weights'.
      out = s.return_sequences ? Shape{(*shape)[0], s.units} : Shape{s.units};
    } else if (s.kind == "residual") {
      Shape body_out = *shape;
      Macs body;
      double unused = -1;
      if (!CountMacs(s.body, &body_out, &body, &unused)) return false;
      m = body;
      if (body_out != *shape) {  // Projection shortcut.
        const double proj =
            body_out.size() == 3
                ? double(body_out[0]) * (*shape)[0] * body_out[1] * body_out[2]
                : double(body_out[0]) * (*shape)[0];
        m.forward += proj;
        m.input_grad += proj;
      }
      out = body_out;
    } else if (s.kind == "global_avg_pool") {
      out = {(*shape)[0]};
    } else if (s.kind == "flatten") {
      out = {NumElements(*shape)};
    }
    if (*first_input_grad < 0 && m.forward > 0) {
      *first_input_grad = m.input_grad;
    }
    total->forward += m.forward;
    total->input_grad += m.input_grad;
    *shape = out;
  }
  return true;
}

// FLOPs per sample (2 per multiply-accumulate) of training and inference;
// 0 when unknown. Training = forward + weight gradients (as many MACs as
// forward, counting an LSTM's recurrent product there) + input gradients
// except the first layer's.
void FlopsPerSample(const Workload& w, double* train, double* infer) {
  *train = *infer = 0;
  if (w.is_gan) {
    Shape g_shape = w.gan.generator.input_shape,
          d_shape = w.gan.discriminator.input_shape;
    Macs g, d;
    double g_first = -1, d_first = -1;
    if (!CountMacs(w.gan.generator.layers, &g_shape, &g, &g_first) ||
        !CountMacs(w.gan.discriminator.layers, &d_shape, &d, &d_first)) {
      return;
    }
    // D step: G forward, D forward + weight gradients on a real and a fake
    // batch. G step: G forward, D forward, D weight and input gradients
    // (the weight gradients are computed and discarded), G weight and input
    // gradients except its first layer's input gradient.
    const double d_step = g.forward + 2 * (d.forward + d.forward);
    const double g_step = g.forward + d.forward + d.forward + d.input_grad +
                          g.forward + g.input_grad - g_first;
    *train = 2 * (w.gan.d_steps * d_step + g_step);
    *infer = 2 * g.forward;
    return;
  }
  Shape shape = w.model.input_shape;
  Macs m;
  double first = -1;
  if (!CountMacs(w.model.layers, &shape, &m, &first)) return;
  // LSTM: the recurrent dE/dh product is part of its weight-gradient work.
  double recurrent = 0;
  for (const LayerSpec& s : w.model.layers) {
    if (s.kind == "lstm") {
      recurrent += double(w.model.input_shape[0]) * s.units * 4 * s.units;
    }
  }
  *train = 2 * (m.forward + m.forward + m.input_grad - first + recurrent);
  *infer = 2 * m.forward;
}

using bench::Summarise;
using bench::Summary;

struct Result {
  Summary train;      // Samples/s per epoch.
  Summary train_cpu;  // Samples per CPU-second per epoch.
  Summary infer;      // Samples/s per pass over the test set.
  int64_t train_samples = 0, infer_samples = 0;
  double allocations_per_step = 0;
  double final_loss = 0;
};

absl::StatusOr<TrainTest> LoadData(DataKind kind) {
  const std::string dir = DefaultDatasetsDir();
  switch (kind) {
    case DataKind::kMnistFlat:
      return LoadMnist(dir);
    case DataKind::kMnistRows:
      return LoadMnistRows(dir);
    case DataKind::kFashionImages: {
      NNLAB_ASSIGN_OR_RETURN(TrainTest sets, LoadFashionMnist(dir));
      NNLAB_RETURN_IF_ERROR(sets.train->Reshape({1, 28, 28}));
      NNLAB_RETURN_IF_ERROR(sets.test->Reshape({1, 28, 28}));
      return sets;
    }
  }
  return absl::InternalError("unknown data kind");
}

// Inference: eval-mode forward passes over the test set (first 2,000
// samples) in batches of the workload's size. The batches are converted to
// floats before timing, as PyTorch's are, and as an Infer request brings
// them.
Summary MeasureInference(const std::function<void(const Tensor&)>& forward,
                         const Dataset& test, int64_t batch, int passes,
                         int64_t* samples) {
  Rng unused;
  BatchIterator it(&test, batch, /*shuffle=*/false, &unused);
  std::vector<Tensor> xs;
  Tensor x, y;
  it.StartEpoch();
  *samples = 0;
  while (it.Next(&x, &y)) {
    *samples += x.dim(0);
    xs.push_back(x.Clone());
  }
  std::vector<double> rates;
  for (int pass = -1; pass < passes; ++pass) {  // Pass -1 warms up.
    const Clock::time_point start = Clock::now();
    for (const Tensor& b : xs) forward(b);
    const double s = Seconds(start, Clock::now());
    if (pass >= 0) rates.push_back(*samples / s);
  }
  return Summarise(rates);
}

// Steps between per-layer statistics in classifier training (0: none).
int64_t g_stats_every = 0;

absl::StatusOr<Result> RunClassifier(const Workload& w, int epochs) {
  NNLAB_ASSIGN_OR_RETURN(TrainTest data, LoadData(w.data));
  if (w.train_limit > 0 && w.train_limit < data.train->size()) {
    data.train = data.train->Slice(0, w.train_limit);
  }
  if (data.test->size() > 2000) data.test = data.test->Slice(0, 2000);
  NNLAB_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::Build(w.model));
  TrainOptions options = w.train;
  options.epochs = epochs + 1;  // One warm-up epoch.
  options.stats_every = g_stats_every;
  NNLAB_ASSIGN_OR_RETURN(std::unique_ptr<Trainer> trainer,
                         Trainer::Create(model.get(), options));
  const int64_t per_epoch =
      (data.train->size() + options.batch_size - 1) / options.batch_size;
  std::vector<Clock::time_point> marks;
  std::vector<double> cpu_marks;
  std::vector<int64_t> allocation_marks;
  marks.reserve(epochs + 1);
  cpu_marks.reserve(epochs + 1);
  allocation_marks.reserve(epochs + 1);
  double last_loss = 0;
  Trainer::Callbacks callbacks;
  callbacks.on_step = [&](const StepStats& s) {
    last_loss = s.loss;
    if (s.step % per_epoch == 0) {
      allocation_marks.push_back(AllocationCount());
      marks.push_back(Clock::now());
      cpu_marks.push_back(CpuSeconds());
    }
    return absl::OkStatus();
  };
  NNLAB_RETURN_IF_ERROR(trainer->Run(*data.train, nullptr, callbacks));
  Result r;
  std::vector<double> rates, cpu_rates;
  for (size_t i = 1; i < marks.size(); ++i) {
    rates.push_back(data.train->size() / Seconds(marks[i - 1], marks[i]));
    cpu_rates.push_back(data.train->size() / (cpu_marks[i] - cpu_marks[i - 1]));
  }
  r.train = Summarise(rates);
  r.train_cpu = Summarise(cpu_rates);
  r.train_samples = data.train->size();
  r.final_loss = last_loss;
  if (allocation_marks.size() >= 2) {
    r.allocations_per_step =
        double(allocation_marks.back() - allocation_marks.front()) /
        (double(per_epoch) * (allocation_marks.size() - 1));
  }
  r.infer = MeasureInference(
      [&](const Tensor& x) { model->Forward(x, Mode::kEval); }, *data.test,
      options.batch_size, std::max(3, epochs), &r.infer_samples);
  return r;
}

absl::StatusOr<Result> RunGan(const Workload& w, int epochs) {
  NNLAB_ASSIGN_OR_RETURN(TrainTest data, LoadData(DataKind::kMnistFlat));
  NNLAB_ASSIGN_OR_RETURN(std::unique_ptr<GanTrainer> gan,
                         GanTrainer::Create(w.gan));
  DatasetSampler real(data.train.get());
  // An epoch: as many generator steps as batches in the 8,000 images.
  const int64_t b = w.gan.batch_size;
  const int64_t per_epoch = (data.train->size() + b - 1) / b;
  Result r;
  std::vector<double> rates, cpu_rates;
  GanStepStats stats;
  int64_t allocations_start = 0;
  for (int e = -1; e < epochs; ++e) {
    if (e == 0) allocations_start = AllocationCount();
    const Clock::time_point start = Clock::now();
    const double cpu_start = CpuSeconds();
    for (int64_t i = 0; i < per_epoch; ++i) {
      NNLAB_RETURN_IF_ERROR(gan->Step(real, &stats));
    }
    const double s = Seconds(start, Clock::now());
    if (e >= 0) {
      rates.push_back(per_epoch * b / s);
      cpu_rates.push_back(per_epoch * b / (CpuSeconds() - cpu_start));
    }
  }
  r.allocations_per_step = double(AllocationCount() - allocations_start) /
                           (double(per_epoch) * epochs);
  r.train = Summarise(rates);
  r.train_cpu = Summarise(cpu_rates);
  r.train_samples = per_epoch * b;
  r.final_loss = stats.g_loss;
  Tensor samples;
  r.infer = MeasureInference(
      [&](const Tensor& x) { gan->Generate(x.dim(0), &samples); }, *data.test,
      b, std::max(3, epochs), &r.infer_samples);
  return r;
}

double PeakRssMb() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // Linux reports KiB.
}

std::string Json(const Summary& s) {
  return absl::StrCat("{\"median\": ", s.median, ", \"min\": ", s.min,
                      ", \"max\": ", s.max, "}");
}

std::string Row(const std::vector<std::string>& cells) {
  return absl::StrCat("| ", absl::StrJoin(cells, " | "), " |");
}

std::string Fixed(double v, int digits = 0) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

constexpr const char* kHeader =
    "| workload | threads | train samples/s (median) | train min-max | train "
    "GFLOP/s | infer samples/s (median) | infer GFLOP/s | peak RSS MB | "
    "allocs/step |\n|---|---|---|---|---|---|---|---|---|";

// Runs one workload at one thread count in this process and prints one
// line (JSON or a table row).
int RunOne(const Workload& w, int threads, int epochs, bool json) {
  SetBlasThreads(threads);
  double train_flops, infer_flops;
  FlopsPerSample(w, &train_flops, &infer_flops);
  absl::StatusOr<Result> r =
      w.is_gan ? RunGan(w, epochs) : RunClassifier(w, epochs);
  if (!r.ok()) {
    const std::string reason(r.status().ToString());
    if (json) {
      std::string escaped;
      for (char c : reason) {
        if (c == '"' || c == '\\') escaped += '\\';
        escaped += c == '\n' ? ' ' : c;
      }
      std::printf(
          "{\"tool\": \"nnlab\", \"workload\": \"%s\", \"threads\": %d, "
          "\"skipped\": \"%s\"}\n",
          w.name.c_str(), threads, escaped.c_str());
    } else {
      std::printf("| %s | %d | skipped: %s |\n", w.name.c_str(), threads,
                  reason.c_str());
    }
    return 0;
  }
  const double rss = PeakRssMb();
  const double train_gflops = train_flops * r->train.median * 1e-9;
  const double infer_gflops = infer_flops * r->infer.median * 1e-9;
  if (json) {
    std::printf(
        "{\"tool\": \"nnlab\", \"workload\": \"%s\", \"threads\": %d, "
        "\"batch\": %lld, \"epochs\": %d, \"train_samples_per_epoch\": %lld, "
        "\"train_samples_per_s\": %s, \"train_samples_per_cpu_s\": %s, "
        "\"infer_samples_per_s\": %s, "
        "\"infer_samples\": %lld, \"train_flops_per_sample\": %.0f, "
        "\"infer_flops_per_sample\": %.0f, \"train_gflops\": %.2f, "
        "\"infer_gflops\": %.2f, \"peak_rss_mb\": %.1f, "
        "\"allocations_per_step\": %.3f, \"final_loss\": %.4f}\n",
        w.name.c_str(), threads, static_cast<long long>(w.train.batch_size),
        epochs, static_cast<long long>(r->train_samples),
        Json(r->train).c_str(), Json(r->train_cpu).c_str(),
        Json(r->infer).c_str(), static_cast<long long>(r->infer_samples),
        train_flops, infer_flops, train_gflops, infer_gflops, rss,
        r->allocations_per_step, r->final_loss);
  } else {
    std::printf(
        "%s\n",
        Row({w.name, std::to_string(threads), Fixed(r->train.median),
             absl::StrCat(Fixed(r->train.min), "-", Fixed(r->train.max)),
             train_flops > 0 ? Fixed(train_gflops, 1) : "-",
             Fixed(r->infer.median),
             infer_flops > 0 ? Fixed(infer_gflops, 1) : "-", Fixed(rss, 1),
             Fixed(r->allocations_per_step, 2)})
            .c_str());
  }
  std::fflush(stdout);
  return 0;
}

// Re-executes this binary for one (workload, threads) pair.
int RunChild(const char* self, const std::string& workload, int threads,
             int epochs, bool json) {
  std::vector<std::string> args = {self, "--workload=" + workload,
                                   absl::StrCat("--threads=", threads),
                                   "--child"};
  if (epochs > 0) args.push_back(absl::StrCat("--epochs=", epochs));
  args.push_back(absl::StrCat("--stats_every=", g_stats_every));
  if (json) args.push_back("--json");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  pid_t pid;
  if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(),
                  environ) != 0) {
    std::fprintf(stderr, "cannot start %s: %s\n", self, std::strerror(errno));
    return 1;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "%s (%d threads) failed (status %d)\n",
                 workload.c_str(), threads, status);
    return 1;
  }
  return 0;
}

int Main(int argc, char** argv) {
  std::vector<std::string> names;
  std::vector<int> threads = {1, 2};
  int epochs = 0;  // 0: the workload's default.
  bool json = false, child = false;
  const std::vector<Workload> all = Workloads();
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (absl::ConsumePrefix(&arg, "--workload=")) {
      names = absl::StrSplit(arg, ',', absl::SkipEmpty());
    } else if (absl::ConsumePrefix(&arg, "--threads=")) {
      threads.clear();
      for (absl::string_view t : absl::StrSplit(arg, ',', absl::SkipEmpty())) {
        int n;
        if (!absl::SimpleAtoi(t, &n) || n < 1 || n > 64) {
          std::fprintf(stderr, "--threads: bad value \"%s\"\n",
                       std::string(t).c_str());
          return 2;
        }
        threads.push_back(n);
      }
    } else if (absl::ConsumePrefix(&arg, "--epochs=")) {
      if (!absl::SimpleAtoi(arg, &epochs) || epochs < 1) {
        std::fprintf(stderr, "--epochs: must be a positive integer\n");
        return 2;
      }
    } else if (absl::ConsumePrefix(&arg, "--stats_every=")) {
      if (!absl::SimpleAtoi(arg, &g_stats_every) || g_stats_every < 0) {
        std::fprintf(stderr, "--stats_every: must be an integer >= 0\n");
        return 2;
      }
    } else if (arg == "--json") {
      json = true;
    } else if (arg == "--child") {
      child = true;
    } else if (arg == "--list") {
      for (const Workload& w : all) {
        std::printf("%-20s %s\n", w.name.c_str(), w.description.c_str());
      }
      return 0;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--workload=NAME[,NAME...]] [--threads=N[,N...]] "
                   "[--epochs=N] [--stats_every=N] [--json] [--list]\n",
                   argv[0]);
      return 2;
    }
  }
  std::vector<const Workload*> selected;
  if (names.empty()) {
    for (const Workload& w : all) selected.push_back(&w);
  } else {
    for (const std::string& name : names) {
      auto it = std::find_if(all.begin(), all.end(),
                             [&](const Workload& w) { return w.name == name; });
      if (it == all.end()) {
        std::fprintf(stderr, "unknown workload \"%s\" (see --list)\n",
                     name.c_str());
        return 2;
      }
      selected.push_back(&*it);
    }
  }
  if (child) {
    const Workload& w = *selected.front();
    return RunOne(w, threads.front(), epochs > 0 ? epochs : w.epochs, json);
  }
  if (!json) std::printf("%s\n", kHeader);
  int failures = 0;
  for (const Workload* w : selected) {
    for (int t : threads)
      failures += RunChild(argv[0], w->name, t, epochs, json);
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace nnlab

int main(int argc, char** argv) { return nnlab::Main(argc, argv); }
