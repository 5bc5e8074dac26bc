#include "server/sweeps.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/status_macros.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "server/job_spec.h"
#include "server/log.h"
#include "server/storage.h"

namespace nnlab::server {

namespace pb = ::google::protobuf;

namespace {

bool Ended(v1::JobState s) {
  return s == v1::JOB_STATE_COMPLETED || s == v1::JOB_STATE_CANCELLED ||
         s == v1::JOB_STATE_FAILED;
}

// A started trial whose job has not ended (paused ones included).
bool Active(const v1::SweepTrial& t) {
  return !t.job_id().empty() && !Ended(t.state());
}

bool HigherIsBetter(const v1::SweepSpec& spec) {
  return spec.metric() != v1::SWEEP_METRIC_TEST_LOSS;
}

void SetNow(pb::Timestamp* t) {
  const absl::Time now = absl::Now();
  t->set_seconds(absl::ToUnixSeconds(now));
  t->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(now - absl::FromUnixSeconds(t->seconds()))));
}

double Seconds(const pb::Timestamp& t) {
  return static_cast<double>(t.seconds()) + t.nanos() * 1e-9;
}

std::string NewSweepId() {
  static std::mt19937_64 gen{std::random_device{}()};
  static absl::Mutex mu;
  absl::MutexLock lock(&mu);
  return absl::StrFormat("s-%012x", gen() & 0xFFFFFFFFFFFFull);
}

// The descriptor `path` ("job.a.b") names, for messages of the spec types;
// InvalidArgument naming `field` otherwise.
absl::StatusOr<const pb::FieldDescriptor*> ResolveField(
    const std::string& path, absl::string_view field) {
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  const pb::Descriptor* d = nullptr;
  if (parts[0] == "job") d = v1::JobSpec::descriptor();
  if (parts[0] == "model") d = v1::ModelSpec::descriptor();
  if (d == nullptr || parts.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": \"", path, "\" must be job.<field> or model.<field>"));
  }
  const pb::FieldDescriptor* f = nullptr;
  for (size_t i = 1; i < parts.size(); ++i) {
    if (d == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": \"", path, "\": ", parts[i - 1], " has no fields"));
    }
    f = d->FindFieldByName(parts[i]);
    if (f == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": \"", path, "\": no field \"", parts[i],
                       "\" in ", d->name()));
    }
    if (f->is_repeated()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": \"", path,
                       "\" is a repeated field; it cannot be searched"));
    }
    d = f->message_type();
  }
  if (path == "job.model_id") {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": job.model_id is set by the sweep"));
  }
  return f;
}

bool IsLayerActivation(const v1::LayerSpec& l) {
  return l.has_sigmoid() || l.has_tanh() || l.has_relu();
}

// RNG draws independent of the standard library's distributions (whose
// algorithms are implementation-defined): uniform in [0, 1).
double Uniform01(std::mt19937_64& gen) {
  return static_cast<double>(gen() >> 11) * 0x1.0p-53;
}

// Collects nothing: a value that does not parse is reported to the client,
// not to the server's log.
class SilentErrors : public pb::io::ErrorCollector {
 public:
  void AddError(int, int, const std::string&) override {}
};

bool IsIntegerField(const pb::FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32:
    case pb::FieldDescriptor::CPPTYPE_INT64:
    case pb::FieldDescriptor::CPPTYPE_UINT32:
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      return true;
    default:
      return false;
  }
}

}  // namespace

