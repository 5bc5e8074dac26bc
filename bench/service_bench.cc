// The service path, measured end to end: starts the real nnlabd as a child
// process (loopback port, temporary data directory) and drives it with the
// client library and the generated stubs.
//
//   job       a StartJob training run against the same run in this process
//             (core Trainer, same model, data, optimizer, batch size, BLAS
//             threads, per-layer statistics every step, evaluation at each
//             epoch's end): steady-state samples/s per epoch and whole-run
//             wall time, and their ratios (target: within 3%).
//   stream    client-driven TrainStream samples/s (pipelined and lock-step)
//             against TrainStep calls in this process on the same batches.
//   watchers  the job of `job` with 0 and with 10 StreamMetrics watchers
//             (full events, per-layer statistics included): cost under 3%.
//   infer     Infer latency p50/p99 and requests/s, one MNIST image per
//             request, 1, 8 and 32 concurrent clients (one connection each)
//             on examples/mnist_mlp_100.textproto, against two floors measured
//             in the same run: a bare Health/Check, and one carrying as
//             many request bytes (target: 1 client p50 within 1.3x of the
//             bare one). The pixels travel as packed floats, or as bytes
//             with --infer_uint8.
//   rss       nnlabd's peak RSS (VmHWM) training the residual CNN
//             (examples/resnet_fashion.textproto, Fashion-MNIST, momentum
//             0.9, batch 64; target: under 150 MB).
//
// Repeated measurements alternate the things they compare (in-process run,
// job, job with watchers...) so that load from other processes falls on
// both; one warm-up round is discarded. Figures are medians with min-max.
// The workload of job/stream/watchers is examples/mnist_mlp_100.textproto
// on the 8,000 MNIST training digits (125 steps of 64 an epoch).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench/bench_util.h"
#include "client/client.h"
#include "core/data/dataset.h"
#include "core/kernels/blas.h"
#include "core/model/model.h"
#include "core/status_macros.h"
#include "core/train/trainer.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/codegen/client_unary_call.h"
#include "server/convert.h"
#include "tests/nnlabd_process.h"

ABSL_FLAG(std::string, nnlabd, "",
          "Path of the nnlabd binary (default: ../server/nnlabd next to this "
          "binary, else the one this build made)");
ABSL_FLAG(int, threads, 1, "OpenBLAS threads, in nnlabd and in-process");
ABSL_FLAG(std::string, measure, "job,stream,watchers,infer,rss",
          "Comma-separated measurements: job, stream, watchers, infer, rss");
ABSL_FLAG(bool, json, false, "One JSON object per result line");
ABSL_FLAG(int, reps, 5, "Timed repetitions (after one warm-up)");
ABSL_FLAG(int, epochs, 10, "Epochs of the job/stream/watchers workload");
ABSL_FLAG(int64_t, checkpoint_every_steps, 0,
          "JobSpec.checkpoint_every_steps of the job workload (0: the "
          "default, a checkpoint at each epoch's end)");
ABSL_FLAG(int, watchers, 10, "StreamMetrics watchers in `watchers`");
ABSL_FLAG(std::string, clients, "1,8,32", "Concurrent Infer clients");
ABSL_FLAG(double, infer_seconds, 3.0, "Timed seconds per Infer repetition");
ABSL_FLAG(bool, infer_uint8, false,
          "Infer requests carry the pixels as uint8_data (divisor 255, "
          "784 bytes) instead of packed floats (3,136 bytes)");
ABSL_FLAG(int, rss_train_samples, 6400,
          "Fashion-MNIST training images of the rss job (0: all 60,000)");
ABSL_FLAG(std::string, datasets_dir, "",
          "Built-in data sets (default: the build's data/)");
ABSL_FLAG(std::string, examples_dir, NNLAB_EXAMPLES_DIR,
          "Directory with the example model specs");

