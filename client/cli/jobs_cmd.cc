// nnlab train, watch and jobs list/get/cancel/pause/resume.
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "client/cli/common.h"
#include "client/cli/live.h"

namespace nnlab::cli {
namespace {

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
    // A pipe or log gets about one step line a second unless --every asks
    // for every N-th step (a 4,000-step job would print 4,000 lines).
    PlainOptions o;
    if (f.every == 0) o.min_step_seconds = 1.0;
    printer = MakePlainPrinter(stdout, o);
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

struct TrainFlags {
  std::string model, dataset, optimizer = "sgd", schedule = "constant", label;
  float lr = 0, momentum = 0, rho = 0, beta1 = 0, beta2 = 0, epsilon = 0;
  float weight_decay = 0, clip_norm = 0, decay_rate = 0;
  int64_t decay_steps = 0;
  int epochs = 1;
  int64_t batch = 32, eval_every = 0, checkpoint_every = 0, stats_every = 0;
  int64_t max_train_samples = 0, max_steps = 0;
  int replicas = 1, min_replicas = 0;
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
  spec.set_replicas(f.replicas);
  spec.set_min_replicas(f.min_replicas);
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
                  "changes always; 0: in plain output, about one line a "
                  "second)");
  cmd->add_flag("--no_layers", f->no_layers, "Leave out per-layer statistics");
}

}  // namespace