absl::Status ApplySweepParam(const v1::SweepParam& param, v1::ModelSpec* model,
                             v1::JobSpec* job) {
  const std::string& path = param.field();
  const std::string& value = param.value();
  const std::string where = absl::StrCat("\"", path, "\"");
  if (path == "model") {
    // A whole model (the lecture's cures differ in structure).
    v1::ModelSpec m;
    SilentErrors errors;
    pb::TextFormat::Parser parser;
    parser.RecordErrorsTo(&errors);
    if (!parser.ParseFromString(value, &m)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": the value is not a text-format ModelSpec"));
    }
    *model = std::move(m);
    return absl::OkStatus();
  }
  if (path == "model.activation") {
    v1::LayerSpec repl;
    if (value == "sigmoid") {
      repl.mutable_sigmoid();
    } else if (value == "tanh") {
      repl.mutable_tanh();
    } else if (value == "relu") {
      repl.mutable_relu();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": \"", value, "\" is not sigmoid, tanh or relu"));
    }
    int n = 0;
    for (v1::LayerSpec& l : *model->mutable_layers()) {
      if (!IsLayerActivation(l)) continue;
      const std::string name = l.name();
      const v1::InitKind init = l.init();
      l = repl;
      l.set_name(name);
      l.set_init(init);
      ++n;
    }
    if (n == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": the model has no activation layer"));
    }
    return absl::OkStatus();
  }
  if (path == "model.dropout_keep_prob") {
    float p = 0;
    if (!absl::SimpleAtof(value, &p)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": \"", value, "\" is not a number"));
    }
    int n = 0;
    for (v1::LayerSpec& l : *model->mutable_layers()) {
      if (!l.has_dropout()) continue;
      l.mutable_dropout()->set_keep_prob(p);
      ++n;
    }
    if (n == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": the model has no dropout layer"));
    }
    return absl::OkStatus();
  }
  NNLAB_ASSIGN_OR_RETURN(const pb::FieldDescriptor* leaf,
                         ResolveField(path, where));
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  pb::Message* msg = parts[0] == "job" ? static_cast<pb::Message*>(job)
                                       : static_cast<pb::Message*>(model);
  for (size_t i = 1; i + 1 < parts.size(); ++i) {
    const pb::FieldDescriptor* f =
        msg->GetDescriptor()->FindFieldByName(parts[i]);
    msg = msg->GetReflection()->MutableMessage(msg, f);
  }
  SilentErrors errors;
  pb::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  bool ok;
  if (leaf->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
    ok = parser.MergeFromString(
        value, msg->GetReflection()->MutableMessage(msg, leaf));
  } else {
    ok = parser.ParseFieldValueFromString(value, leaf, msg);
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": \"", value, "\" is not a valid value of that field"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::vector<v1::SweepParam>>> ExpandSweep(
    const v1::SweepSpec& spec) {
  if (!spec.job().model_id().empty()) {
    return absl::InvalidArgumentError(
        "spec.job.model_id: must be empty (each trial trains its own model)");
  }
  if (spec.model().layers_size() == 0) {
    return absl::InvalidArgumentError("spec.model.layers: empty");
  }
  if (spec.max_concurrent() < 0 || spec.max_concurrent() > 64) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.max_concurrent: ", spec.max_concurrent(), " is not in [0, 64]"));
  }
  if (spec.random_trials() < 0 || spec.random_trials() > kMaxSweepTrials) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.random_trials: ", spec.random_trials(),
                     " is not in [0, ", kMaxSweepTrials, "]"));
  }
  if (spec.early_stopping().min_steps() < 0 ||
      spec.early_stopping().min_trials() < 0) {
    return absl::InvalidArgumentError(
        "spec.early_stopping: min_steps and min_trials must be >= 0");
  }
  if (!v1::SweepMetric_IsValid(spec.metric())) {
    return absl::InvalidArgumentError("spec.metric: unknown metric");
  }
  const bool random = spec.random_trials() > 0;
  std::vector<const pb::FieldDescriptor*> leaves;
  int64_t grid = 1;
  for (int a = 0; a < spec.axes_size(); ++a) {
    const v1::SweepAxis& axis = spec.axes(a);
    const std::string name = absl::StrCat("spec.axes[", a, "]");
    const pb::FieldDescriptor* leaf = nullptr;
    if (axis.field() != "model" && axis.field() != "model.activation" &&
        axis.field() != "model.dropout_keep_prob") {
      NNLAB_ASSIGN_OR_RETURN(leaf, ResolveField(axis.field(), name + ".field"));
    }
    leaves.push_back(leaf);
    if (axis.values_size() == 0) {
      if (!random) {
        return absl::InvalidArgumentError(absl::StrCat(
            name, ".values: a grid search needs at least one value"));
      }
      const bool numeric =
          axis.field() == "model.dropout_keep_prob" ||
          (leaf != nullptr &&
           leaf->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE &&
           leaf->cpp_type() != pb::FieldDescriptor::CPPTYPE_STRING &&
           leaf->cpp_type() != pb::FieldDescriptor::CPPTYPE_ENUM &&
           leaf->cpp_type() != pb::FieldDescriptor::CPPTYPE_BOOL);
      if (!numeric) {
        return absl::InvalidArgumentError(absl::StrCat(
            name, ".values: \"", axis.field(),
            "\" is not numeric: a range (min, max) cannot be searched"));
      }
      if (!(axis.min() < axis.max()) || !std::isfinite(axis.max()) ||
          !std::isfinite(axis.min())) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, ".min: need finite min < max"));
      }
      if (axis.log_scale() && axis.min() <= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(name, ".min: a log scale needs min > 0"));
      }
    } else {
      grid *= axis.values_size();
      if (grid > kMaxSweepTrials) {
        return absl::InvalidArgumentError(absl::StrCat(
            "spec.axes: the grid has more than ", kMaxSweepTrials, " trials"));
      }
    }
  }
  std::vector<std::vector<v1::SweepParam>> trials;
  if (random) {
    std::mt19937_64 gen(spec.seed());
    for (int t = 0; t < spec.random_trials(); ++t) {
      std::vector<v1::SweepParam> params;
      for (int a = 0; a < spec.axes_size(); ++a) {
        const v1::SweepAxis& axis = spec.axes(a);
        v1::SweepParam p;
        p.set_field(axis.field());
        const double u = Uniform01(gen);
        if (axis.values_size() > 0) {
          const int i = std::min(axis.values_size() - 1,
                                 static_cast<int>(u * axis.values_size()));
          p.set_value(axis.values(i));
        } else {
          double x =
              axis.log_scale()
                  ? std::exp(std::log(axis.min()) +
                             u * (std::log(axis.max()) - std::log(axis.min())))
                  : axis.min() + u * (axis.max() - axis.min());
          if (leaves[a] != nullptr && IsIntegerField(leaves[a])) {
            p.set_value(absl::StrCat(static_cast<int64_t>(std::llround(x))));
          } else {
            p.set_value(absl::StrFormat("%.6g", x));
          }
        }
        params.push_back(std::move(p));
      }
      trials.push_back(std::move(params));
    }
  } else {
    for (int64_t t = 0; t < grid; ++t) {
      std::vector<v1::SweepParam> params(spec.axes_size());
      int64_t rest = t;
      for (int a = spec.axes_size() - 1; a >= 0; --a) {
        const v1::SweepAxis& axis = spec.axes(a);
        params[a].set_field(axis.field());
        params[a].set_value(axis.values(rest % axis.values_size()));
        rest /= axis.values_size();
      }
      trials.push_back(std::move(params));
    }
  }
  for (size_t t = 0; t < trials.size(); ++t) {
    v1::ModelSpec model = spec.model();
    v1::JobSpec job = spec.job();
    for (size_t a = 0; a < trials[t].size(); ++a) {
      absl::Status s = ApplySweepParam(trials[t][a], &model, &job);
      if (!s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("spec.axes[", a, "]: ", s.message()));
      }
    }
    absl::Status s = ValidateJobSpecFields(job);
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("trial ", t, ": ", s.message()));
    }
  }
  return trials;
}

