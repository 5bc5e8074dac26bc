#include "server/train_session.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/status_macros.h"
#include "core/train/trainer.h"
#include "server/log.h"
#include "server/weights.h"

namespace nnlab::server {

class TrainSessions::Session {
 public:
  explicit Session(std::weak_ptr<ModelEntry> entry)
      : entry_(std::move(entry)) {}

  std::shared_ptr<ModelEntry> entry() const { return entry_.lock(); }

  // The training state; step_mu serialises steps on the model.
  absl::Mutex step_mu;
  std::unique_ptr<Model> model ABSL_GUARDED_BY(step_mu);
  std::unique_ptr<Trainer> trainer ABSL_GUARDED_BY(step_mu);
  std::string config ABSL_GUARDED_BY(step_mu);
  // The snapshot this session published last (held so its address stays
  // unique while compared).
  WeightsPtr published ABSL_GUARDED_BY(step_mu);

  // What is not yet on disk: acknowledged steps since the last write, the
  // time the first of them was acknowledged, and a write that failed.
  absl::Mutex write_mu;
  int64_t pending ABSL_GUARDED_BY(write_mu) = 0;
  absl::Time pending_since ABSL_GUARDED_BY(write_mu);
  absl::Status failed ABSL_GUARDED_BY(write_mu);

 private:
  const std::weak_ptr<ModelEntry> entry_;
};

TrainSessions::TrainSessions(ModelRegistry* models, const Limits& limits,
                             absl::Duration persist_interval)
    : models_(models),
      limits_(limits),
      // A zero or negative interval would spin the flusher.
      persist_interval_(std::max(persist_interval, absl::Milliseconds(1))),
      flusher_([this] { FlusherLoop(); }) {}

TrainSessions::~TrainSessions() { Shutdown(); }

std::shared_ptr<TrainSessions::Session> TrainSessions::SessionFor(
    const std::shared_ptr<ModelEntry>& entry) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<Session>& s = sessions_[entry->id()];
  if (s == nullptr || s->entry() != entry) s = std::make_shared<Session>(entry);
  return s;
}

absl::Status TrainSessions::Step(const std::string& model_id,
                                 const v1::TrainStepRequest& req,
                                 const std::function<bool()>& cancelled,
                                 v1::TrainStepResponse* resp) {
  NNLAB_ASSIGN_OR_RETURN(std::shared_ptr<ModelEntry> e, models_->Get(model_id));
  if (e->is_gan()) {
    return absl::InvalidArgumentError(
        "model_id names a GAN pair; TrainStep trains single networks");
  }
  NNLAB_ASSIGN_OR_RETURN(Tensor x,
                         TensorFromProto(req.inputs(), "inputs", limits_));
  NNLAB_ASSIGN_OR_RETURN(Tensor y,
                         TensorFromProto(req.targets(), "targets", limits_));
  if (x.rank() < 1 || y.rank() < 1 || x.dim(0) != y.dim(0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "inputs ", ShapeToString(x.shape()), " and targets ",
        ShapeToString(y.shape()), " must have the same batch size"));
  }
  NNLAB_RETURN_IF_ERROR(
      CheckBatchSize(e->sample_elements(ModelPart::kMain), x.dim(0), limits_));
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("the server is shutting down");
  }
  std::shared_ptr<Session> s = SessionFor(e);
  absl::MutexLock lock(&s->step_mu);
  {
    // A write that failed is retried before more steps pile up behind it.
    absl::MutexLock wlock(&s->write_mu);
    if (!s->failed.ok()) {
      s->failed = models_->Flush(e.get());
      NNLAB_RETURN_IF_ERROR(s->failed);
      s->pending = 0;
    }
  }
  NNLAB_RETURN_IF_ERROR(e->BeginTraining("client"));
  // Ownership lasts for one step, so jobs can run between client steps.
  struct Release {
    ModelEntry* e;
    ~Release() { e->EndTraining("client"); }
  } release{e.get()};
  if (cancelled()) {
    return absl::CancelledError(
        "the call was cancelled or its deadline passed");
  }
  WeightsPtr current = e->weights();
  if (s->model == nullptr) {
    NNLAB_ASSIGN_OR_RETURN(s->model, e->Instantiate(ModelPart::kMain));
  }
  const std::string config =
      req.has_optimizer() ? req.optimizer().SerializeAsString() : s->config;
  if (s->trainer == nullptr || config != s->config) {
    v1::OptimizerConfig proto;
    proto.ParseFromString(config);
    TrainOptions opts;
    NNLAB_ASSIGN_OR_RETURN(opts.optimizer,
                           OptimizerFromProto(proto, "optimizer"));
    NNLAB_ASSIGN_OR_RETURN(s->trainer, Trainer::Create(s->model.get(), opts));
    s->config = config;
  }
  // Weights published by someone else (a job, an import) since this
  // session's last step replace the session's copy.
  if (current != s->published) {
    NNLAB_RETURN_IF_ERROR(LoadWeights(*current, s->model.get()));
  }
  StepStats stats;
  NNLAB_RETURN_IF_ERROR(s->trainer->TrainStep(x, y, req.layer_stats(), &stats));
  const int64_t trained = current->trained_steps + 1;
  WeightsPtr published = CaptureWeights(s->model.get(), trained);
  s->published = published;
  e->Publish(std::move(published));
  {
    absl::MutexLock wlock(&s->write_mu);
    if (s->pending++ == 0) s->pending_since = absl::Now();
  }
  v1::MetricEvent* m = resp->mutable_metrics();
  StepStatsToEvent(stats, m);
  m->set_step(trained);
  m->set_sequence(trained - 1);
  SetTimestampNow(m->mutable_time());
  return absl::OkStatus();
}