namespace nnlab {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

double Seconds(const google::protobuf::Timestamp& a,
               const google::protobuf::Timestamp& b) {
  return double(b.seconds() - a.seconds()) + 1e-9 * (b.nanos() - a.nanos());
}

using bench::Summarise;
using bench::Summary;
using testing::NnlabdProcess;

double Median(std::vector<double> v) { return Summarise(std::move(v)).median; }

// Quantile q of `v` (nearest rank).
double Quantile(std::vector<double>* v, double q) {
  if (v->empty()) return 0;
  const size_t k = std::min(v->size() - 1, size_t(q * double(v->size())));
  std::nth_element(v->begin(), v->begin() + k, v->end());
  return (*v)[k];
}

// One line of the results table (and of --json).
struct Row {
  std::string measure, metric;
  Summary value;
  std::string unit;
  std::string target;  // Empty: none.
  int met = -1;        // -1: no target; 0 / 1.
};

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

// Digits after the point that suit the value's magnitude.
int DigitsFor(double v) {
  const double a = std::abs(v);
  return a >= 1000 ? 0 : a >= 100 ? 1 : a >= 10 ? 2 : a >= 1 ? 3 : 4;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out + "\"";
}

void PrintRow(const Row& r, bool json) {
  if (json) {
    std::printf(
        "{\"measure\": %s, \"metric\": %s, \"median\": %.6g, \"min\": %.6g, "
        "\"max\": %.6g, \"unit\": %s, \"target\": %s, \"met\": %s, "
        "\"threads\": %d}\n",
        JsonString(r.measure).c_str(), JsonString(r.metric).c_str(),
        r.value.median, r.value.min, r.value.max, JsonString(r.unit).c_str(),
        JsonString(r.target).c_str(),
        r.met < 0 ? "null" : (r.met ? "true" : "false"),
        absl::GetFlag(FLAGS_threads));
  } else {
    const int d = DigitsFor(r.value.median);
    std::printf("| %s | %s | %s | %s-%s | %s | %s | %s |\n", r.measure.c_str(),
                r.metric.c_str(), Fixed(r.value.median, d).c_str(),
                Fixed(r.value.min, d).c_str(), Fixed(r.value.max, d).c_str(),
                r.unit.c_str(), r.target.empty() ? "-" : r.target.c_str(),
                r.met < 0 ? "-" : (r.met ? "yes" : "no"));
  }
  std::fflush(stdout);
}

void Note(const std::string& s) {
  std::fprintf(stderr, "service_bench: %s\n", s.c_str());
}

// --- nnlabd as a child process ---------------------------------------------

class Daemon {
 public:
  // Starts `binary` on 127.0.0.1:0 with a fresh data directory; its stderr
  // goes to <data dir>.log.
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(
      const std::string& binary, int threads, const std::string& datasets) {
    const char* base = getenv("TMPDIR");
    std::string tmpl =
        absl::StrCat(base ? base : "/tmp", "/nnlab-svcbench-XXXXXX");
    if (mkdtemp(tmpl.data()) == nullptr) {
      return absl::InternalError("mkdtemp failed");
    }
    auto d = std::unique_ptr<Daemon>(new Daemon);
    d->dir_ = tmpl;
    d->log_ = tmpl + ".log";
    std::vector<std::string> flags = {"--data_dir=" + d->dir_,
                                      absl::StrCat("--blas_threads=", threads)};
    if (!datasets.empty()) flags.push_back("--datasets_dir=" + datasets);
    NNLAB_RETURN_IF_ERROR(d->process_.Start(binary, 0, flags, d->log_));
    ClientOptions o;
    o.server = d->address();
    o.deadline = absl::Seconds(120);
    NNLAB_ASSIGN_OR_RETURN(d->client_, Client::Create(o));
    return d;
  }

  ~Daemon() {
    process_.Signal(SIGTERM);
    std::error_code ec;
    fs::remove_all(dir_, ec);
    fs::remove(log_, ec);
  }

  int port() const { return process_.port(); }
  pid_t pid() const { return process_.pid(); }
  Client& client() { return *client_; }
  std::string address() const { return process_.address(); }
  // A /proc/<pid>/status field in KiB (VmRSS, VmHWM), -1 if unreadable.
  int64_t StatusKib(const char* field) const {
    return process_.StatusKib(field);
  }

  // A client with its own connection (not shared with other channels).
  std::unique_ptr<Client> NewClient() const {
    ClientOptions o;
    o.server = address();
    o.deadline = absl::Seconds(120);
    auto c = Client::Create(o);
    return c.ok() ? std::move(*c) : nullptr;
  }

 private:
  Daemon() = default;
  std::string dir_, log_;
  NnlabdProcess process_;
  std::unique_ptr<Client> client_;
};

// --- Shared workload ---------------------------------------------------------

absl::StatusOr<v1::ModelSpec> LoadSpec(const std::string& file) {
  const std::string path =
      absl::StrCat(absl::GetFlag(FLAGS_examples_dir), "/", file);
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  v1::ModelSpec spec;
  if (!google::protobuf::TextFormat::ParseFromString(ss.str(), &spec)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": parse error"));
  }
  return spec;
}

std::string DatasetsDir() {
  const std::string d = absl::GetFlag(FLAGS_datasets_dir);
  return d.empty() ? DefaultDatasetsDir() : d;
}

// The job/stream/watchers workload: the MLP-100 of the examples on MNIST,
// momentum SGD, batch 64, per-layer statistics every step.
struct MlpWorkload {
  v1::ModelSpec model;
  v1::JobSpec job;  // model_id left empty.
  ModelSpec core_model;
  TrainOptions core_train;
  TrainTest data;
  int64_t per_epoch = 0;
};

absl::StatusOr<MlpWorkload> MakeMlpWorkload() {
  MlpWorkload w;
  NNLAB_ASSIGN_OR_RETURN(w.model, LoadSpec("mnist_mlp_100.textproto"));
  w.job.set_dataset("mnist");
  v1::OptimizerConfig* o = w.job.mutable_optimizer();
  o->set_kind(v1::OPTIMIZER_MOMENTUM);
  o->set_learning_rate(0.05f);
  o->set_momentum(0.9f);
  w.job.set_epochs(absl::GetFlag(FLAGS_epochs));
  w.job.set_batch_size(64);
  w.job.set_shuffle_seed(1);
  // stats_every 0: the job default (statistics every step).
  w.job.set_checkpoint_every_steps(absl::GetFlag(FLAGS_checkpoint_every_steps));
  const server::Limits limits;
  NNLAB_ASSIGN_OR_RETURN(w.core_model,
                         server::ModelSpecFromProto(w.model, "spec", limits));
  NNLAB_ASSIGN_OR_RETURN(w.core_train.optimizer,
                         server::OptimizerFromProto(*o, "optimizer"));
  w.core_train.epochs = w.job.epochs();
  w.core_train.batch_size = w.job.batch_size();
  w.core_train.stats_every = 1;
  w.core_train.shuffle_seed = w.job.shuffle_seed();
  NNLAB_ASSIGN_OR_RETURN(w.data, LoadMnist(DatasetsDir()));
  w.per_epoch = (w.data.train->size() + 63) / 64;
  return w;
}

