// nnlab: the command-line client of an nnlabd server.
//
//   nnlab [--server HOST:PORT] [--token T] [--json] COMMAND ...
//
// Exit codes: 0 success; 1 the job failed or was cancelled (or another
// server-side failure); 2 usage error (bad flags, unreadable or malformed
// file, an argument the server rejects or an unknown id); 3 the server is
// unreachable, not answering in time, or refuses the credentials.
#include <grpc/support/log.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/cli_data.h"
#include "client/cli_format.h"
#include "client/cli_live.h"
#include "client/cli_plot.h"
#include "client/cli_spec.h"
#include "client/client.h"
#include "google/protobuf/text_format.h"

namespace nnlab::cli {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitJobFailed = 1;
constexpr int kExitUsage = 2;

struct Globals {
  std::string server = "127.0.0.1:50051";
  std::string token;
  std::string token_file;
  bool tls = false;
  std::string tls_ca, tls_cert, tls_key, tls_server_name;
  bool json = false;
  double timeout_seconds = 30;
};

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "nnlab: %s\n", OneLineError(s).c_str());
  return ExitCodeFor(s);
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "nnlab: %s\n", message.c_str());
  return kExitUsage;
}

void PrintJson(const google::protobuf::Message& m) {
  std::printf("%s\n", ToJsonLine(m).c_str());
}

absl::StatusOr<std::unique_ptr<Client>> Connect(const Globals& g) {
  ClientOptions o;
  o.server = g.server;
  o.token = g.token;
  if (!g.token_file.empty()) {
    auto t = ReadFileToString(g.token_file);
    if (!t.ok()) return absl::InvalidArgumentError(t.status().message());
    o.token = std::string(absl::StripAsciiWhitespace(*t));
  }
  o.tls = g.tls;
  o.tls_ca_file = g.tls_ca;
  o.tls_cert_file = g.tls_cert;
  o.tls_key_file = g.tls_key;
  o.tls_server_name = g.tls_server_name;
  o.deadline = absl::Seconds(g.timeout_seconds);
  return Client::Create(std::move(o));
}

// --- Watching a job -------------------------------------------------------

bool StdoutIsTerminal() {
  const char* term = std::getenv("TERM");
  return isatty(STDOUT_FILENO) &&
         !(term != nullptr && std::string(term) == "dumb");
}

LiveViewOptions TerminalOptions() {
  LiveViewOptions o;
  winsize ws{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
    o.columns = ws.ws_col;
  } else if (const char* c = std::getenv("COLUMNS")) {
    o.columns = std::max(40, std::atoi(c));
  }
  std::string locale;
  for (const char* v : {"LC_ALL", "LC_CTYPE", "LANG"}) {
    const char* s = std::getenv(v);
    if (s != nullptr && *s != '\0') {
      locale = s;
      break;
    }
  }
  locale = absl::AsciiStrToLower(locale);
  o.unicode =
      absl::StrContains(locale, "utf-8") || absl::StrContains(locale, "utf8");
  return o;
}

// Ctrl-C during the live view: give the cursor back before leaving.
void RestoreCursorAndExit(int) {
  static const char kShow[] = "\x1b[?25h\n";
  ssize_t ignored = write(STDOUT_FILENO, kShow, sizeof(kShow) - 1);
  (void)ignored;
  _exit(130);
}

struct WatchFlags {
  int64_t from_step = 0;
  int64_t every = 0;
  bool no_layers = false;
};

// Prints the job's events until it ends, then its final state; exit code 0
// only when it completed.
int WatchJob(Client& client, const Globals& g, const v1::Job& job,
             const WatchFlags& f) {
  std::unique_ptr<EventPrinter> printer;
  const bool live = !g.json && StdoutIsTerminal();
  if (g.json) {
    printer = MakeJsonPrinter(stdout);
  } else if (live) {
    LiveViewOptions o = TerminalOptions();
    // Best effort: without the model the view says "sat/dead".
    auto model = client.GetModel(job.spec().model_id());
    if (model.ok()) o.activation_after = ActivationsAfter(*model);
    printer = MakeLiveView(stdout, o);
    signal(SIGINT, RestoreCursorAndExit);
    signal(SIGTERM, RestoreCursorAndExit);
  } else {
    printer = MakePlainPrinter(stdout);
  }
  printer->Begin(job);
  v1::StreamMetricsRequest req;
  req.set_job_id(job.job_id());
  req.set_from_step(f.from_step);
  req.set_every_n(f.every);
  req.set_omit_layer_stats(f.no_layers);
  absl::Status s = client.WatchMetrics(
      req,
      [&](const v1::MetricEvent& e) {
        printer->OnEvent(e);
        return true;
      },
      [&](const absl::Status& why, int64_t from) {
        if (!live) {
          std::fprintf(stderr,
                       "nnlab: stream broke (%s); resuming from step %lld\n",
                       OneLineError(why).c_str(), static_cast<long long>(from));
        }
      });
  absl::StatusOr<v1::Job> final_job =
      s.ok() ? client.GetJob(job.job_id()) : absl::StatusOr<v1::Job>(s);
  if (!final_job.ok()) {
    v1::Job last = job;
    printer->End(last);
    return Fail(final_job.status());
  }
  printer->End(*final_job);
  if (final_job->state() == v1::JOB_STATE_COMPLETED) return kExitOk;
  if (!g.json && !live && final_job->state() != v1::JOB_STATE_FAILED &&
      final_job->state() != v1::JOB_STATE_CANCELLED) {
    std::fprintf(stderr, "nnlab: the stream ended with the job %s\n",
                 JobStateName(final_job->state()).c_str());
  }
  return kExitJobFailed;
}