namespace {

// Best of `t`'s evaluations at steps <= `step`; nullopt if none.
std::optional<double> BestUpTo(const v1::SweepTrial& t, int64_t step,
                               bool higher) {
  std::optional<double> best;
  for (int i = 0; i < t.eval_steps_size(); ++i) {
    if (t.eval_steps(i) > step) break;
    const double v = t.eval_values(i);
    if (!best || (higher ? v > *best : v < *best)) best = v;
  }
  return best;
}

}  // namespace

std::optional<std::string> MedianStopReason(const v1::Sweep& sweep, int index) {
  const v1::SweepSpec& spec = sweep.spec();
  const v1::EarlyStopping& es = spec.early_stopping();
  const v1::SweepTrial& t = sweep.trials(index);
  if (!es.enabled()) return std::nullopt;
  const bool higher = HigherIsBetter(spec);
  const size_t min_trials = es.min_trials() > 0 ? es.min_trials() : 1;
  // The trial's latest evaluation step that enough others have reached:
  // a trial running ahead of the others is judged where they can compare.
  for (int i = t.eval_steps_size() - 1; i >= 0; --i) {
    const int64_t s = t.eval_steps(i);
    if (s < es.min_steps()) return std::nullopt;
    std::vector<double> others;
    for (const v1::SweepTrial& o : sweep.trials()) {
      if (o.index() == index || o.eval_steps_size() == 0) continue;
      if (o.eval_steps(o.eval_steps_size() - 1) < s) continue;
      if (auto v = BestUpTo(o, s, higher)) others.push_back(*v);
    }
    if (others.size() < min_trials) continue;
    std::sort(others.begin(), others.end());
    const size_t n = others.size();
    const double median =
        n % 2 == 1 ? others[n / 2] : 0.5 * (others[n / 2 - 1] + others[n / 2]);
    const double mine = *BestUpTo(t, s, higher);
    if (higher ? mine < median : mine > median) {
      return absl::StrFormat(
          "median stopping rule: best %s %.4g at step %d is worse than the "
          "median %.4g of %d other trials",
          higher ? "test accuracy" : "test loss", mine, s, median, n);
    }
    return std::nullopt;
  }
  return std::nullopt;
}