// One training run: wall time and the time at the end of each epoch.
struct RunTimes {
  double wall = 0;               // Seconds.
  std::vector<double> epoch_at;  // Seconds since an arbitrary origin.
  double final_loss = 0;
  int64_t events = 0;  // Watchers: events delivered over all of them.
  int64_t dropped = 0;
};

// Samples/s of each epoch after the first (whose interval is unknown).
std::vector<double> EpochRates(const RunTimes& t, int64_t samples) {
  std::vector<double> out;
  for (size_t i = 1; i < t.epoch_at.size(); ++i) {
    out.push_back(double(samples) / (t.epoch_at[i] - t.epoch_at[i - 1]));
  }
  return out;
}

// The run in this process: build, Trainer, Run with the test set.
absl::StatusOr<RunTimes> RunInProcess(const MlpWorkload& w) {
  RunTimes t;
  const Clock::time_point start = Clock::now();
  NNLAB_ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                         Model::Build(w.core_model));
  NNLAB_ASSIGN_OR_RETURN(std::unique_ptr<Trainer> trainer,
                         Trainer::Create(model.get(), w.core_train));
  Trainer::Callbacks cb;
  cb.on_step = [&](const StepStats& s) {
    t.final_loss = s.loss;
    if (s.step % w.per_epoch == 0) {
      t.epoch_at.push_back(Seconds(start, Clock::now()));
    }
    return absl::OkStatus();
  };
  NNLAB_RETURN_IF_ERROR(trainer->Run(*w.data.train, w.data.test.get(), cb));
  t.wall = Seconds(start, Clock::now());
  return t;
}