// --- Commands -------------------------------------------------------------

template <typename T>
int PrintOr(const absl::StatusOr<T>& r, const Globals& g,
            const std::function<std::string(const T&)>& human) {
  if (!r.ok()) return Fail(r.status());
  if (g.json) {
    PrintJson(*r);
  } else {
    std::printf("%s", human(*r).c_str());
  }
  return kExitOk;
}

v1::OptimizerKind ParseOptimizer(const std::string& name) {
  static const std::map<std::string, v1::OptimizerKind> kinds = {
      {"sgd", v1::OPTIMIZER_SGD},
      {"momentum", v1::OPTIMIZER_MOMENTUM},
      {"nesterov", v1::OPTIMIZER_NESTEROV},
      {"adagrad", v1::OPTIMIZER_ADAGRAD},
      {"rmsprop", v1::OPTIMIZER_RMSPROP},
      {"adadelta", v1::OPTIMIZER_ADADELTA},
      {"adam", v1::OPTIMIZER_ADAM}};
  return kinds.at(name);
}

// Reads a ModelFile: binary (default), or text format / JSON by extension.
absl::Status ReadModelFile(const std::string& path, v1::ModelFile* file) {
  auto data = ReadFileToString(path);
  if (!data.ok()) return data.status();
  if (absl::EndsWith(path, ".json")) return ParseJson(*data, path, file);
  if (absl::EndsWith(path, ".textproto") || absl::EndsWith(path, ".txtpb")) {
    return ParseTextProto(*data, path, file);
  }
  if (!file->ParseFromString(*data)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": not a model file written by `nnlab models export`"));
  }
  return absl::OkStatus();
}