void RankTrials(v1::Sweep* sweep) {
  const bool higher = HigherIsBetter(sweep->spec());
  std::vector<int32_t> order;
  for (const v1::SweepTrial& t : sweep->trials()) order.push_back(t.index());
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    const v1::SweepTrial& x = sweep->trials(a);
    const v1::SweepTrial& y = sweep->trials(b);
    if (x.has_metric() != y.has_metric()) return x.has_metric();
    if (!x.has_metric()) return false;
    return higher ? x.best_metric() > y.best_metric()
                  : x.best_metric() < y.best_metric();
  });
  sweep->clear_ranking();
  for (int32_t i : order) sweep->add_ranking(i);
}

struct SweepManager::Entry {
  v1::Sweep sweep;
  // Job id -> a watcher reading its evaluations.
  std::map<std::string, std::unique_ptr<Watcher>> watchers;
  absl::Time last_save = absl::InfinitePast();
  bool dirty = false;
};

SweepManager::SweepManager(SweepManagerOptions options, ModelRegistry* models,
                           JobManager* jobs)
    : options_(std::move(options)), models_(models), jobs_(jobs) {}

SweepManager::~SweepManager() { Shutdown(); }

std::string SweepManager::Path(const std::string& id) const {
  return absl::StrCat(options_.dir, "/", id, ".sweep");
}

absl::Status SweepManager::Start() {
  NNLAB_RETURN_IF_ERROR(MakeDirs(options_.dir));
  CleanTempFiles(options_.dir);
  std::vector<std::pair<absl::Time, std::string>> loaded;
  {
    absl::MutexLock lock(&mu_);
    for (const std::string& name : ListFiles(options_.dir, ".sweep")) {
      auto e = std::make_unique<Entry>();
      absl::Status s =
          ReadRecord(absl::StrCat(options_.dir, "/", name), &e->sweep);
      if (!s.ok() || !IsValidId(e->sweep.sweep_id())) {
        LogError(absl::StrCat("skipping sweep record ", name, ": ",
                              s.ok() ? "bad id" : s.ToString()));
        continue;
      }
      const std::string id = e->sweep.sweep_id();
      loaded.push_back(
          {absl::FromUnixSeconds(e->sweep.create_time().seconds()) +
               absl::Nanoseconds(e->sweep.create_time().nanos()),
           id});
      sweeps_[id] = std::move(e);
    }
    std::sort(loaded.begin(), loaded.end());
    for (const auto& [t, id] : loaded) order_.push_back(id);
  }
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void SweepManager::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  for (auto& [id, e] : sweeps_) {
    if (e->dirty) {
      absl::Status s = Save(*e);
      if (!s.ok()) LogError(absl::StrCat("sweep ", id, ": ", s.ToString()));
    }
    e->watchers.clear();
  }
}