absl::StatusOr<v1::Job> WaitForJob(Client& c, const std::string& id) {
  for (;;) {
    NNLAB_ASSIGN_OR_RETURN(v1::Job job, c.GetJob(id));
    switch (job.state()) {
      case v1::JOB_STATE_COMPLETED:
        return job;
      case v1::JOB_STATE_FAILED:
      case v1::JOB_STATE_CANCELLED:
      case v1::JOB_STATE_PAUSED:
        return absl::InternalError(absl::StrCat("job ", id, " ended in state ",
                                                v1::JobState_Name(job.state()),
                                                ": ", job.failure_reason()));
      default:
        break;
    }
    // Polling is the cheapest way to learn the end without a watcher.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// The same run as a job on `d`, with `watchers` StreamMetrics watchers
// attached from the start. Times come from the server's own timestamps:
// wall = end_time - start_time; epoch ends from the events' times.
absl::StatusOr<RunTimes> RunJob(Daemon& d, const MlpWorkload& w, int watchers) {
  v1::CreateModelRequest create;
  *create.mutable_spec() = w.model;
  NNLAB_ASSIGN_OR_RETURN(v1::Model model, d.client().CreateModel(create));
  v1::JobSpec spec = w.job;
  spec.set_model_id(model.model_id());
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < watchers; ++i) {
    clients.push_back(d.NewClient());
    if (clients.back() == nullptr) return absl::InternalError("client");
    // Connect before the job starts, so the watchers do not compete with
    // training for connection setup.
    NNLAB_RETURN_IF_ERROR(clients.back()->Health().status());
  }
  NNLAB_ASSIGN_OR_RETURN(v1::Job job, d.client().StartJob(spec));
  std::vector<std::thread> threads;
  std::atomic<int64_t> events{0}, dropped{0};
  std::vector<absl::Status> statuses(watchers);
  for (int i = 0; i < watchers; ++i) {
    threads.emplace_back([&, i] {
      v1::StreamMetricsRequest req;
      req.set_job_id(job.job_id());
      statuses[i] =
          clients[i]->WatchMetrics(req, [&](const v1::MetricEvent& e) {
            events.fetch_add(1, std::memory_order_relaxed);
            dropped.fetch_add(e.dropped_events(), std::memory_order_relaxed);
            return true;
          });
    });
  }
  absl::StatusOr<v1::Job> done = WaitForJob(d.client(), job.job_id());
  for (std::thread& t : threads) t.join();
  NNLAB_RETURN_IF_ERROR(done.status());
  for (const absl::Status& s : statuses) NNLAB_RETURN_IF_ERROR(s);
  RunTimes t;
  t.wall = Seconds(done->start_time(), done->end_time());
  t.final_loss = done->last_loss();
  t.events = events.load();
  t.dropped = dropped.load();
  // The history, replayed after the end (no longer competing with
  // training): the time of each epoch's last step.
  v1::StreamMetricsRequest req;
  req.set_job_id(job.job_id());
  req.set_omit_layer_stats(true);
  NNLAB_RETURN_IF_ERROR(
      d.client().WatchMetrics(req, [&](const v1::MetricEvent& e) {
        if (e.phase() == v1::PHASE_TRAIN && e.step() % w.per_epoch == 0) {
          t.epoch_at.push_back(Seconds(done->start_time(), e.time()));
        }
        return true;
      }));
  NNLAB_RETURN_IF_ERROR(d.client().DeleteModel(model.model_id()));
  return t;
}

// --- job and watchers
// ----------------------------------------------------------

absl::Status MeasureTraining(Daemon& d, bool job, bool watchers,
                             std::vector<Row>* rows) {
  NNLAB_ASSIGN_OR_RETURN(MlpWorkload w, MakeMlpWorkload());
  const int reps = absl::GetFlag(FLAGS_reps);
  const int nw = absl::GetFlag(FLAGS_watchers);
  const int64_t n = w.data.train->size();
  std::vector<double> in_rate, job_rate, watch_rate;  // Per rep medians.
  std::vector<double> in_wall, job_wall, watch_wall;
  std::vector<double> job_ratio, job_wall_ratio, watch_cost, watch_wall_cost;
  int64_t events = 0, dropped = 0;
  for (int rep = -1; rep < reps; ++rep) {  // Rep -1 warms up.
    RunTimes in, j, jw;
    if (job) {
      NNLAB_ASSIGN_OR_RETURN(in, RunInProcess(w));
    }
    NNLAB_ASSIGN_OR_RETURN(j, RunJob(d, w, 0));
    if (watchers) {
      NNLAB_ASSIGN_OR_RETURN(jw, RunJob(d, w, nw));
    }
    if (rep < 0) continue;
    const double jr = Median(EpochRates(j, n));
    job_rate.push_back(jr);
    job_wall.push_back(j.wall);
    std::string line = absl::StrCat("rep ", rep, ": job ", Fixed(jr, 0),
                                    " samples/s, ", Fixed(j.wall, 3), " s");
    if (job) {
      const double ir = Median(EpochRates(in, n));
      in_rate.push_back(ir);
      in_wall.push_back(in.wall);
      job_ratio.push_back(jr / ir);
      job_wall_ratio.push_back(j.wall / in.wall);
      absl::StrAppend(&line, "; in-process ", Fixed(ir, 0), " samples/s, ",
                      Fixed(in.wall, 3), " s (final loss ", in.final_loss,
                      " vs job ", j.final_loss, ")");
    }
    if (watchers) {
      const double wr = Median(EpochRates(jw, n));
      watch_rate.push_back(wr);
      watch_wall.push_back(jw.wall);
      watch_cost.push_back(1.0 - wr / jr);
      watch_wall_cost.push_back(jw.wall / j.wall - 1.0);
      events += jw.events;
      dropped += jw.dropped;
      absl::StrAppend(&line, "; with ", nw, " watchers ", Fixed(wr, 0),
                      " samples/s, ", Fixed(jw.wall, 3), " s, ", jw.events,
                      " events delivered, ", jw.dropped, " dropped");
    }
    Note(line);
  }
  const std::string epochs =
      absl::StrCat(w.job.epochs(), " epochs x ", n, " samples");
  if (job) {
    rows->push_back({"job", "in-process Trainer, samples/s per epoch",
                     Summarise(in_rate), "samples/s", "", -1});
    rows->push_back({"job", "StartJob on nnlabd, samples/s per epoch",
                     Summarise(job_rate), "samples/s", "", -1});
    Summary r = Summarise(job_ratio);
    rows->push_back({"job", "job / in-process throughput", r, "ratio",
                     ">= 0.98", r.median >= 0.98});
    rows->push_back({"job", absl::StrCat("in-process wall time, ", epochs),
                     Summarise(in_wall), "s", "", -1});
    rows->push_back({"job", absl::StrCat("job wall time (start to end)"),
                     Summarise(job_wall), "s", "", -1});
    r = Summarise(job_wall_ratio);
    rows->push_back({"job", "job / in-process wall time", r, "ratio", "<= 1.03",
                     r.median <= 1.03});
  }
  if (watchers) {
    if (!job) {
      rows->push_back({"watchers", "job, 0 watchers, samples/s per epoch",
                       Summarise(job_rate), "samples/s", "", -1});
    }
    rows->push_back(
        {"watchers",
         absl::StrCat("job, ", nw, " watchers, samples/s per epoch"),
         Summarise(watch_rate), "samples/s", "", -1});
    Summary c = Summarise(watch_cost);
    for (double* v : {&c.median, &c.min, &c.max}) *v *= 100;
    rows->push_back({"watchers",
                     absl::StrCat("throughput cost of ", nw, " watchers"), c,
                     "%", "< 3%", c.median < 3.0});
    c = Summarise(watch_wall_cost);
    for (double* v : {&c.median, &c.min, &c.max}) *v *= 100;
    rows->push_back({"watchers",
                     absl::StrCat("wall-time cost of ", nw, " watchers"), c,
                     "%", "< 3%", c.median < 3.0});
    const double per = reps > 0 ? double(events) / reps : 0;
    rows->push_back({"watchers",
                     "events delivered per job (all watchers)",
                     {per, per, per},
                     "events",
                     "",
                     -1});
    const double dr = reps > 0 ? double(dropped) / reps : 0;
    rows->push_back({"watchers",
                     "events dropped per job (all watchers)",
                     {dr, dr, dr},
                     "events",
                     "",
                     -1});
  }
  return absl::OkStatus();
}

// --- stream ------------------------------------------------------------------

absl::Status MeasureStream(Daemon& d, std::vector<Row>* rows) {
  NNLAB_ASSIGN_OR_RETURN(MlpWorkload w, MakeMlpWorkload());
  const int reps = absl::GetFlag(FLAGS_reps);
  const int epochs = std::max(2, absl::GetFlag(FLAGS_epochs) / 2);
  // The batches of `epochs` shuffled epochs, as tensors and as requests.
  std::vector<Tensor> xs, ys;
  std::vector<v1::TrainStepRequest> reqs;
  {
    Rng rng(1);
    BatchIterator it(w.data.train.get(), 64, /*shuffle=*/true, &rng);
    Tensor x, y;
    for (int e = 0; e < epochs; ++e) {
      it.StartEpoch();
      while (it.Next(&x, &y)) {
        xs.push_back(x.Clone());
        ys.push_back(y.Clone());
        v1::TrainStepRequest r;
        server::TensorToProto(x, /*raw=*/false, r.mutable_inputs());
        server::TensorToProto(y, /*raw=*/false, r.mutable_targets());
        reqs.push_back(std::move(r));
      }
    }
  }
  *reqs[0].mutable_optimizer() = w.job.optimizer();
  const int64_t per_epoch = w.per_epoch;
  const int64_t n = w.data.train->size();

  auto in_process = [&]() -> absl::StatusOr<RunTimes> {
    RunTimes t;
    const Clock::time_point start = Clock::now();
    NNLAB_ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                           Model::Build(w.core_model));
    TrainOptions o = w.core_train;
    NNLAB_ASSIGN_OR_RETURN(std::unique_ptr<Trainer> trainer,
                           Trainer::Create(model.get(), o));
    StepStats stats;
    for (size_t i = 0; i < xs.size(); ++i) {
      NNLAB_RETURN_IF_ERROR(trainer->TrainStep(xs[i], ys[i], false, &stats));
      if ((i + 1) % per_epoch == 0) {
        t.epoch_at.push_back(Seconds(start, Clock::now()));
      }
    }
    t.wall = Seconds(start, Clock::now());
    t.final_loss = stats.loss;
    return t;
  };
  // pipelined: a writer thread sends every batch while this thread reads;
  // otherwise one request, then its response.
  auto stream = [&](bool pipelined) -> absl::StatusOr<RunTimes> {
    v1::CreateModelRequest create;
    *create.mutable_spec() = w.model;
    NNLAB_ASSIGN_OR_RETURN(v1::Model model, d.client().CreateModel(create));
    reqs[0].set_model_id(model.model_id());
    auto stub = v1::TrainingService::NewStub(d.client().channel());
    grpc::ClientContext ctx;
    d.client().PrepareContext(&ctx, /*deadline=*/false);
    RunTimes t;
    const Clock::time_point start = Clock::now();
    auto rw = stub->TrainStream(&ctx);
    std::thread writer;
    if (pipelined) {
      writer = std::thread([&] {
        for (const v1::TrainStepRequest& r : reqs) {
          if (!rw->Write(r)) break;
        }
        rw->WritesDone();
      });
    }
    v1::TrainStepResponse resp;
    size_t got = 0;
    for (size_t i = 0; i < reqs.size(); ++i) {
      if (!pipelined && !rw->Write(reqs[i])) break;
      if (!rw->Read(&resp)) break;
      ++got;
      if (got % per_epoch == 0) {
        t.epoch_at.push_back(Seconds(start, Clock::now()));
      }
    }
    if (!pipelined) rw->WritesDone();
    if (writer.joinable()) writer.join();
    grpc::Status s = rw->Finish();
    t.wall = Seconds(start, Clock::now());
    t.final_loss = resp.metrics().loss();
    if (!s.ok()) {
      return absl::InternalError(
          absl::StrCat("TrainStream: ", s.error_message()));
    }
    if (got != reqs.size()) {
      return absl::InternalError(absl::StrCat("TrainStream: ", got, " of ",
                                              reqs.size(), " responses"));
    }
    NNLAB_RETURN_IF_ERROR(d.client().DeleteModel(model.model_id()));
    return t;
  };
  std::vector<double> in_rate, pipe_rate, lock_rate, pipe_ratio, lock_ratio;
  for (int rep = -1; rep < reps; ++rep) {
    NNLAB_ASSIGN_OR_RETURN(RunTimes in, in_process());
    NNLAB_ASSIGN_OR_RETURN(RunTimes p, stream(true));
    NNLAB_ASSIGN_OR_RETURN(RunTimes l, stream(false));
    if (rep < 0) continue;
    const double ir = Median(EpochRates(in, n)), pr = Median(EpochRates(p, n)),
                 lr = Median(EpochRates(l, n));
    in_rate.push_back(ir);
    pipe_rate.push_back(pr);
    lock_rate.push_back(lr);
    pipe_ratio.push_back(pr / ir);
    lock_ratio.push_back(lr / ir);
    Note(absl::StrCat("rep ", rep, ": in-process ", Fixed(ir, 0),
                      ", TrainStream pipelined ", Fixed(pr, 0), ", lock-step ",
                      Fixed(lr, 0), " samples/s (final loss ", in.final_loss,
                      " / ", p.final_loss, " / ", l.final_loss, ")"));
  }
  rows->push_back({"stream", "in-process TrainStep (no statistics), samples/s",
                   Summarise(in_rate), "samples/s", "", -1});
  rows->push_back({"stream", "TrainStream pipelined, samples/s",
                   Summarise(pipe_rate), "samples/s", "", -1});
  rows->push_back({"stream", "TrainStream pipelined / in-process",
                   Summarise(pipe_ratio), "ratio", "", -1});
  rows->push_back({"stream", "TrainStream lock-step, samples/s",
                   Summarise(lock_rate), "samples/s", "", -1});
  rows->push_back({"stream", "TrainStream lock-step / in-process",
                   Summarise(lock_ratio), "ratio", "", -1});
  return absl::OkStatus();
}