void AddJobsCommands(CLI::App& app, Cli& cli) {
  const Globals& g = cli.globals;

  // train
  auto tf = std::make_shared<TrainFlags>();
  CLI::App* train = app.add_subcommand(
      "train", "Start a training job (--watch to follow it)");
  train->add_option("--model", tf->model, "Model id")->required();
  train
      ->add_option(
          "--dataset", tf->dataset,
          "mnist, fashion-mnist, adding:T=<n>, chars:devil:T=<n>, or an "
          "uploaded data set's id")
      ->required();
  train->add_option("--optimizer", tf->optimizer, "Optimizer")
      ->check(CLI::IsMember({"sgd", "momentum", "nesterov", "adagrad",
                             "rmsprop", "adadelta", "adam"}))
      ->capture_default_str();
  train->add_option("--lr", tf->lr,
                    "Learning rate (0: the optimizer's default)");
  train->add_option("--epochs", tf->epochs, "Passes over the training set")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  train->add_option("--batch", tf->batch, "Mini-batch size")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  train->add_option("--momentum", tf->momentum,
                    "Momentum/Nesterov mu (0: 0.9)");
  train->add_option("--rho", tf->rho, "RMSprop/Adadelta decay (0: default)");
  train->add_option("--beta1", tf->beta1, "Adam beta1 (0: 0.9)");
  train->add_option("--beta2", tf->beta2, "Adam beta2 (0: 0.999)");
  train->add_option("--epsilon", tf->epsilon,
                    "Adaptive optimizers' epsilon (0: default)");
  train->add_option("--weight_decay", tf->weight_decay, "L2 weight decay");
  train->add_option("--clip_norm", tf->clip_norm,
                    "Clip the global gradient norm to this");
  train->add_option("--schedule", tf->schedule, "Learning-rate schedule")
      ->check(CLI::IsMember({"constant", "step", "exponential"}))
      ->capture_default_str();
  train->add_option("--decay_steps", tf->decay_steps,
                    "Schedule period in steps (0: 1000)");
  train->add_option("--decay_rate", tf->decay_rate, "Schedule factor (0: 0.5)");
  train
      ->add_option("--sample_shape", tf->sample_shape,
                   "Per-sample reshape of the inputs, e.g. 1,28,28")
      ->delimiter(',');
  train->add_option(
      "--eval_every", tf->eval_every,
      "Evaluate on the test set every N steps (0: each epoch's end)");
  train->add_option("--checkpoint_every", tf->checkpoint_every,
                    "Checkpoint every N steps (0: each epoch's end)");
  train->add_option(
      "--stats_every", tf->stats_every,
      "Per-layer statistics every N steps (0: every step, -1: never)");
  train->add_option("--seed", tf->seed, "Shuffling seed");
  train->add_flag("--no_shuffle", tf->no_shuffle,
                  "Visit the training set in order");
  train->add_option("--max_train_samples", tf->max_train_samples,
                    "Train on the first N samples only");
  train->add_option("--max_steps", tf->max_steps, "Stop after N steps");
  train->add_option("--label", tf->label, "Free text shown in job listings");
  train->add_option("--replicas", tf->replicas,
                    "Data-parallel replicas on the server's cluster (global "
                    "batch = replicas x batch)");
  train->add_option("--min_replicas", tf->min_replicas,
                    "Run on fewer replicas, down to N, when members are lost "
                    "(0: wait for all; the global batch stays the same)");
  train->add_flag("--watch", tf->watch,
                  "Follow the job until it ends; exit 0 only if it completed");
  train->add_flag("-q,--quiet", tf->quiet, "Print only the job id");
  AddWatchFlags(train, &tf->watch_flags);
  train->callback(
      [&cli, &g, tf] { cli.run = [&g, tf] { return RunTrain(g, *tf); }; });

  // watch; the jobs subcommands share its JOB argument's storage.
  auto job_id = std::make_shared<std::string>();
  auto wf = std::make_shared<WatchFlags>();
  CLI::App* watch = JobCommand(
      &app, "watch", "Follow a job's metrics until it ends", job_id.get());
  AddWatchFlags(watch, wf.get());
  watch->callback([&cli, &g, job_id, wf] {
    cli.run = [&g, job_id, wf] {
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      auto job = (*client)->GetJob(*job_id);
      if (!job.ok()) return Fail(job.status());
      return WatchJob(**client, g, *job, *wf);
    };
  });

  // jobs
  CLI::App* jobs = app.add_subcommand(
      "jobs", "List, inspect, cancel, pause and resume jobs");
  jobs->require_subcommand(1);
  struct ListFlags {
    std::string model, state;
  };
  auto lf = std::make_shared<ListFlags>();
  CLI::App* jlist = jobs->add_subcommand("list", "List jobs (oldest first)");
  jlist->add_option("--model", lf->model, "Only jobs of this model");
  jlist->add_option("--state", lf->state, "Only jobs in this state")
      ->check(CLI::IsMember(
          {"queued", "running", "paused", "completed", "cancelled", "failed"},
          CLI::ignore_case));
  jlist->callback([&cli, &g, lf] {
    cli.run = [&g, lf] {
      v1::ListJobsRequest req;
      req.set_model_id(lf->model);
      if (!lf->state.empty()) {
        v1::JobState st = v1::JOB_STATE_UNSPECIFIED;
        v1::JobState_Parse("JOB_STATE_" + absl::AsciiStrToUpper(lf->state),
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
  auto job_call = [&cli, &g, job_id](CLI::App* cmd, JobCall call) {
    cmd->callback([&cli, &g, job_id, call] {
      cli.run = [&g, job_id, call] {
        auto client = Connect(g);
        if (!client.ok()) return Fail(client.status());
        return PrintOr<v1::Job>(
            ((**client).*call)(*job_id), g,
            [](const v1::Job& j) { return FormatJob(j) + "\n"; });
      };
    });
  };
  job_call(
      JobCommand(jobs, "get", "Show a job's state and progress", job_id.get()),
      &Client::GetJob);
  job_call(JobCommand(jobs, "cancel", "Stop a job at the next mini-batch",
                      job_id.get()),
           &Client::CancelJob);
  job_call(JobCommand(jobs, "pause",
                      "Checkpoint and stop a job; resume continues it",
                      job_id.get()),
           &Client::PauseJob);
  job_call(
      JobCommand(jobs, "resume", "Continue a paused job from its checkpoint",
                 job_id.get()),
      &Client::ResumeJob);
}

}  // namespace nnlab::cli