absl::Status SweepManager::Save(Entry& e) {
  e.last_save = absl::Now();
  e.dirty = false;
  return WriteRecord(Path(e.sweep.sweep_id()), e.sweep);
}

absl::StatusOr<SweepManager::Entry*> SweepManager::Find(
    const std::string& id) const {
  NNLAB_RETURN_IF_ERROR(CheckId("sweep_id", id));
  auto it = sweeps_.find(id);
  if (it == sweeps_.end()) {
    return absl::NotFoundError(absl::StrCat("no sweep ", id));
  }
  return it->second.get();
}

absl::StatusOr<v1::Sweep> SweepManager::StartSweep(const v1::SweepSpec& spec) {
  NNLAB_ASSIGN_OR_RETURN(auto trials, ExpandSweep(spec));
  if (jobs_->shutting_down()) {
    return absl::UnavailableError("the server is shutting down");
  }
  auto e = std::make_unique<Entry>();
  v1::Sweep& sweep = e->sweep;
  const std::string id = NewSweepId();
  sweep.set_sweep_id(id);
  *sweep.mutable_spec() = spec;
  sweep.set_state(v1::SWEEP_STATE_RUNNING);
  SetNow(sweep.mutable_create_time());
  // Every model first: a spec the model registry rejects fails the sweep
  // before any job runs.
  std::vector<std::string> created;
  for (size_t t = 0; t < trials.size(); ++t) {
    v1::SweepTrial* trial = sweep.add_trials();
    trial->set_index(static_cast<int32_t>(t));
    v1::CreateModelRequest req;
    *req.mutable_spec() = spec.model();
    v1::JobSpec unused;
    for (const v1::SweepParam& p : trials[t]) {
      *trial->add_params() = p;
      NNLAB_RETURN_IF_ERROR(
          ApplySweepParam(p, req.mutable_spec(), &unused));  // Checked.
    }
    req.set_model_id(absl::StrCat(id, "-t", t));
    auto entry = models_->Create(req);
    if (!entry.ok()) {
      for (const std::string& m : created) (void)models_->Delete(m);
      return absl::Status(
          entry.status().code(),
          absl::StrCat("trial ", t, ": ", entry.status().message()));
    }
    created.push_back(req.model_id());
    trial->set_model_id(req.model_id());
  }
  RankTrials(&sweep);
  absl::MutexLock lock(&mu_);
  NNLAB_RETURN_IF_ERROR(Save(*e));
  Tick(*e);  // Starts the first trials now.
  NNLAB_RETURN_IF_ERROR(Save(*e));
  v1::Sweep out = e->sweep;
  order_.push_back(id);
  sweeps_[id] = std::move(e);
  LogInfo(absl::StrCat("sweep ", id, " started: ", trials.size(), " trials"));
  return out;
}

absl::StatusOr<v1::Sweep> SweepManager::Get(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  NNLAB_ASSIGN_OR_RETURN(Entry * e, Find(id));
  return e->sweep;
}

std::vector<v1::Sweep> SweepManager::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::Sweep> out;
  for (const std::string& id : order_) out.push_back(sweeps_.at(id)->sweep);
  return out;
}