// --- infer -------------------------------------------------------------------

absl::Status MeasureInfer(Daemon& d, std::vector<Row>* rows) {
  NNLAB_ASSIGN_OR_RETURN(v1::ModelSpec spec,
                         LoadSpec("mnist_mlp_100.textproto"));
  v1::CreateModelRequest create;
  *create.mutable_spec() = spec;
  NNLAB_ASSIGN_OR_RETURN(v1::Model model, d.client().CreateModel(create));
  NNLAB_ASSIGN_OR_RETURN(TrainTest data, LoadMnist(DatasetsDir()));
  // One request per test image: inputs [1, 784] as packed floats, or with
  // --infer_uint8 as the image's bytes (the data set holds byte / 255).
  std::vector<v1::InferRequest> reqs;
  {
    std::vector<int64_t> idx(1);
    Tensor x, y;
    for (int64_t i = 0; i < data.test->size(); ++i) {
      idx[0] = i;
      data.test->Gather(idx, &x, &y);
      v1::InferRequest r;
      r.set_model_id(model.model_id());
      server::TensorToProto(x, /*raw=*/false, r.mutable_inputs());
      if (absl::GetFlag(FLAGS_infer_uint8)) {
        v1::Tensor* t = r.mutable_inputs();
        std::string bytes(size_t(x.size()), '\0');
        for (int64_t k = 0; k < x.size(); ++k) {
          bytes[k] = static_cast<char>(std::lround(x[k] * 255.0f));
        }
        t->clear_data();
        t->set_uint8_data(bytes);
        t->set_uint8_divisor(255.0f);
      }
      reqs.push_back(std::move(r));
    }
  }
  const int reps = std::max(1, std::min(3, absl::GetFlag(FLAGS_reps)));
  const double seconds = absl::GetFlag(FLAGS_infer_seconds);
  double health_p50 = 0, sized_health_p50 = 0;
  {
    // The floor under any unary call on this machine: grpc.health.v1 Check
    // (no nnlab work), one client, back to back.
    std::vector<double> lat;
    for (int i = -200; i < 3000; ++i) {
      const Clock::time_point t0 = Clock::now();
      NNLAB_RETURN_IF_ERROR(d.client().Health().status());
      if (i >= 0) lat.push_back(Seconds(t0, Clock::now()) * 1e6);
    }
    health_p50 = Quantile(&lat, 0.5);
    rows->push_back({"infer",
                     "1 client, Health/Check latency p50 (floor)",
                     {health_p50, health_p50, health_p50},
                     "us",
                     "",
                     -1});
    // The same call carrying as many request bytes as an Infer of one image
    // (in a field the health service ignores), sent as the Infer clients
    // send (a blocking unary call on its own channel): what moving the
    // request costs in gRPC, nnlab's handler aside.
    const size_t infer_bytes = reqs[0].ByteSizeLong();
    std::string payload;
    {
      google::protobuf::io::StringOutputStream raw(&payload);
      google::protobuf::io::CodedOutputStream out(&raw);
      const std::string filler(infer_bytes > 3 ? infer_bytes - 3 : 1, 'x');
      out.WriteTag(18);  // Field 2, length-delimited: unknown to Check.
      out.WriteVarint32(static_cast<uint32_t>(filler.size()));
      out.WriteString(filler);
    }
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto ch = grpc::CreateCustomChannel(
        d.address(), grpc::InsecureChannelCredentials(), args);
    lat.clear();
    for (int i = -200; i < 3000; ++i) {
      const Clock::time_point t0 = Clock::now();
      grpc::Slice slice(payload);
      grpc::ByteBuffer req(&slice, 1), resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(30));
      grpc::Status s =
          grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
              ch.get(),
              grpc::internal::RpcMethod("/grpc.health.v1.Health/Check",
                                        grpc::internal::RpcMethod::NORMAL_RPC),
              &ctx, req, &resp);
      if (!s.ok()) {
        return absl::InternalError(
            absl::StrCat("health check with padding: ", s.error_message()));
      }
      if (i >= 0) lat.push_back(Seconds(t0, Clock::now()) * 1e6);
    }
    sized_health_p50 = Quantile(&lat, 0.5);
    rows->push_back({"infer",
                     absl::StrCat("1 client, Health/Check with a ", infer_bytes,
                                  "-byte request (Infer's size), latency p50"),
                     {sized_health_p50, sized_health_p50, sized_health_p50},
                     "us",
                     "",
                     -1});
  }
  for (absl::string_view cs :
       absl::StrSplit(absl::GetFlag(FLAGS_clients), ',', absl::SkipEmpty())) {
    const int clients = std::atoi(std::string(cs).c_str());
    if (clients < 1) continue;
    // One channel (one connection) per client.
    std::vector<std::unique_ptr<v1::InferenceService::Stub>> stubs;
    for (int c = 0; c < clients; ++c) {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      auto ch = grpc::CreateCustomChannel(
          d.address(), grpc::InsecureChannelCredentials(), args);
      if (!ch->WaitForConnected(std::chrono::system_clock::now() +
                                std::chrono::seconds(10))) {
        return absl::UnavailableError("Infer client could not connect");
      }
      stubs.push_back(v1::InferenceService::NewStub(ch));
    }
    std::vector<double> p50s, p99s, rates;
    for (int rep = -1; rep < reps; ++rep) {
      std::atomic<bool> failed{false};
      std::string failure;
      std::vector<std::vector<double>> lat(clients);
      const Clock::time_point begin =
          Clock::now() + std::chrono::milliseconds(100);
      const Clock::time_point measure_from =
          begin + std::chrono::milliseconds(rep < 0 ? 0 : 500);
      const Clock::time_point end =
          measure_from +
          std::chrono::microseconds(int64_t((rep < 0 ? 0.5 : seconds) * 1e6));
      std::vector<std::thread> threads;
      for (int c = 0; c < clients; ++c) {
        threads.emplace_back([&, c] {
          lat[c].reserve(200000);
          std::this_thread::sleep_until(begin);
          v1::InferResponse resp;
          size_t k = size_t(c) * 61;
          for (;;) {
            const Clock::time_point t0 = Clock::now();
            if (t0 >= end) break;
            grpc::ClientContext ctx;
            ctx.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::seconds(30));
            grpc::Status s =
                stubs[c]->Infer(&ctx, reqs[k++ % reqs.size()], &resp);
            const Clock::time_point t1 = Clock::now();
            if (!s.ok() || resp.predictions_size() != 1) {
              if (!failed.exchange(true)) failure = s.error_message();
              return;
            }
            if (t0 >= measure_from) lat[c].push_back(Seconds(t0, t1) * 1e6);
          }
        });
      }
      for (std::thread& t : threads) t.join();
      if (failed.load()) {
        return absl::InternalError(absl::StrCat("Infer failed: ", failure));
      }
      if (rep < 0) continue;
      std::vector<double> all;
      for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
      const double window = Seconds(measure_from, end);
      rates.push_back(double(all.size()) / window);
      p50s.push_back(Quantile(&all, 0.50));
      p99s.push_back(Quantile(&all, 0.99));
      Note(absl::StrCat("infer, ", clients, " clients, rep ", rep, ": p50 ",
                        Fixed(p50s.back(), 0), " us, p99 ",
                        Fixed(p99s.back(), 0), " us, ", Fixed(rates.back(), 0),
                        " requests/s"));
    }
    const std::string who =
        absl::StrCat(clients, " client", clients > 1 ? "s" : "");
    const Summary p50 = Summarise(p50s);
    rows->push_back({"infer", absl::StrCat(who, ", latency p50"), p50, "us",
                     "< 200 us", p50.median < 200});
    if (clients == 1) {
      // Each repetition against the floors measured in the same run.
      std::vector<double> ratio, sized_ratio;
      for (double v : p50s) {
        ratio.push_back(v / health_p50);
        sized_ratio.push_back(v / sized_health_p50);
      }
      const Summary r = Summarise(ratio);
      rows->push_back({"infer", "1 client, Infer p50 / Health/Check p50", r,
                       "ratio", "<= 1.3", r.median <= 1.3});
      rows->push_back({"infer",
                       "1 client, Infer p50 / same-size Health/Check p50",
                       Summarise(sized_ratio), "ratio", "", -1});
    }
    rows->push_back({"infer", absl::StrCat(who, ", latency p99"),
                     Summarise(p99s), "us", "", -1});
    rows->push_back({"infer", absl::StrCat(who, ", throughput"),
                     Summarise(rates), "requests/s", "", -1});
  }
  return d.client().DeleteModel(model.model_id());
}