absl::Status TrainSessions::Write(Session* s) {
  std::shared_ptr<ModelEntry> e = s->entry();
  absl::MutexLock wlock(&s->write_mu);
  if (e == nullptr) {  // Deleted: nothing left to keep.
    s->pending = 0;
    s->failed = absl::OkStatus();
    return absl::OkStatus();
  }
  if (s->pending == 0 && s->failed.ok()) return absl::OkStatus();
  // Flush writes the newest weights, which include every step counted here.
  s->failed = models_->Flush(e.get());
  if (s->failed.ok()) {
    s->pending = 0;
  } else {
    // The flusher tries again an interval later, not on every tick.
    s->pending_since = absl::Now();
  }
  return s->failed;
}

absl::Status TrainSessions::Persist(const std::string& model_id) {
  std::shared_ptr<Session> s;
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(model_id);
    if (it == sessions_.end()) return absl::OkStatus();
    s = it->second;
  }
  return Write(s.get());
}

void TrainSessions::FlusherLoop() {
  // Wakes a few times per interval, so a step waits at most about 1.25
  // intervals for its write.
  const absl::Duration tick = persist_interval_ / 4;
  while (true) {
    std::vector<std::shared_ptr<Session>> all;
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), tick)) return;
      for (auto it = sessions_.begin(); it != sessions_.end();) {
        // Sessions of deleted models go (their training state with them).
        if (it->second->entry() == nullptr) {
          it = sessions_.erase(it);
        } else {
          all.push_back(it->second);
          ++it;
        }
      }
    }
    // Checked outside mu_: write_mu is held across a write.
    const absl::Time now = absl::Now();
    std::vector<std::shared_ptr<Session>> due;
    for (const auto& s : all) {
      absl::MutexLock wlock(&s->write_mu);
      if (s->pending > 0 && now - s->pending_since >= persist_interval_) {
        due.push_back(s);
      }
    }
    for (const auto& s : due) {
      absl::Status w = Write(s.get());
      if (!w.ok()) {
        LogError(absl::StrCat("saving client-trained model ",
                              s->entry() ? s->entry()->id() : "(deleted)", ": ",
                              w.ToString(), " (retried)"));
      }
    }
  }
}

void TrainSessions::Shutdown() {
  std::vector<std::shared_ptr<Session>> all;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    for (const auto& [id, s] : sessions_) all.push_back(s);
  }
  flusher_.join();
  for (const auto& s : all) {
    // Waits for a step in flight on the model, whose ack comes before the
    // write below.
    absl::MutexLock lock(&s->step_mu);
    absl::Status w = Write(s.get());
    if (!w.ok()) {
      LogError(absl::StrCat("saving client-trained model at shutdown: ",
                            w.ToString()));
    }
  }
}

}  // namespace nnlab::server