absl::StatusOr<v1::Sweep> SweepManager::Cancel(const std::string& id) {
  absl::MutexLock lock(&mu_);
  NNLAB_ASSIGN_OR_RETURN(Entry * e, Find(id));
  v1::Sweep& sweep = e->sweep;
  if (sweep.state() != v1::SWEEP_STATE_RUNNING &&
      sweep.state() != v1::SWEEP_STATE_PAUSED) {
    return absl::FailedPreconditionError(
        absl::StrCat("sweep ", id, " has ended"));
  }
  sweep.set_state(v1::SWEEP_STATE_CANCELLED);
  SetNow(sweep.mutable_end_time());
  for (v1::SweepTrial& t : *sweep.mutable_trials()) {
    if (t.job_id().empty()) {
      t.set_state(v1::JOB_STATE_CANCELLED);
      t.set_reason("the sweep was cancelled before the trial started");
    } else if (Active(t)) {
      auto job = jobs_->Cancel(t.job_id());
      // An ended job cannot be cancelled; the next pass records its end.
      if (!job.ok() && !absl::IsFailedPrecondition(job.status())) {
        LogError(absl::StrCat("sweep ", id, ": ", job.status().ToString()));
      }
    }
  }
  NNLAB_RETURN_IF_ERROR(Save(*e));
  return sweep;
}

absl::StatusOr<v1::Sweep> SweepManager::Pause(const std::string& id) {
  return PauseOrResume(id, /*pause=*/true);
}

absl::StatusOr<v1::Sweep> SweepManager::Resume(const std::string& id) {
  return PauseOrResume(id, /*pause=*/false);
}

absl::StatusOr<v1::Sweep> SweepManager::PauseOrResume(const std::string& id,
                                                      bool pause) {
  absl::MutexLock lock(&mu_);
  NNLAB_ASSIGN_OR_RETURN(Entry * e, Find(id));
  v1::Sweep& sweep = e->sweep;
  if (sweep.state() !=
      (pause ? v1::SWEEP_STATE_RUNNING : v1::SWEEP_STATE_PAUSED)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "sweep ", id, pause ? " is not running" : " is not paused"));
  }
  sweep.set_state(pause ? v1::SWEEP_STATE_PAUSED : v1::SWEEP_STATE_RUNNING);
  for (v1::SweepTrial& t : *sweep.mutable_trials()) {
    if (!Active(t)) continue;
    absl::StatusOr<v1::Job> job;
    if (pause) {
      job = jobs_->Pause(t.job_id());
    } else {
      // Queued trials were never paused; only paused ones resume.
      job = jobs_->Get(t.job_id());
      if (!job.ok() || job->state() != v1::JOB_STATE_PAUSED) continue;
      job = jobs_->Resume(t.job_id());
    }
    // FailedPrecondition: the job ended or moved on meanwhile, as expected.
    if (job.ok()) {
      t.set_state(job->state());
    } else if (!absl::IsFailedPrecondition(job.status())) {
      LogError(absl::StrCat("sweep ", id, ": ", job.status().ToString()));
    }
  }
  NNLAB_RETURN_IF_ERROR(Save(*e));
  return sweep;
}

void SweepManager::Loop() {
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    for (auto& [id, e] : sweeps_) {
      const bool now = Tick(*e);
      if (now || (e->dirty && absl::Now() - e->last_save > absl::Seconds(1))) {
        absl::Status s = Save(*e);
        if (!s.ok()) LogError(absl::StrCat("sweep ", id, ": ", s.ToString()));
      }
    }
    mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.poll_interval);
  }
}