// --- rss ---------------------------------------------------------------------

absl::Status MeasureRss(const std::string& binary, std::vector<Row>* rows) {
  // A fresh server, so its peak belongs to this job alone.
  NNLAB_ASSIGN_OR_RETURN(
      std::unique_ptr<Daemon> d,
      Daemon::Start(binary, absl::GetFlag(FLAGS_threads), DatasetsDir()));
  NNLAB_ASSIGN_OR_RETURN(v1::ModelSpec spec,
                         LoadSpec("resnet_fashion.textproto"));
  const double idle_mb = d->StatusKib("VmRSS") / 1024.0;
  v1::CreateModelRequest create;
  *create.mutable_spec() = spec;
  NNLAB_ASSIGN_OR_RETURN(v1::Model model, d->client().CreateModel(create));
  v1::JobSpec job;
  job.set_model_id(model.model_id());
  job.set_dataset("fashion-mnist");
  job.add_sample_shape(1);
  job.add_sample_shape(28);
  job.add_sample_shape(28);
  v1::OptimizerConfig* o = job.mutable_optimizer();
  o->set_kind(v1::OPTIMIZER_MOMENTUM);
  o->set_learning_rate(0.05f);
  o->set_momentum(0.9f);
  job.set_batch_size(64);
  job.set_epochs(1);
  job.set_shuffle_seed(1);
  job.set_max_train_samples(absl::GetFlag(FLAGS_rss_train_samples));
  NNLAB_ASSIGN_OR_RETURN(v1::Job started, d->client().StartJob(job));
  double max_rss_mb = 0;
  int64_t last_step = 0;
  double train_rss_mb = 0;  // RSS during training (before the evaluation).
  v1::Job j;
  for (;;) {
    NNLAB_ASSIGN_OR_RETURN(j, d->client().GetJob(started.job_id()));
    const double rss = d->StatusKib("VmRSS") / 1024.0;
    max_rss_mb = std::max(max_rss_mb, rss);
    if (j.step() > last_step) train_rss_mb = std::max(train_rss_mb, rss);
    last_step = j.step();
    if (j.state() >= v1::JOB_STATE_PAUSED) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (j.state() != v1::JOB_STATE_COMPLETED) {
    return absl::InternalError(absl::StrCat("resnet job ended ",
                                            v1::JobState_Name(j.state()), ": ",
                                            j.failure_reason()));
  }
  const double hwm_mb = d->StatusKib("VmHWM") / 1024.0;
  const double after_mb = d->StatusKib("VmRSS") / 1024.0;
  const double wall = Seconds(j.start_time(), j.end_time());
  Note(absl::StrCat("rss: idle ", Fixed(idle_mb, 1), " MB, sampled max ",
                    Fixed(max_rss_mb, 1), " MB (training ",
                    Fixed(train_rss_mb, 1), "), VmHWM ", Fixed(hwm_mb, 1),
                    " MB, after the job ", Fixed(after_mb, 1), " MB; ",
                    j.step(), " steps in ", Fixed(wall, 1), " s, accuracy ",
                    j.last_eval().accuracy()));
  rows->push_back(
      {"rss", "nnlabd idle VmRSS", {idle_mb, idle_mb, idle_mb}, "MB", "", -1});
  rows->push_back({"rss",
                   absl::StrCat("nnlabd VmHWM, resnet-small job (",
                                j.step() * 64, " images + eval on 10,000)"),
                   {hwm_mb, hwm_mb, hwm_mb},
                   "MB",
                   "< 150 MB",
                   hwm_mb < 150});
  rows->push_back({"rss",
                   "nnlabd VmRSS after the job",
                   {after_mb, after_mb, after_mb},
                   "MB",
                   "",
                   -1});
  const double sps = j.step() * 64 / wall;
  rows->push_back({"rss",
                   "resnet-small job, samples/s (incl. eval)",
                   {sps, sps, sps},
                   "samples/s",
                   "",
                   -1});
  return absl::OkStatus();
}

std::string DefaultNnlabd() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path next = self.parent_path() / ".." / "server" / "nnlabd";
    if (fs::exists(next, ec)) return fs::canonical(next, ec).string();
  }
  return NNLAB_NNLABD_PATH;
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Measures nnlab's service path against a real nnlabd child process.\n"
      "Usage: service_bench [--nnlabd=PATH] [--threads=N] "
      "[--measure=job,stream,watchers,infer,rss] [--json] [--reps=N]");
  absl::ParseCommandLine(argc, argv);
  std::string binary = absl::GetFlag(FLAGS_nnlabd);
  if (binary.empty()) binary = DefaultNnlabd();
  const int threads = absl::GetFlag(FLAGS_threads);
  const bool json = absl::GetFlag(FLAGS_json);
  SetBlasThreads(threads);
  bool job = false, stream = false, watchers = false, infer = false,
       rss = false;
  for (absl::string_view m :
       absl::StrSplit(absl::GetFlag(FLAGS_measure), ',', absl::SkipEmpty())) {
    if (m == "job")
      job = true;
    else if (m == "stream")
      stream = true;
    else if (m == "watchers")
      watchers = true;
    else if (m == "infer")
      infer = true;
    else if (m == "rss")
      rss = true;
    else {
      std::fprintf(stderr, "service_bench: unknown measurement \"%s\"\n",
                   std::string(m).c_str());
      return 2;
    }
  }
  Note(absl::StrCat("nnlabd: ", binary, "; BLAS threads: ", threads));
  if (!json) {
    std::printf(
        "| measure | metric | median | min-max | unit | target | met |\n"
        "|---|---|---|---|---|---|---|\n");
  }
  int failures = 0;
  auto report = [&](const char* what, const absl::Status& s,
                    const std::vector<Row>& rows) {
    for (const Row& r : rows) PrintRow(r, json);
    if (!s.ok()) {
      ++failures;
      Note(absl::StrCat(what, " failed: ", s.ToString()));
    }
  };
  if (job || stream || watchers || infer) {
    absl::StatusOr<std::unique_ptr<Daemon>> d =
        Daemon::Start(binary, threads, DatasetsDir());
    if (!d.ok()) {
      Note(d.status().ToString());
      return 1;
    }
    if (job || watchers) {
      std::vector<Row> rows;
      absl::Status s = MeasureTraining(**d, job, watchers, &rows);
      report("job/watchers", s, rows);
    }
    if (stream) {
      std::vector<Row> rows;
      absl::Status s = MeasureStream(**d, &rows);
      report("stream", s, rows);
    }
    if (infer) {
      std::vector<Row> rows;
      absl::Status s = MeasureInfer(**d, &rows);
      report("infer", s, rows);
    }
  }
  if (rss) {
    std::vector<Row> rows;
    absl::Status s = MeasureRss(binary, &rows);
    report("rss", s, rows);
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace nnlab

int main(int argc, char** argv) { return nnlab::Main(argc, argv); }