absl::Status WriteModelFile(const std::string& path,
                            const v1::ModelFile& file) {
  std::string data;
  if (absl::EndsWith(path, ".json")) {
    data = ToJsonLine(file) + "\n";
  } else if (absl::EndsWith(path, ".textproto") ||
             absl::EndsWith(path, ".txtpb")) {
    google::protobuf::TextFormat::PrintToString(file, &data);
  } else {
    file.SerializeToString(&data);
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// "mnist", "mnist:test", "mnist:train".
absl::StatusOr<LabeledImages> LoadDatasetArg(const std::string& arg) {
  std::vector<std::string> parts = absl::StrSplit(arg, ':');
  bool test = false;
  if (parts.size() == 2 && (parts[1] == "test" || parts[1] == "train")) {
    test = parts[1] == "test";
  } else if (parts.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--dataset ", arg, ": expected NAME, NAME:train or NAME:test"));
  }
  return LoadBuiltin(DatasetsDir(), parts[0], test);
}

struct InferFlags {
  std::string model, dataset, images, labels;
  int64_t limit = 0, offset = 0, batch = 256;
  int top_k = 0;
};

int RunInfer(const Globals& g, const InferFlags& f) {
  absl::StatusOr<LabeledImages> data = !f.dataset.empty()
                                           ? LoadDatasetArg(f.dataset)
                                           : LoadIdx(f.images, f.labels);
  if (!data.ok()) return Fail(data.status());
  const bool have_labels = !f.dataset.empty() || !f.labels.empty();
  int64_t end = data->count;
  if (f.limit > 0) end = std::min(end, f.offset + f.limit);
  if (f.offset >= end) return Usage("no samples selected (--offset/--limit)");

  auto client = Connect(g);
  if (!client.ok()) return Fail(client.status());
  auto model = (*client)->GetModel(f.model);
  if (!model.ok()) return Fail(model.status());
  std::vector<int64_t> shape(model->input_shape().begin(),
                             model->input_shape().end());
  int64_t size = 1;
  for (int64_t d : shape) size *= d;
  if (size != data->sample_size()) {
    return Usage(absl::StrCat(
        "model ", f.model, " takes inputs ", ShapeString(model->input_shape()),
        ", the data has ", data->sample_size(), " values per sample"));
  }

  int64_t correct = 0, counted = 0;
  double loss_sum = 0;
  int64_t weights_step = 0;
  for (int64_t b = f.offset; b < end; b += f.batch) {
    const int64_t e = std::min(end, b + f.batch);
    v1::InferRequest req;
    req.set_model_id(f.model);
    *req.mutable_inputs() = data->Inputs(b, e, shape);
    req.set_top_k(f.top_k);
    auto resp = (*client)->Infer(req);
    if (!resp.ok()) return Fail(resp.status());
    weights_step = resp->weights_step();
    if (g.json) {
      PrintJson(*resp);
    }
    if (resp->predictions_size() != e - b) {
      if (!g.json) {
        std::printf("outputs %s (not a classifier: no predictions)\n",
                    ShapeString(resp->outputs().shape()).c_str());
      }
      continue;
    }
    // Softmax cross-entropy from the logits, for the loss over the samples.
    const v1::Tensor& out = resp->outputs();
    const int64_t classes = out.shape_size() == 2 ? out.shape(1) : 0;
    const bool logits = classes > 0 && out.data_size() == (e - b) * classes;
    for (int64_t i = b; i < e; ++i) {
      const int64_t pred = resp->predictions(static_cast<int>(i - b));
      const int label = data->labels[i];
      if (have_labels) {
        correct += pred == label;
        ++counted;
        if (logits && label < classes) {
          const float* row = out.data().data() + (i - b) * classes;
          double mx = row[0];
          for (int64_t c = 1; c < classes; ++c)
            mx = std::max<double>(mx, row[c]);
          double z = 0;
          for (int64_t c = 0; c < classes; ++c) z += std::exp(row[c] - mx);
          loss_sum += std::log(z) + mx - row[label];
        }
      }
      if (!g.json) {
        std::string line = absl::StrFormat("sample %d  predicted %d", i, pred);
        if (have_labels) {
          absl::StrAppendFormat(&line, "  label %d%s", label,
                                pred == label ? "" : "  (wrong)");
        }
        if (f.top_k > 0 && i - b < resp->top_k_size()) {
          const v1::TopK& t = resp->top_k(static_cast<int>(i - b));
          std::vector<std::string> parts;
          for (int k = 0; k < t.classes_size(); ++k) {
            parts.push_back(absl::StrFormat(
                "%d:%.3f", t.classes(k),
                k < t.probabilities_size() ? t.probabilities(k) : 0.f));
          }
          absl::StrAppend(&line, "  top ", absl::StrJoin(parts, " "));
        }
        std::printf("%s\n", line.c_str());
      }
    }
  }
  if (have_labels && counted > 0) {
    v1::EvalResult r;
    r.set_accuracy(static_cast<double>(correct) / static_cast<double>(counted));
    r.set_loss(loss_sum / static_cast<double>(counted));
    r.set_step(weights_step);
    if (g.json) {
      PrintJson(r);
    } else {
      std::printf(
          "accuracy %.4f (%lld/%lld), loss %.4f, weights at step %lld\n",
          r.accuracy(), static_cast<long long>(correct),
          static_cast<long long>(counted), r.loss(),
          static_cast<long long>(weights_step));
    }
  }
  return kExitOk;
}

struct SampleFlags {
  std::string model, noise, out;
  int count = 16;
  uint64_t seed = 1;
  int steps = 0;
  float temperature = 0;
};

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

// Events of a job's history, read up to the step it had reached when the
// plot was asked for (a running job keeps streaming; the plot stops there).
int RunPlot(const Globals& g, const std::string& job_id,
            const std::string& out) {
  if (!absl::EndsWithIgnoreCase(out, ".svg") &&
      !absl::EndsWithIgnoreCase(out, ".png")) {
    return Usage(absl::StrCat("--out ", out,
                              ": the file name must end in .svg or .png"));
  }
  auto client = Connect(g);
  if (!client.ok()) return Fail(client.status());
  auto job = (*client)->GetJob(job_id);
  if (!job.ok()) return Fail(job.status());
  const bool ended = job->state() == v1::JOB_STATE_COMPLETED ||
                     job->state() == v1::JOB_STATE_CANCELLED ||
                     job->state() == v1::JOB_STATE_FAILED;
  const int64_t until = job->step();
  TrainingHistory history;
  history.title = absl::StrCat("job ", job_id, ": ", job->spec().model_id(),
                               " on ", job->spec().dataset());
  v1::StreamMetricsRequest req;
  req.set_job_id(job_id);
  absl::Status s = (*client)->WatchMetrics(req, [&](const v1::MetricEvent& e) {
    history.Add(e);
    return ended || e.step() < until || e.phase() != v1::PHASE_TRAIN;
  });
  if (!s.ok()) return Fail(s);
  s = WritePlot(history, out);
  if (!s.ok()) return Fail(s);
  if (!g.json) {
    std::printf("wrote %s (%zu steps, %zu layers)\n", out.c_str(),
                history.train_loss.size() + history.d_loss.size(),
                history.learning_speed.size());
  }
  return kExitOk;
}

struct UploadFlags {
  std::string images, labels, name;
  int64_t test = 0;
};

int RunUpload(const Globals& g, const UploadFlags& f) {
  auto data = LoadIdx(f.images, f.labels);
  if (!data.ok()) return Fail(data.status());
  if (f.test < 0 || f.test >= data->count) {
    return Usage(
        absl::StrCat("--test ", f.test, ": must be in [0, ", data->count, ")"));
  }
  v1::DatasetHeader h;
  h.set_name(f.name.empty() ? f.images : f.name);
  h.add_sample_shape(data->sample_size());
  h.set_num_classes(data->num_classes);
  h.set_num_samples(data->count);
  h.set_test_samples(f.test);
  // Little-endian float32: every input (x / 255), then every label.
  std::string payload;
  payload.reserve(
      static_cast<size_t>(data->count * (data->sample_size() + 1) * 4));
  auto put = [&](float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    char b[4] = {static_cast<char>(bits), static_cast<char>(bits >> 8),
                 static_cast<char>(bits >> 16), static_cast<char>(bits >> 24)};
    payload.append(b, 4);
  };
  for (uint8_t p : data->pixels) put(static_cast<float>(p) / 255.0f);
  for (uint8_t l : data->labels) put(static_cast<float>(l));
  auto client = Connect(g);
  if (!client.ok()) return Fail(client.status());
  return PrintOr<v1::DatasetInfo>(
      (*client)->UploadDataset(h, payload), g,
      [](const v1::DatasetInfo& d) { return DatasetsTable({d}); });
}

struct TrainFlags {
  std::string model, dataset, optimizer = "sgd", schedule = "constant", label;
  float lr = 0, momentum = 0, rho = 0, beta1 = 0, beta2 = 0, epsilon = 0;
  float weight_decay = 0, clip_norm = 0, decay_rate = 0;
  int64_t decay_steps = 0;
  int epochs = 1;
  int64_t batch = 32, eval_every = 0, checkpoint_every = 0, stats_every = 0;
  int64_t max_train_samples = 0, max_steps = 0;
  uint64_t seed = 0;
  bool no_shuffle = false, watch = false, quiet = false;
  std::vector<int64_t> sample_shape;
  WatchFlags watch_flags;
};

int RunTrain(const Globals& g, const TrainFlags& f) {
  v1::JobSpec spec;
  spec.set_model_id(f.model);
  spec.set_dataset(f.dataset);
  for (int64_t d : f.sample_shape) spec.add_sample_shape(d);
  v1::OptimizerConfig* o = spec.mutable_optimizer();
  o->set_kind(ParseOptimizer(f.optimizer));
  o->set_learning_rate(f.lr);
  o->set_momentum(f.momentum);
  o->set_rho(f.rho);
  o->set_beta1(f.beta1);
  o->set_beta2(f.beta2);
  o->set_epsilon(f.epsilon);
  o->set_weight_decay(f.weight_decay);
  o->set_clip_norm(f.clip_norm);
  o->set_schedule(f.schedule == "step"          ? v1::SCHEDULE_STEP
                  : f.schedule == "exponential" ? v1::SCHEDULE_EXPONENTIAL
                                                : v1::SCHEDULE_CONSTANT);
  o->set_decay_steps(f.decay_steps);
  o->set_decay_rate(f.decay_rate);
  spec.set_epochs(f.epochs);
  spec.set_batch_size(f.batch);
  spec.set_eval_every_steps(f.eval_every);
  spec.set_checkpoint_every_steps(f.checkpoint_every);
  spec.set_stats_every(f.stats_every);
  spec.set_shuffle_seed(f.seed);
  spec.set_no_shuffle(f.no_shuffle);
  spec.set_max_train_samples(f.max_train_samples);
  spec.set_max_steps(f.max_steps);
  spec.set_label(f.label);

  auto client = Connect(g);
  if (!client.ok()) return Fail(client.status());
  auto job = (*client)->StartJob(spec);
  if (!job.ok()) return Fail(job.status());
  if (g.json) {
    PrintJson(*job);
  } else if (f.quiet) {
    std::printf("%s\n", job->job_id().c_str());
  } else if (!f.watch) {
    std::printf("%s\n", FormatJob(*job).c_str());
  }
  if (!f.watch) return kExitOk;
  return WatchJob(**client, g, *job, f.watch_flags);
}

void AddWatchFlags(CLI::App* cmd, WatchFlags* f) {
  cmd->add_option("--from_step", f->from_step,
                  "Replay the history from this step (0: from the start)");
  cmd->add_option("--every", f->every,
                  "Show only every N-th training step (evaluations and state "
                  "changes always)");
  cmd->add_flag("--no_layers", f->no_layers, "Leave out per-layer statistics");
}

// The job command pattern: a positional JOB and one call.
CLI::App* JobCommand(CLI::App* parent, const std::string& name,
                     const std::string& help, std::string* job_id) {
  CLI::App* cmd = parent->add_subcommand(name, help);
  cmd->add_option("JOB", *job_id, "Job id")->required();
  return cmd;
}

// gRPC logs transport errors (failed TLS handshakes, refused connections)
// to stderr; the CLI reports the call's status in one line instead.
// GRPC_VERBOSITY set in the environment restores gRPC's own logging.
void QuietGrpcLogs(gpr_log_func_args*) {}

int Main(int argc, char** argv) {
  if (std::getenv("GRPC_VERBOSITY") == nullptr)
    gpr_set_log_function(QuietGrpcLogs);
  CLI::App app{
      "nnlab: define, train, watch and query neural networks on an nnlabd "
      "server."};
  app.name("nnlab");
  app.fallthrough();  // global flags may follow the subcommand
  app.require_subcommand(1);
  app.footer(
      "Exit codes: 0 success; 1 the job failed or was cancelled (or another "
      "server-side failure); 2 usage error (bad flags or files, an argument "
      "the server rejects, an unknown id); 3 server unreachable, not "
      "answering in time, or unauthenticated.");

  Globals g;
  std::function<int()> run;

  app.add_option("--server", g.server, "Server address HOST:PORT")
      ->envname("NNLAB_SERVER")
      ->capture_default_str();
  CLI::Option* token =
      app.add_option("--token", g.token, "Bearer token sent with every call")
          ->envname("NNLAB_TOKEN");
  app.add_option("--token_file", g.token_file,
                 "Read the bearer token from a file")
      ->excludes(token);
  app.add_flag("--tls", g.tls,
               "Connect with TLS (system roots unless --tls_ca)");
  app.add_option("--tls_ca", g.tls_ca,
                 "PEM file of root certificates for the server");
  app.add_option("--tls_cert", g.tls_cert,
                 "PEM client certificate (mutual TLS)");
  app.add_option("--tls_key", g.tls_key, "PEM client private key (mutual TLS)");
  app.add_option("--tls_server_name", g.tls_server_name,
                 "Name to verify the server certificate against");
  app.add_flag("--json", g.json,
               "Print results as protobuf JSON, one object per line");
  app.add_option("--timeout", g.timeout_seconds,
                 "Deadline of each call in seconds")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);

  // health
  std::string health_service;
  CLI::App* health =
      app.add_subcommand("health", "Ask whether the server is serving");
  health->add_option("--service", health_service,
                     "Service name (default: the server)");
  health->callback([&] {
    run = [&] {
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      auto s = (*client)->Health(health_service);
      if (!s.ok()) return Fail(s.status());
      if (g.json) {
        std::printf("{\"status\":\"%s\"}\n", HealthStatusName(*s));
      } else {
        std::printf("%s\n", HealthStatusName(*s));
      }
      return *s == HealthStatus::kServing ? kExitOk : kExitJobFailed;
    };
  });

  // models
  CLI::App* models = app.add_subcommand(
      "models", "Create, list, inspect, delete, export and import models");
  models->require_subcommand(1);
  std::string spec_path, model_id, file_path;
  bool quiet = false;
  CLI::App* create = models->add_subcommand(
      "create", "Create a model from a spec file (.textproto or .json)");
  create->add_option("--spec", spec_path, "ModelSpec or GanSpec file")
      ->required();
  create->add_option("--id", model_id,
                     "Model id (default: chosen by the server)");
  create->add_flag("-q,--quiet", quiet, "Print only the model id");
  create->callback([&] {
    run = [&] {
      v1::CreateModelRequest req;
      absl::Status s = LoadModelDefinition(spec_path, &req);
      if (!s.ok()) return Fail(s);
      req.set_model_id(model_id);
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      auto m = (*client)->CreateModel(req);
      if (m.ok() && quiet && !g.json) {
        std::printf("%s\n", m->model_id().c_str());
        return kExitOk;
      }
      return PrintOr<v1::Model>(m, g, FormatModel);
    };
  });
  CLI::App* mlist = models->add_subcommand("list", "List models");
  mlist->callback([&] {
    run = [&] {
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      auto list = (*client)->ListModels();
      if (!list.ok()) return Fail(list.status());
      if (g.json) {
        for (const auto& m : *list) PrintJson(m);
      } else {
        std::printf("%s", ModelsTable(*list).c_str());
      }
      return kExitOk;
    };
  });
  CLI::App* mget = models->add_subcommand("get", "Describe a model");
  mget->add_option("MODEL", model_id, "Model id")->required();
  mget->callback([&] {
    run = [&] {
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      return PrintOr<v1::Model>((*client)->GetModel(model_id), g, FormatModel);
    };
  });
  CLI::App* mdel = models->add_subcommand(
      "delete", "Delete a model, its weights and checkpoints");
  mdel->add_option("MODEL", model_id, "Model id")->required();
  mdel->callback([&] {
    run = [&] {
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      absl::Status s = (*client)->DeleteModel(model_id);
      if (!s.ok()) return Fail(s);
      if (g.json) {
        std::printf("{}\n");
      } else {
        std::printf("deleted model %s\n", model_id.c_str());
      }
      return kExitOk;
    };
  });
  CLI::App* mexport =
      models->add_subcommand("export",
                             "Write a model (definition + weights) to a file: "
                             "binary, or .json/.textproto");
  mexport->add_option("MODEL", model_id, "Model id")->required();
  mexport->add_option("--out", file_path, "Output file")->required();
  mexport->callback([&] {
    run = [&] {
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      auto file = (*client)->ExportModel(model_id);
      if (!file.ok()) return Fail(file.status());
      absl::Status s = WriteModelFile(file_path, *file);
      if (!s.ok()) return Fail(s);
      if (!g.json) {
        std::printf("wrote %s (%d parameters tensors, %lld steps)\n",
                    file_path.c_str(), file->params_size(),
                    static_cast<long long>(file->trained_steps()));
      } else {
        std::printf("{}\n");
      }
      return kExitOk;
    };
  });
  CLI::App* mimport = models->add_subcommand(
      "import", "Register a model from a file written by export");
  mimport->add_option("FILE", file_path, "Model file")->required();
  mimport->add_option("--id", model_id,
                      "Model id (default: chosen by the server)");
  mimport->callback([&] {
    run = [&] {
      v1::ModelFile file;
      absl::Status s = ReadModelFile(file_path, &file);
      if (!s.ok()) return Fail(s);
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      return PrintOr<v1::Model>((*client)->ImportModel(model_id, file), g,
                                FormatModel);
    };
  });

  // datasets
  CLI::App* datasets =
      app.add_subcommand("datasets", "List, upload and delete data sets");
  datasets->require_subcommand(1);
  CLI::App* dlist =
      datasets->add_subcommand("list", "List built-in and uploaded data sets");
  dlist->callback([&] {
    run = [&] {
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      auto list = (*client)->ListDatasets();
      if (!list.ok()) return Fail(list.status());
      if (g.json) {
        for (const auto& d : *list) PrintJson(d);
      } else {
        std::printf("%s", DatasetsTable(*list).c_str());
      }
      return kExitOk;
    };
  });
  UploadFlags upload_flags;
  CLI::App* dupload = datasets->add_subcommand(
      "upload",
      "Upload labelled 8-bit images from IDX files (as MNIST is stored)");
  dupload->add_option("--images", upload_flags.images, "IDX image file")
      ->required();
  dupload->add_option("--labels", upload_flags.labels, "IDX label file")
      ->required();
  dupload->add_option("--name", upload_flags.name, "Human-readable name");
  dupload->add_option("--test", upload_flags.test,
                      "The last N samples form the test set");
  dupload->callback([&] { run = [&] { return RunUpload(g, upload_flags); }; });
  std::string dataset_id;
  CLI::App* ddel =
      datasets->add_subcommand("delete", "Delete an uploaded data set");
  ddel->add_option("DATASET", dataset_id, "Data set id")->required();
  ddel->callback([&] {
    run = [&] {
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      absl::Status s = (*client)->DeleteDataset(dataset_id);
      if (!s.ok()) return Fail(s);
      if (g.json) {
        std::printf("{}\n");
      } else {
        std::printf("deleted data set %s\n", dataset_id.c_str());
      }
      return kExitOk;
    };
  });

  // train
  TrainFlags tf;
  CLI::App* train = app.add_subcommand(
      "train", "Start a training job (--watch to follow it)");
  train->add_option("--model", tf.model, "Model id")->required();
  train
      ->add_option("--dataset", tf.dataset,
                   "mnist, fashion-mnist, or an uploaded data set's id")
      ->required();
  train->add_option("--optimizer", tf.optimizer, "Optimizer")
      ->check(CLI::IsMember({"sgd", "momentum", "nesterov", "adagrad",
                             "rmsprop", "adadelta", "adam"}))
      ->capture_default_str();
  train->add_option("--lr", tf.lr,
                    "Learning rate (0: the optimizer's default)");
  train->add_option("--epochs", tf.epochs, "Passes over the training set")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  train->add_option("--batch", tf.batch, "Mini-batch size")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  train->add_option("--momentum", tf.momentum, "Momentum/Nesterov mu (0: 0.9)");
  train->add_option("--rho", tf.rho, "RMSprop/Adadelta decay (0: default)");
  train->add_option("--beta1", tf.beta1, "Adam beta1 (0: 0.9)");
  train->add_option("--beta2", tf.beta2, "Adam beta2 (0: 0.999)");
  train->add_option("--epsilon", tf.epsilon,
                    "Adaptive optimizers' epsilon (0: default)");
  train->add_option("--weight_decay", tf.weight_decay, "L2 weight decay");
  train->add_option("--clip_norm", tf.clip_norm,
                    "Clip the global gradient norm to this");
  train->add_option("--schedule", tf.schedule, "Learning-rate schedule")
      ->check(CLI::IsMember({"constant", "step", "exponential"}))
      ->capture_default_str();
  train->add_option("--decay_steps", tf.decay_steps,
                    "Schedule period in steps (0: 1000)");
  train->add_option("--decay_rate", tf.decay_rate, "Schedule factor (0: 0.5)");
  train
      ->add_option("--sample_shape", tf.sample_shape,
                   "Per-sample reshape of the inputs, e.g. 1,28,28")
      ->delimiter(',');
  train->add_option(
      "--eval_every", tf.eval_every,
      "Evaluate on the test set every N steps (0: each epoch's end)");
  train->add_option("--checkpoint_every", tf.checkpoint_every,
                    "Checkpoint every N steps (0: each epoch's end)");
  train->add_option(
      "--stats_every", tf.stats_every,
      "Per-layer statistics every N steps (0: every step, -1: never)");
  train->add_option("--seed", tf.seed, "Shuffling seed");
  train->add_flag("--no_shuffle", tf.no_shuffle,
                  "Visit the training set in order");
  train->add_option("--max_train_samples", tf.max_train_samples,
                    "Train on the first N samples only");
  train->add_option("--max_steps", tf.max_steps, "Stop after N steps");
  train->add_option("--label", tf.label, "Free text shown in job listings");
  train->add_flag("--watch", tf.watch,
                  "Follow the job until it ends; exit 0 only if it completed");
  train->add_flag("-q,--quiet", tf.quiet, "Print only the job id");
  AddWatchFlags(train, &tf.watch_flags);
  train->callback([&] { run = [&] { return RunTrain(g, tf); }; });

  // watch
  std::string job_id;
  WatchFlags wf;
  CLI::App* watch = JobCommand(&app, "watch",
                               "Follow a job's metrics until it ends", &job_id);
  AddWatchFlags(watch, &wf);
  watch->callback([&] {
    run = [&] {
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      auto job = (*client)->GetJob(job_id);
      if (!job.ok()) return Fail(job.status());
      return WatchJob(**client, g, *job, wf);
    };
  });

  // jobs
  CLI::App* jobs = app.add_subcommand(
      "jobs", "List, inspect, cancel, pause and resume jobs");
  jobs->require_subcommand(1);
  std::string jobs_model, jobs_state;
  CLI::App* jlist = jobs->add_subcommand("list", "List jobs (oldest first)");
  jlist->add_option("--model", jobs_model, "Only jobs of this model");
  jlist->add_option("--state", jobs_state, "Only jobs in this state")
      ->check(CLI::IsMember(
          {"queued", "running", "paused", "completed", "cancelled", "failed"},
          CLI::ignore_case));
  jlist->callback([&] {
    run = [&] {
      v1::ListJobsRequest req;
      req.set_model_id(jobs_model);
      if (!jobs_state.empty()) {
        v1::JobState st = v1::JOB_STATE_UNSPECIFIED;
        v1::JobState_Parse("JOB_STATE_" + absl::AsciiStrToUpper(jobs_state),
                           &st);
        req.set_state(st);
      }
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      auto list = (*client)->ListJobs(req);
      if (!list.ok()) return Fail(list.status());
      if (g.json) {
        for (const auto& j : *list) PrintJson(j);
      } else {
        std::printf("%s", JobsTable(*list).c_str());
      }
      return kExitOk;
    };
  });
  using JobCall = absl::StatusOr<v1::Job> (Client::*)(const std::string&);
  auto job_call = [&](CLI::App* cmd, JobCall call) {
    cmd->callback([&, call] {
      run = [&, call] {
        auto client = Connect(g);
        if (!client.ok()) return Fail(client.status());
        return PrintOr<v1::Job>(
            ((**client).*call)(job_id), g,
            [](const v1::Job& j) { return FormatJob(j) + "\n"; });
      };
    });
  };
  job_call(JobCommand(jobs, "get", "Show a job's state and progress", &job_id),
           &Client::GetJob);
  job_call(
      JobCommand(jobs, "cancel", "Stop a job at the next mini-batch", &job_id),
      &Client::CancelJob);
  job_call(
      JobCommand(jobs, "pause",
                 "Checkpoint and stop a job; resume continues it", &job_id),
      &Client::PauseJob);
  job_call(JobCommand(jobs, "resume",
                      "Continue a paused job from its checkpoint", &job_id),
           &Client::ResumeJob);

  // infer
  InferFlags inf;
  CLI::App* infer = app.add_subcommand(
      "infer",
      "Run a model on local samples; prints predictions and the accuracy");
  infer->add_option("--model", inf.model, "Model id")->required();
  CLI::Option* ds = infer->add_option(
      "--dataset", inf.dataset,
      "Built-in data set, NAME[:train|:test] (default: train)");
  CLI::Option* im = infer->add_option("--images", inf.images, "IDX image file");
  infer->add_option("--labels", inf.labels, "IDX label file (with --images)")
      ->needs(im);
  ds->excludes(im);
  infer->add_option("--limit", inf.limit, "At most N samples (0: all)");
  infer->add_option("--offset", inf.offset, "Skip the first N samples");
  infer->add_option("--top_k", inf.top_k,
                    "Also show the k most probable classes");
  infer->add_option("--batch", inf.batch, "Samples per request")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  infer->callback([&] {
    run = [&] {
      if (inf.dataset.empty() && inf.images.empty()) {
        return Usage("infer: give --dataset NAME[:test] or --images FILE");
      }
      if (!inf.images.empty() && inf.labels.empty()) {
        return Usage(
            "infer: --images needs --labels (IDX files come in pairs)");
      }
      return RunInfer(g, inf);
    };
  });

  // sample
  SampleFlags sf;
  CLI::App* sample = app.add_subcommand(
      "sample", "Draw samples from a GAN's generator or a sequence model");
  sample->add_option("--model", sf.model, "Model id")->required();
  sample->add_option("--count", sf.count, "Number of samples")
      ->capture_default_str();
  sample->add_option("--seed", sf.seed, "Seed")->capture_default_str();
  sample->add_option("--noise", sf.noise, "Noise distribution")
      ->check(CLI::IsMember({"uniform", "normal"}));
  sample->add_option("--steps", sf.steps, "Sequence models: steps to generate");
  sample->add_option("--temperature", sf.temperature,
                     "Sequence models: softmax temperature (0: argmax)");
  sample->add_option("--out", sf.out, "Write image samples as a PNG grid");
  sample->callback([&] { run = [&] { return RunSample(g, sf); }; });

  // plot
  std::string plot_out;
  CLI::App* plot = JobCommand(
      &app, "plot",
      "Plot loss, accuracy and per-layer learning speed of a job (SVG or PNG)",
      &job_id);
  plot->add_option("--out", plot_out, "Output file, .svg or .png")->required();
  plot->callback([&] { run = [&] { return RunPlot(g, job_id, plot_out); }; });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with exit code 0.
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  if (!run) return Usage("no command given (see --help)");
  return run();
}

}  // namespace
}  // namespace nnlab::cli

int main(int argc, char** argv) { return nnlab::cli::Main(argc, argv); }