bool SweepManager::Tick(Entry& e) {
  v1::Sweep& sweep = e.sweep;
  const bool higher = HigherIsBetter(sweep.spec());
  bool save_now = false;
  bool any_active = false;
  for (v1::SweepTrial& t : *sweep.mutable_trials()) {
    if (!Active(t)) continue;
    auto job = jobs_->Get(t.job_id());
    if (!job.ok()) {
      t.set_state(v1::JOB_STATE_FAILED);
      t.set_reason(std::string(job.status().message()));
      save_now = true;
      continue;
    }
    // Evaluations, through a watcher: polling last_eval could miss some.
    auto& w = e.watchers[t.job_id()];
    bool drained = false;
    if (w == nullptr) {
      Watcher::Options wo;
      wo.omit_layer_stats = true;
      auto made = jobs_->Watch(t.job_id(), wo);
      if (made.ok()) w = std::move(*made);
    }
    if (w == nullptr) {
      drained = true;  // History unreadable: the job record alone counts.
    } else {
      v1::MetricEvent ev;
      for (;;) {
        const Watcher::Result r = w->Next(absl::ZeroDuration(), &ev);
        if (r == Watcher::Result::kEnded) drained = true;
        if (r != Watcher::Result::kEvent) break;
        if (ev.phase() != v1::PHASE_EVAL) continue;
        const int n = t.eval_steps_size();
        if (n > 0 && ev.step() <= t.eval_steps(n - 1)) continue;
        const double v = higher ? ev.accuracy() : ev.loss();
        t.add_eval_steps(ev.step());
        t.add_eval_values(v);
        if (!t.has_metric() ||
            (higher ? v > t.best_metric() : v < t.best_metric())) {
          t.set_has_metric(true);
          t.set_best_metric(v);
          t.set_best_step(ev.step());
        }
        e.dirty = true;
      }
    }
    t.set_step(job->step());
    t.set_total_steps(job->total_steps());
    const double start = Seconds(job->create_time());
    const double end =
        Ended(job->state()) && job->has_end_time()
            ? Seconds(job->end_time())
            : absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
    t.set_seconds(std::max(0.0, end - start));
    // An ended job counts as ended once its events are all read.
    if (!Ended(job->state()) || drained) {
      if (t.state() != job->state()) save_now = true;
      t.set_state(job->state());
      if (job->state() == v1::JOB_STATE_FAILED && t.reason().empty()) {
        t.set_reason(job->failure_reason());
      }
    }
    if (Ended(t.state())) {
      e.watchers.erase(t.job_id());
      continue;
    }
    any_active = true;
    if (!t.stopped_early() && job->state() == v1::JOB_STATE_RUNNING) {
      if (auto why = MedianStopReason(sweep, t.index())) {
        auto c = jobs_->Cancel(t.job_id());
        if (c.ok()) {
          t.set_stopped_early(true);
          t.set_reason(*why);
          save_now = true;
          LogInfo(absl::StrCat("sweep ", sweep.sweep_id(), " trial ", t.index(),
                               ": ", *why));
        }
      }
    }
  }
  (void)any_active;
  if (sweep.state() == v1::SWEEP_STATE_RUNNING && !jobs_->shutting_down()) {
    const int k = std::max(1, sweep.spec().max_concurrent());
    int active = 0;
    for (const v1::SweepTrial& t : sweep.trials()) active += Active(t);
    for (v1::SweepTrial& t : *sweep.mutable_trials()) {
      if (active >= k) break;
      if (!t.job_id().empty() || t.state() != v1::JOB_STATE_UNSPECIFIED) {
        continue;
      }
      v1::ModelSpec model = sweep.spec().model();
      v1::JobSpec spec = sweep.spec().job();
      for (const v1::SweepParam& p : t.params()) {
        (void)ApplySweepParam(p, &model, &spec);  // Checked at StartSweep.
      }
      spec.set_model_id(t.model_id());
      spec.set_label(
          absl::StrCat("sweep ", sweep.sweep_id(), " trial ", t.index()));
      auto job = jobs_->StartJob(spec);
      save_now = true;
      if (!job.ok()) {
        // A full queue is transient: the trial waits for the next pass.
        if (absl::IsResourceExhausted(job.status())) break;
        t.set_state(v1::JOB_STATE_FAILED);
        t.set_reason(std::string(job.status().message()));
        continue;
      }
      t.set_job_id(job->job_id());
      t.set_state(job->state());
      t.set_total_steps(job->total_steps());
      ++active;
    }
    sweep.set_max_active(std::max(sweep.max_active(), active));
    bool done = true;
    for (const v1::SweepTrial& t : sweep.trials()) {
      if (!Ended(t.state())) done = false;
    }
    if (done) {
      sweep.set_state(v1::SWEEP_STATE_COMPLETED);
      SetNow(sweep.mutable_end_time());
      LogInfo(absl::StrCat("sweep ", sweep.sweep_id(), " completed"));
    }
  }
  RankTrials(&sweep);
  if (save_now) e.dirty = true;
  return save_now;
}

}  // namespace nnlab::server
