#include "server/jobs.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/data/sequence_data.h"
#include "core/status_macros.h"
#include "core/train/gan_trainer.h"
#include "core/train/run_state.h"
#include "core/train/trainer.h"
#include "server/cluster/distributed.h"
#include "server/cluster/remote_job.h"
#include "server/event_log.h"
#include "server/job_spec.h"
#include "server/log.h"
#include "server/storage.h"
#include "server/storage.pb.h"

namespace nnlab::server {

enum StopRequest : int { kNoStop = 0, kPause = 1, kCancel = 2, kShutdown = 3 };

// Jobs this server can have running on cluster workers at once.
constexpr int kRemoteRunners = 8;

class Job {
 public:
  Job(std::string job_id, const JobManagerOptions& options)
      : id(std::move(job_id)),
        history(std::make_shared<JobHistory>(
            id, absl::StrCat(options.dir, "/", id, ".events"),
            options.history_limit)) {}

  const std::string id;
  // Taken before the history's lock when both are held (a record update
  // and the event that reports it).
  mutable absl::Mutex mu;
  v1::Job record ABSL_GUARDED_BY(mu);
  int64_t base_trained_steps ABSL_GUARDED_BY(mu) = 0;
  // The events and their watchers; shared with the watchers.
  const std::shared_ptr<JobHistory> history;
  std::atomic<int> stop{kNoStop};
  // The checkpoint Start() chose for a job it re-queued; the next Train
  // consumes it instead of reading the files again. Only the worker running
  // the job (or Start, before workers exist) touches it.
  std::unique_ptr<StoredCheckpoint> resume_ckpt;
  // Held across taking and writing a snapshot of `record` (SaveRecord), so
  // the file always ends with the newest snapshot although the run and
  // its checkpoint writer both save it. Taken before `mu`, never inside.
  absl::Mutex record_io;
  // A distributed job put back in the queue by a cluster fault runs again
  // no sooner than this (so an attempt that fails at once cannot spin).
  // Only the worker running the job touches it.
  absl::Time retry_at = absl::InfinitePast();
  // Where the job runs (JobManager::PlaceLocked); written under the
  // manager's mu_ by the worker thread that runs the job.
  v1::Member placed;
};

namespace {

std::string NewJobId() {
  static std::mt19937_64 gen{std::random_device{}()};
  static absl::Mutex mu;
  absl::MutexLock lock(&mu);
  return absl::StrFormat("j-%012x", gen() & 0xFFFFFFFFFFFFull);
}

}  // namespace

JobManager::JobManager(JobManagerOptions options, ModelRegistry* models,
                       DatasetRegistry* datasets)
    : options_(std::move(options)),
      checkpoints_(options_.dir),
      models_(models),
      datasets_(datasets) {}

JobManager::~JobManager() { Shutdown(); }

std::string JobManager::PathFor(const std::string& id,
                                absl::string_view ext) const {
  return absl::StrCat(options_.dir, "/", id, ext);
}

absl::Status JobManager::SaveRecord(const std::shared_ptr<Job>& job) {
  absl::MutexLock io(&job->record_io);
  StoredJob stored;
  {
    absl::MutexLock lock(&job->mu);
    *stored.mutable_job() = job->record;
    stored.set_base_trained_steps(job->base_trained_steps);
  }
  absl::Status s = WriteRecord(PathFor(job->id, ".job"), stored);
  if (!s.ok()) LogError(absl::StrCat("job ", job->id, ": ", s.ToString()));
  return s;
}

absl::Status JobManager::CommitCheckpoint(const std::shared_ptr<Job>& job,
                                          const StoredCheckpoint& ckpt) {
  const int64_t step = ckpt.trainer().step();
  // The history up to this step is durable before the checkpoint that
  // makes the job resume after it.
  job->history->SyncLog();
  absl::Status written = checkpoints_.Write(job->id, ckpt);
  if (!written.ok()) {
    return absl::Status(written.code(),
                        absl::StrCat("checkpoint at step ", step,
                                     " failed: ", written.message()));
  }
  {
    absl::MutexLock lock(&job->mu);
    job->record.set_checkpoint_step(step);
  }
  return SaveRecord(job);
}

namespace {

// A checkpoint's fields other than the run state (the model file's spec
// is the caller's to add).
StoredCheckpoint CheckpointHeader(const std::string& job_id) {
  StoredCheckpoint header;
  header.set_job_id(job_id);
  header.mutable_model()->set_format_version(1);
  return header;
}

// The checkpoint of `state`, made on the writer's thread: `header` with the
// run state filled in (`base_steps`: the model's steps before this run).
CheckpointWriter::Build CheckpointOf(const StoredCheckpoint& header,
                                     RunState state, int64_t base_steps) {
  auto captured = std::make_shared<const RunState>(std::move(state));
  return [header, captured, base_steps] {
    StoredCheckpoint ckpt = header;
    RunStateToProto(*captured, base_steps + captured->step, &ckpt);
    return ckpt;
  };
}

// The end of a run that ended with `status`: a paused or interrupted run
// takes its resume point (`checkpoint`), and every checkpoint is on disk
// before the run reports its end. A run that succeeded fails if its last
// checkpoints could not be written.
absl::Status FinishCheckpoints(int stop,
                               const std::function<absl::Status()>& checkpoint,
                               CheckpointWriter* writer, absl::Status status) {
  if (absl::IsCancelled(status) && (stop == kPause || stop == kShutdown)) {
    absl::Status s = checkpoint();
    if (s.ok()) s = writer->Flush();
    if (!s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("checkpoint failed: ", s.message()));
    }
    return status;
  }
  absl::Status written = writer->Flush();
  return status.ok() ? written : status;
}

}  // namespace

void JobManager::SetState(const std::shared_ptr<Job>& job, v1::JobState state,
                          const std::string& message) {
  {
    absl::MutexLock lock(&job->mu);
    job->record.set_state(state);
    if (state == v1::JOB_STATE_FAILED) job->record.set_failure_reason(message);
    if (state == v1::JOB_STATE_RUNNING) {
      SetTimestampNow(job->record.mutable_start_time());
      // Why it was queued or paused is history now (its state event keeps
      // it).
      job->record.clear_failure_reason();
    }
    if (IsTerminalState(state)) SetTimestampNow(job->record.mutable_end_time());
    v1::MetricEvent e;
    e.set_phase(v1::PHASE_STATE);
    e.set_step(job->record.step());
    e.set_epoch(job->record.epoch());
    e.set_job_state(state);
    e.set_message(message);
    if (IsTerminalState(state)) {
      job->history->End(std::move(e));
    } else {
      job->history->Append(std::move(e));
    }
  }
  // The record acknowledges the state; the history leading to it goes first.
  job->history->SyncLog();
  // Nothing is appended after the terminal state: the log is closed and the
  // history leaves memory once its last watcher is done.
  if (IsTerminalState(state)) job->history->CloseLog();
  SaveRecord(job).IgnoreError();  // Logged by SaveRecord.
  LogInfo(absl::StrCat("job ", job->id, " ", v1::JobState_Name(state),
                       message.empty() ? "" : ": ", message));
}

absl::Status JobManager::Start() {
  NNLAB_RETURN_IF_ERROR(MakeDirs(options_.dir));
  const int cleaned = CleanTempFiles(options_.dir);
  if (cleaned > 0) {
    LogInfo(absl::StrCat("removed ", cleaned, " temp files in ", options_.dir));
  }
  std::vector<std::shared_ptr<Job>> loaded;
  for (const std::string& name : ListFiles(options_.dir, ".job")) {
    StoredJob stored;
    absl::Status s = ReadRecord(absl::StrCat(options_.dir, "/", name), &stored);
    if (s.ok() && !IsValidId(stored.job().job_id())) {
      s = absl::DataLossError("bad job id");
    }
    if (s.ok() && (stored.base_trained_steps() < 0 ||
                   stored.base_trained_steps() > kMaxSteps)) {
      s = absl::DataLossError("base_trained_steps out of range");
    }
    if (!s.ok()) {
      LogError(absl::StrCat("skipping job file ", name, ": ", s.ToString()));
      continue;
    }
    auto job = std::make_shared<Job>(stored.job().job_id(), options_);
    absl::MutexLock lock(&job->mu);
    job->record = stored.job();
    job->base_trained_steps = stored.base_trained_steps();
    loaded.push_back(job);
  }
  // In creation order. The keys are read one job at a time: a comparator
  // holding two jobs' locks would order them both ways (a lock-order
  // cycle, which Abseil's deadlock detector rightly kills the process for).
  using Key = std::pair<int64_t, int32_t>;  // create_time: seconds, nanos.
  std::vector<std::pair<Key, std::shared_ptr<Job>>> by_time;
  for (const auto& job : loaded) {
    Key key;
    {
      absl::MutexLock lock(&job->mu);
      key = {job->record.create_time().seconds(),
             job->record.create_time().nanos()};
    }
    by_time.emplace_back(key, job);
  }
  std::stable_sort(
      by_time.begin(), by_time.end(),
      [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < by_time.size(); ++i) {
    loaded[i] = std::move(by_time[i].second);
  }
  int resumed = 0;
  for (const auto& job : loaded) {
    v1::JobState state;
    int64_t ckpt_step, step;
    std::string model_id;
    {
      absl::MutexLock lock(&job->mu);
      state = job->record.state();
      ckpt_step = job->record.checkpoint_step();
      step = job->record.step();
      model_id = job->record.spec().model_id();
    }
    const bool interrupted =
        state == v1::JOB_STATE_RUNNING || state == v1::JOB_STATE_QUEUED;
    // The checkpoint files, not the record, say where an unfinished job
    // resumes: a crash between writing a checkpoint and the record leaves
    // the record behind, and a corrupt newest checkpoint falls back to the
    // one before it.
    absl::Status resumable = absl::OkStatus();
    if (!IsTerminalState(state)) {
      auto ckpt = std::make_unique<StoredCheckpoint>();
      absl::Status cs = checkpoints_.Read(job->id, ckpt.get());
      if (cs.ok()) {
        ckpt_step = ckpt->trainer().step();
        absl::MutexLock lock(&job->mu);
        job->record.set_checkpoint_step(ckpt_step);
        if (interrupted) job->resume_ckpt = std::move(ckpt);
      } else if (!absl::IsNotFound(cs) || ckpt_step > 0) {
        resumable = cs;
      }
    }
    // History: keep what the checkpoint covers for jobs that will redo the
    // rest; rewrite the log so it matches.
    std::vector<v1::MetricEvent> events =
        ReadEventLog(PathFor(job->id, ".events"));
    if (resumable.ok() && (interrupted || state == v1::JOB_STATE_PAUSED)) {
      events.erase(std::remove_if(events.begin(), events.end(),
                                  [&](const v1::MetricEvent& e) {
                                    return e.step() > ckpt_step;
                                  }),
                   events.end());
    }
    // A log that cannot be rewritten is logged by Restore; the job goes on
    // with its history in memory only.
    job->history->Restore(std::move(events), /*append=*/!IsTerminalState(state))
        .IgnoreError();
    {
      absl::MutexLock lock(&mu_);
      jobs_[job->id] = job;
      order_.push_back(job->id);
    }
    if (IsTerminalState(state)) {
      job->history->MarkEnded();
      continue;
    }
    if (!resumable.ok()) {
      SetState(
          job, v1::JOB_STATE_FAILED,
          absl::StrCat("cannot resume after restart: ", resumable.ToString()));
      continue;
    }
    // A paused or interrupted job still owns its model.
    absl::StatusOr<std::shared_ptr<ModelEntry>> entry = models_->Get(model_id);
    absl::Status own =
        entry.ok() ? (*entry)->BeginTraining(job->id) : entry.status();
    if (!own.ok()) {
      SetState(job, v1::JOB_STATE_FAILED,
               absl::StrCat("cannot resume after restart: ", own.ToString()));
      continue;
    }
    if (interrupted) {
      {
        absl::MutexLock lock(&job->mu);
        job->record.set_step(ckpt_step);
        job->record.set_resume_count(job->record.resume_count() + 1);
      }
      SetState(
          job, v1::JOB_STATE_QUEUED,
          absl::StrCat("server restarted at step ", step,
                       "; resuming from the checkpoint at step ", ckpt_step));
      absl::MutexLock lock(&mu_);
      queue_.push_back(job);
      ++resumed;
    }
  }
  LogInfo(absl::StrCat("loaded ", loaded.size(), " jobs; ", resumed,
                       " interrupted jobs queued to resume"));
  // Threads beyond max_running only run jobs placed on cluster workers
  // (PlaceLocked keeps max_running jobs at most on this server).
  const int threads = std::max(1, options_.max_running) +
                      (options_.cluster != nullptr ? kRemoteRunners : 0);
  for (int i = 0; i < threads; ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
  return absl::OkStatus();
}

void JobManager::Shutdown() {
  if (shutting_down_.exchange(true)) {
    for (auto& w : workers_) {
      if (w.joinable()) w.join();
    }
    return;
  }
  std::vector<std::shared_ptr<Job>> all;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, job] : jobs_) all.push_back(job);
  }
  for (const auto& job : all) {
    job->stop.store(kShutdown);
    job->history->Notify();
  }
  for (auto& w : workers_) {
    if (w.joinable()) w.join();
  }
}

absl::StatusOr<std::shared_ptr<Job>> JobManager::Find(
    const std::string& id) const {
  NNLAB_RETURN_IF_ERROR(CheckId("job_id", id));
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) {
    return absl::NotFoundError(absl::StrCat("job \"", id, "\" not found"));
  }
  return it->second;
}

absl::Status JobManager::ValidateSpec(const v1::JobSpec& spec,
                                      std::shared_ptr<ModelEntry>* entry,
                                      int64_t* total_steps) {
  NNLAB_ASSIGN_OR_RETURN(*entry, models_->Get(spec.model_id()));
  NNLAB_RETURN_IF_ERROR(ValidateJobSpecFields(spec));
  NNLAB_ASSIGN_OR_RETURN(std::shared_ptr<const DatasetPair> data,
                         datasets_->Get(spec.dataset()));
  NNLAB_ASSIGN_OR_RETURN(
      *total_steps, CheckJobSpecAgainst(spec, **entry, *data, options_.limits));
  // Data-parallel jobs (server/cluster/distributed.h) count global batches.
  NNLAB_RETURN_IF_ERROR(
      CheckReplicas(spec, (*entry)->is_gan(), options_.cluster));
  if (ReplicasOf(spec) > 1) {
    *total_steps = TotalSteps(GlobalBatchSpec(spec),
                              TrainSamples(spec, data->train->size()));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> JobManager::StartJob(const v1::JobSpec& spec) {
  if (shutting_down_) {
    return absl::UnavailableError("the server is shutting down");
  }
  std::shared_ptr<ModelEntry> entry;
  int64_t total_steps = 0;
  NNLAB_RETURN_IF_ERROR(ValidateSpec(spec, &entry, &total_steps));
  auto job = std::make_shared<Job>(NewJobId(), options_);
  {
    // The slot is reserved here, before the slow part (files, fsync):
    // concurrent calls that all checked first and queued later would
    // overfill the queue.
    absl::MutexLock lock(&mu_);
    if (static_cast<int>(queue_.size()) + admitting_ >= options_.max_queued) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the job queue is full (", options_.max_queued,
                       " jobs waiting); try again later"));
    }
    ++admitting_;
  }
  auto release = [this] {
    absl::MutexLock lock(&mu_);
    --admitting_;
  };
  if (absl::Status b = entry->BeginTraining(job->id); !b.ok()) {
    release();
    return b;
  }
  {
    absl::MutexLock lock(&job->mu);
    job->record.set_job_id(job->id);
    *job->record.mutable_spec() = spec;
    job->record.set_total_steps(total_steps);
    SetTimestampNow(job->record.mutable_create_time());
    job->base_trained_steps = entry->weights()->trained_steps;
  }
  // The log exists before the first event.
  absl::Status s = job->history->Restore({}, /*append=*/true);
  if (!s.ok()) {
    entry->EndTraining(job->id);
    release();
    return s;
  }
  {
    absl::MutexLock lock(&mu_);
    jobs_[job->id] = job;
    order_.push_back(job->id);
  }
  SetState(job, v1::JOB_STATE_QUEUED, "");
  absl::MutexLock lock(&mu_);
  --admitting_;
  queue_.push_back(job);
  absl::MutexLock jl(&job->mu);
  return job->record;
}

absl::StatusOr<v1::Job> JobManager::Get(const std::string& id) const {
  NNLAB_ASSIGN_OR_RETURN(std::shared_ptr<Job> job, Find(id));
  absl::MutexLock lock(&job->mu);
  return job->record;
}

std::vector<v1::Job> JobManager::List(const std::string& model_id,
                                      v1::JobState state) const {
  std::vector<v1::Job> out;
  absl::MutexLock lock(&mu_);
  for (const std::string& id : order_) {
    const auto& job = jobs_.at(id);
    absl::MutexLock jl(&job->mu);
    if (!model_id.empty() && job->record.spec().model_id() != model_id)
      continue;
    if (state != v1::JOB_STATE_UNSPECIFIED && job->record.state() != state) {
      continue;
    }
    out.push_back(job->record);
  }
  return out;
}

absl::StatusOr<v1::Job> JobManager::Cancel(const std::string& id) {
  NNLAB_ASSIGN_OR_RETURN(std::shared_ptr<Job> job, Find(id));
  bool was_waiting = false;
  {
    absl::MutexLock lock(&mu_);
    absl::MutexLock jl(&job->mu);
    const v1::JobState s = job->record.state();
    if (IsTerminalState(s)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", id, " has already ended (", v1::JobState_Name(s), ")"));
    }
    if (s == v1::JOB_STATE_QUEUED || s == v1::JOB_STATE_PAUSED) {
      // A QUEUED job a worker has already taken off the queue is about to
      // run: it sees the stop request and ends CANCELLED there, once.
      auto it = std::find(queue_.begin(), queue_.end(), job);
      if (it != queue_.end()) {
        queue_.erase(it);
        was_waiting = true;
      }
      if (s == v1::JOB_STATE_PAUSED) was_waiting = true;
    }
    job->stop.store(kCancel);
  }
  if (was_waiting) {
    std::string model_id;
    {
      absl::MutexLock jl(&job->mu);
      model_id = job->record.spec().model_id();
    }
    auto entry = models_->Get(model_id);
    if (entry.ok()) (*entry)->EndTraining(id);
    SetState(job, v1::JOB_STATE_CANCELLED, "cancelled before it ran");
  }
  // A running job stops at the next mini-batch; report what we know now.
  absl::MutexLock jl(&job->mu);
  return job->record;
}

absl::StatusOr<v1::Job> JobManager::Pause(const std::string& id) {
  NNLAB_ASSIGN_OR_RETURN(std::shared_ptr<Job> job, Find(id));
  bool was_queued = false;
  {
    absl::MutexLock lock(&mu_);
    absl::MutexLock jl(&job->mu);
    const v1::JobState s = job->record.state();
    if (s != v1::JOB_STATE_QUEUED && s != v1::JOB_STATE_RUNNING) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", id, " is ", v1::JobState_Name(s),
                       "; only QUEUED or RUNNING jobs can be paused"));
    }
    auto it = std::find(queue_.begin(), queue_.end(), job);
    if (it != queue_.end()) {
      queue_.erase(it);
      was_queued = true;
    } else {
      job->stop.store(kPause);
    }
  }
  if (was_queued) SetState(job, v1::JOB_STATE_PAUSED, "paused while queued");
  absl::MutexLock jl(&job->mu);
  return job->record;
}

absl::StatusOr<v1::Job> JobManager::Resume(const std::string& id) {
  if (shutting_down_)
    return absl::UnavailableError("the server is shutting down");
  NNLAB_ASSIGN_OR_RETURN(std::shared_ptr<Job> job, Find(id));
  {
    absl::MutexLock jl(&job->mu);
    if (job->record.state() != v1::JOB_STATE_PAUSED) {
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", id, " is ", v1::JobState_Name(job->record.state()),
          "; only PAUSED jobs can be resumed"));
    }
    job->record.set_resume_count(job->record.resume_count() + 1);
  }
  job->stop.store(kNoStop);
  SetState(job, v1::JOB_STATE_QUEUED, "resumed");
  {
    absl::MutexLock lock(&mu_);
    queue_.push_back(job);
  }
  absl::MutexLock jl(&job->mu);
  return job->record;
}

absl::StatusOr<std::unique_ptr<Watcher>> JobManager::Watch(
    const std::string& id, const Watcher::Options& o) {
  NNLAB_RETURN_IF_ERROR(Watcher::CheckOptions(o));
  NNLAB_ASSIGN_OR_RETURN(std::shared_ptr<Job> job, Find(id));
  return Watcher::Create(job->history, o, options_.watcher_buffer);
}

int64_t JobManager::EventsInMemory() const {
  int64_t n = 0;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, job] : jobs_) {
    n += job->history->InMemory();
  }
  return n;
}

void JobManager::WorkerLoop() {
  while (true) {
    std::shared_ptr<Job> job;
    bool queued = false;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return shutting_down_.load() || !queue_.empty();
      };
      mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(200));
      if (shutting_down_) return;
      queued = !queue_.empty();
      // The first job in queue order that has a free slot somewhere.
      for (auto it = queue_.begin(); it != queue_.end(); ++it) {
        std::optional<v1::Member> where = PlaceLocked(**it, "");
        if (!where) continue;
        job = *it;
        queue_.erase(it);
        ClaimLocked(*where, +1);
        job->placed = *where;
        absl::MutexLock jl(&job->mu);
        job->record.set_placed_on(where->member_id());
        break;
      }
    }
    if (job == nullptr) {
      // Queued jobs, but no free slot: look again shortly.
      if (queued) absl::SleepFor(absl::Milliseconds(50));
      continue;
    }
    RunJob(job);
    absl::MutexLock lock(&mu_);
    ClaimLocked(job->placed, -1);
  }
}

void JobManager::RunJob(const std::shared_ptr<Job>& job) {
  std::string model_id;
  bool distributed = false;
  {
    absl::MutexLock lock(&job->mu);
    model_id = job->record.spec().model_id();
    distributed = ReplicasOf(job->record.spec()) > 1;
  }
  absl::StatusOr<std::shared_ptr<ModelEntry>> entry = models_->Get(model_id);
  if (!entry.ok()) {
    SetState(job, v1::JOB_STATE_FAILED, std::string(entry.status().message()));
    return;
  }
  if (!AwaitMembers(job, *entry)) return;
  // `stop` is not reset here: a pause or cancel that arrived after the
  // worker took the job off the queue stops it at its first mini-batch.
  SetState(job, v1::JOB_STATE_RUNNING, "");
  int64_t final_step = 0;
  absl::Status status = Train(job, *entry, &final_step);
  const int stop = job->stop.load();
  // A member lost while the job was being stopped: the stop wins.
  if (distributed && IsClusterFault(status) && stop != kNoStop) {
    status = absl::CancelledError(status.message());
  }
  const bool fault = distributed && IsClusterFault(status);
  // The model is saved and released before the final state is published,
  // so a client that sees COMPLETED can immediately train the model again.
  absl::Status flush = models_->Flush(entry->get());
  if (!flush.ok()) {
    LogError(absl::StrCat("job ", job->id, ": saving model ", model_id, ": ",
                          flush.ToString()));
  }
  const bool paused = absl::IsCancelled(status) && stop == kPause;
  const bool interrupted = absl::IsCancelled(status) && stop == kShutdown;
  // A paused or interrupted job keeps its model for ResumeJob / restart.
  if (!paused && !interrupted && !fault) (*entry)->EndTraining(job->id);
  if (status.ok()) {
    SetState(job, v1::JOB_STATE_COMPLETED, "");
    // Nothing resumes a finished job; its last checkpoint stays.
    absl::Status rm = checkpoints_.RemovePrevious(job->id);
    if (!rm.ok()) LogError(absl::StrCat("job ", job->id, ": ", rm.ToString()));
  } else if (paused) {
    SetState(job, v1::JOB_STATE_PAUSED,
             absl::StrCat("paused at step ", final_step));
  } else if (interrupted) {
    // Recorded as QUEUED on disk: the next start resumes it.
    {
      absl::MutexLock lock(&job->mu);
      job->record.set_state(v1::JOB_STATE_QUEUED);
      job->record.set_failure_reason(
          absl::StrCat("interrupted by server shutdown at step ", final_step));
    }
    SaveRecord(job).IgnoreError();
    LogInfo(absl::StrCat("job ", job->id, " interrupted by shutdown at step ",
                         final_step, "; it resumes at the next start"));
  } else if (fault) {
    RequeueAfterFault(job, status);
  } else if (absl::IsCancelled(status) && stop == kCancel) {
    SetState(job, v1::JOB_STATE_CANCELLED,
             absl::StrCat("cancelled at step ", final_step));
  } else {
    SetState(job, v1::JOB_STATE_FAILED, status.ToString());
  }
}

// Distributed jobs only: holds the job (QUEUED, on this worker) until
// enough members are alive and its retry time has come, polling the
// membership and the job's stop request. A pause, cancel or shutdown meanwhile
// is handled here (false: the job does not run now).
bool JobManager::AwaitMembers(const std::shared_ptr<Job>& job,
                              const std::shared_ptr<ModelEntry>& entry) {
  int replicas = 1;
  int need = 0;  // Live workers the job needs besides the coordinator.
  {
    absl::MutexLock lock(&job->mu);
    replicas = ReplicasOf(job->record.spec());
    need = MinReplicasOf(job->record.spec()) - 1;
  }
  if (replicas <= 1 || options_.cluster == nullptr) return true;
  std::string told;
  while (true) {
    const int stop = job->stop.load();
    if (stop == kCancel) {
      entry->EndTraining(job->id);
      SetState(job, v1::JOB_STATE_CANCELLED,
               "cancelled while waiting for cluster members");
      return false;
    }
    if (stop == kPause) {
      SetState(job, v1::JOB_STATE_PAUSED,
               "paused while waiting for cluster members");
      return false;
    }
    if (stop == kShutdown || shutting_down_) return false;  // QUEUED on disk.
    const int alive = AliveWorkers(options_.cluster);
    if (alive >= need && absl::Now() >= job->retry_at) {
      // The fault is history now (its state event keeps the reason).
      absl::MutexLock lock(&job->mu);
      job->record.clear_failure_reason();
      return true;
    }
    if (alive < need && told.empty()) {
      told = absl::StrCat(
          "waiting for cluster members (", replicas, " replicas",
          need + 1 < replicas ? absl::StrCat(", at least ", need + 1, ",") : "",
          " need ", need, " live worker", need == 1 ? "" : "s", ", ", alive,
          " alive)");
      {
        absl::MutexLock lock(&job->mu);
        const std::string& why = job->record.failure_reason();
        if (!why.empty()) absl::StrAppend(&told, ": after ", why);
        job->record.set_failure_reason(told);
      }
      SaveRecord(job).IgnoreError();
      LogInfo(absl::StrCat("job ", job->id, ": ", told));
    }
    // Members join and die on heartbeat time (hundreds of ms): a short
    // sleep keeps cancel and pause prompt without spinning.
    absl::SleepFor(absl::Milliseconds(100));
  }
}

void JobManager::RequeueAfterFault(const std::shared_ptr<Job>& job,
                                   const absl::Status& status) {
  int64_t ckpt_step = 0;
  std::string reason;
  {
    absl::MutexLock lock(&job->mu);
    ckpt_step = job->record.checkpoint_step();
    reason = absl::StrCat("cluster fault at step ", job->record.step(),
                          ", resumes from step ", ckpt_step, ": ",
                          status.ToString());
    job->record.set_failure_reason(reason);
    job->record.set_resume_count(job->record.resume_count() + 1);
  }
  job->retry_at = absl::Now() + absl::Seconds(1);
  SetState(job, v1::JOB_STATE_QUEUED, reason);
  absl::MutexLock lock(&mu_);
  queue_.push_back(job);
}

struct JobManager::RunInputs {
  v1::JobSpec spec;
  int64_t ckpt_step = 0;   // The record's checkpoint step.
  int64_t base_steps = 0;  // Steps the model had when the job started.
  std::unique_ptr<DatasetView> train;
  std::unique_ptr<DatasetView> test;         // Null when the data set has none.
  std::unique_ptr<StoredCheckpoint> resume;  // Null for a fresh start.
};

absl::StatusOr<JobManager::RunInputs> JobManager::PrepareRun(Job& job) const {
  RunInputs in;
  {
    absl::MutexLock lock(&job.mu);
    in.spec = job.record.spec();
    in.ckpt_step = job.record.checkpoint_step();
    in.base_steps = job.base_trained_steps;
  }
  const v1::JobSpec& spec = in.spec;
  NNLAB_ASSIGN_OR_RETURN(std::shared_ptr<const DatasetPair> data,
                         datasets_->Get(spec.dataset()));
  Shape sample = data->train->sample_shape();
  if (!spec.sample_shape().empty()) {
    sample = Shape(spec.sample_shape().begin(), spec.sample_shape().end());
  }
  const int64_t ntrain = TrainSamples(spec, data->train->size());
  in.train = std::make_unique<DatasetView>(data->train, ntrain, sample);
  if (data->test != nullptr) {
    in.test =
        std::make_unique<DatasetView>(data->test, data->test->size(), sample);
  }
  // Start() may have read the checkpoint already while choosing it.
  in.resume = std::move(job.resume_ckpt);
  if (in.ckpt_step > 0 && in.resume == nullptr) {
    in.resume = std::make_unique<StoredCheckpoint>();
    NNLAB_RETURN_IF_ERROR(checkpoints_.Read(job.id, in.resume.get()));
  }
  return in;
}

absl::Status JobManager::Train(const std::shared_ptr<Job>& job,
                               const std::shared_ptr<ModelEntry>& entry,
                               int64_t* final_step) {
  NNLAB_ASSIGN_OR_RETURN(RunInputs in, PrepareRun(*job));
  if (entry->is_gan()) return TrainGan(job, entry, std::move(in), final_step);
  const v1::JobSpec& spec = in.spec;
  const int64_t base_steps = in.base_steps;
  const DatasetView& train = *in.train;
  const DatasetView* test = in.test.get();
  const int64_t ntrain = train.size();

  NNLAB_ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                         entry->Instantiate(ModelPart::kMain));
  const EffectiveSpec eff = EffectiveOf(spec);
  NNLAB_ASSIGN_OR_RETURN(TrainOptions opts, TrainOptionsOf(spec));
  NNLAB_ASSIGN_OR_RETURN(std::unique_ptr<Trainer> trainer,
                         Trainer::Create(model.get(), opts));

  if (in.resume != nullptr) {
    NNLAB_ASSIGN_OR_RETURN(RunState state,
                           RunStateFromProto(*in.resume, options_.limits));
    NNLAB_RETURN_IF_ERROR(state.Restore(trainer.get()));
    {
      absl::MutexLock lock(&job->mu);
      job->record.set_checkpoint_step(state.step);
      job->record.set_step(state.step);
    }
    LogInfo(absl::StrCat("job ", job->id, " resumed from checkpoint at step ",
                         state.step));
    in.resume.reset();
  }

  if (job->placed.member_id() != kCoordinatorMember &&
      !job->placed.member_id().empty()) {
    bool run_here = false;
    absl::Status s = TrainOnMember(job, entry, model.get(), trainer.get(), spec,
                                   base_steps, final_step, &run_here);
    if (!run_here) return s;
  }

  // Data-parallel: this is rank 0; ranks 1..N-1 run on other members. With
  // min_replicas the attempt runs on as many as are alive now (N may be 1:
  // the coordinator alone takes the whole global batch); without, Start
  // waits for all of them.
  std::unique_ptr<ReplicaGroup> replicas;
  if (ReplicasOf(spec) > 1) {
    int n = AttemptReplicas(spec, AliveWorkers(options_.cluster));
    if (n == 0) n = ReplicasOf(spec);
    if (n > 1) {
      NNLAB_ASSIGN_OR_RETURN(
          replicas,
          ReplicaGroup::Start(options_.cluster, job->id, spec, n,
                              ReplicaCheckpoint(entry->Info().spec(),
                                                trainer.get(), base_steps),
                              [&job] { return job->stop.load() != kNoStop; }));
      trainer->set_collective(replicas->collective());
    }
    if (n < ReplicasOf(spec)) {
      LogInfo(absl::StrCat("job ", job->id, ": runs on ", n, " of ",
                           ReplicasOf(spec), " replicas (min_replicas ",
                           spec.min_replicas(), ")"));
    }
    absl::MutexLock lock(&job->mu);
    job->record.clear_replica_members();
    if (replicas == nullptr) {
      job->record.add_replica_members("coordinator");
    } else {
      for (const std::string& m : replicas->members()) {
        job->record.add_replica_members(m);
      }
    }
  }

  CheckpointWriter writer([this, job](const StoredCheckpoint& ckpt) {
    return CommitCheckpoint(job, ckpt);
  });
  StoredCheckpoint header = CheckpointHeader(job->id);
  *header.mutable_model()->mutable_spec() = entry->Info().spec();
  // Captures the state here; the writer makes the checkpoint of it.
  auto checkpoint = [&]() -> absl::Status {
    return writer.Submit(
        CheckpointOf(header, RunState::Capture(trainer.get()), base_steps));
  };

  const int64_t per_epoch = StepsPerEpoch(GlobalBatchSpec(spec), ntrain);
  absl::Time last_publish = absl::Now();
  SampleRate rate;
  bool reached_max_steps = false;
  int64_t last_eval_step = -1;
  Trainer::Callbacks cb;
  cb.on_step = [&](const StepStats& stats) -> absl::Status {
    const double sps =
        rate.Step(std::min<int64_t>(eff.batch_size * ReplicasOf(spec), ntrain));
    v1::MetricEvent e;
    StepStatsToEvent(stats, &e);
    e.set_samples_per_sec(sps);
    {
      absl::MutexLock lock(&job->mu);
      job->record.set_step(stats.step);
      job->record.set_epoch(stats.epoch);
      job->record.set_last_loss(stats.loss);
      job->record.set_samples_per_sec(sps);
      job->history->Append(std::move(e));
    }
    const absl::Time now = absl::Now();
    if (now - last_publish >= options_.publish_interval) {
      entry->Publish(CaptureWeights(model.get(), base_steps + stats.step));
      last_publish = now;
    }
    const bool epoch_end = trainer->state().batch_in_epoch >= per_epoch;
    if (CheckpointDue(spec, stats.step, epoch_end)) {
      NNLAB_RETURN_IF_ERROR(checkpoint());
    }
    if (spec.max_steps() > 0 && stats.step >= spec.max_steps()) {
      reached_max_steps = true;
      return absl::CancelledError("max_steps reached");
    }
    return absl::OkStatus();
  };
  cb.on_eval = [&](const StepStats& at, const EvalResult& r) {
    v1::MetricEvent e;
    e.set_phase(v1::PHASE_EVAL);
    e.set_step(trainer->state().step);
    e.set_epoch(at.epoch);
    e.set_loss(r.loss);
    e.set_accuracy(r.accuracy);
    absl::MutexLock lock(&job->mu);
    v1::EvalResult* ev = job->record.mutable_last_eval();
    ev->set_loss(r.loss);
    ev->set_accuracy(r.accuracy);
    ev->set_step(trainer->state().step);
    job->history->Append(std::move(e));
    last_eval_step = trainer->state().step;
  };
  cb.should_stop = [&]() { return job->stop.load() != kNoStop; };

  absl::Status status;
  if (spec.max_steps() > 0 && trainer->state().step >= spec.max_steps()) {
    // Resumed from a checkpoint taken at max_steps: nothing left to train.
    reached_max_steps = true;
  } else {
    status = trainer->Run(train, test, cb);
  }
  if (replicas != nullptr) status = replicas->Finish(status);
  if (reached_max_steps) {
    status = absl::OkStatus();
    // max_steps may stop mid-epoch, before the epoch-end evaluation: the
    // job still ends with one on the final weights.
    if (test != nullptr && last_eval_step != trainer->state().step) {
      absl::StatusOr<EvalResult> r =
          Evaluate(model.get(), *test, eff.batch_size);
      if (r.ok()) {
        StepStats at;
        at.step = trainer->state().step;
        at.epoch = std::min(trainer->state().epoch, eff.epochs - 1);
        cb.on_eval(at, *r);
      } else {
        status = r.status();
      }
    }
  }
  *final_step = trainer->state().step;
  {
    absl::MutexLock lock(&job->mu);
    job->record.set_step(trainer->state().step);
    job->record.set_epoch(std::min(trainer->state().epoch, eff.epochs - 1));
  }
  entry->Publish(
      CaptureWeights(model.get(), base_steps + trainer->state().step));
  if (replicas != nullptr && IsClusterFault(status) &&
      trainer->state().step > 0 && writer.Flush().ok()) {
    // A fault before the job's first checkpoint: it resumes from here, not
    // from step 0 on weights this attempt has already changed. The failed
    // step changed no weights or optimizer slots (it failed in its
    // allreduce); batch-norm running statistics and the dropout RNG did
    // see it.
    bool none = false;
    {
      absl::MutexLock lock(&job->mu);
      none = job->record.checkpoint_step() == 0;
    }
    if (none && checkpoint().ok()) writer.Flush().IgnoreError();
  }
  return FinishCheckpoints(job->stop.load(), checkpoint, &writer, status);
}

absl::Status JobManager::TrainGan(const std::shared_ptr<Job>& job,
                                  const std::shared_ptr<ModelEntry>& entry,
                                  RunInputs in, int64_t* final_step) {
  const v1::JobSpec& spec = in.spec;
  const int64_t ckpt_step = in.ckpt_step, base_steps = in.base_steps;
  const DatasetView& train = *in.train;
  const int64_t ntrain = train.size();
  DatasetSampler real(&train);
  const EffectiveSpec eff = EffectiveOf(spec);
  GanOptions go;
  go.generator = entry->spec(ModelPart::kGenerator);
  go.discriminator = entry->spec(ModelPart::kDiscriminator);
  go.noise = entry->noise() == v1::NOISE_NORMAL ? NoiseKind::kNormal
                                                : NoiseKind::kUniform;
  go.d_steps = static_cast<int>(eff.gan_d_steps);
  go.batch_size = eff.batch_size;
  NNLAB_ASSIGN_OR_RETURN(
      go.g_optimizer, OptimizerFromProto(spec.optimizer(), "spec.optimizer"));
  go.d_optimizer = go.g_optimizer;
  // A checkpoint restores the trainer's RNG below; only one written before
  // RNG states were kept resumes on this fresh (seeded) stream.
  go.seed = spec.shuffle_seed() + uint64_t(ckpt_step);
  NNLAB_ASSIGN_OR_RETURN(std::unique_ptr<GanTrainer> trainer,
                         GanTrainer::Create(go));
  int64_t step = 0;
  if (in.resume != nullptr) {
    NNLAB_ASSIGN_OR_RETURN(RunState state,
                           RunStateFromProto(*in.resume, options_.limits));
    NNLAB_RETURN_IF_ERROR(state.Restore(trainer.get()));
    step = state.step;
  } else {
    WeightsPtr w = entry->weights();
    NNLAB_RETURN_IF_ERROR(LoadWeights(*w, trainer->generator(), "generator/"));
    NNLAB_RETURN_IF_ERROR(
        LoadWeights(*w, trainer->discriminator(), "discriminator/"));
  }
  const int64_t per_epoch = StepsPerEpoch(spec, ntrain);
  const int64_t total = TotalSteps(spec, ntrain);
  auto capture = [&]() {
    auto w = std::make_shared<WeightSet>();
    AppendWeights(trainer->generator(), "generator/", w.get());
    AppendWeights(trainer->discriminator(), "discriminator/", w.get());
    w->trained_steps = base_steps + step;
    return w;
  };
  CheckpointWriter writer([this, job](const StoredCheckpoint& ckpt) {
    return CommitCheckpoint(job, ckpt);
  });
  StoredCheckpoint header = CheckpointHeader(job->id);
  *header.mutable_model()->mutable_gan() = entry->Info().gan();
  auto checkpoint = [&]() -> absl::Status {
    RunState state = RunState::Capture(trainer.get());
    // The record shows a GAN's epoch too (Restore derives it from the step).
    state.epoch = static_cast<int>(state.step / per_epoch);
    return writer.Submit(CheckpointOf(header, std::move(state), base_steps));
  };
  absl::Time last_publish = absl::Now();
  SampleRate rate;
  GanRunOptions run;
  run.total_steps = total;
  run.steps_per_epoch = per_epoch;
  run.checkpoints = RunCadence::EveryOrEpochEnd(spec.checkpoint_every_steps());
  GanTrainer::Callbacks cb;
  cb.on_step = [&](const GanStepStats& st) -> absl::Status {
    step = st.step;
    const double sps = rate.Step(eff.batch_size);
    v1::MetricEvent d, g;
    d.set_phase(v1::PHASE_GAN_D);
    d.set_step(step);
    d.set_epoch(st.epoch);
    d.set_loss(st.d_loss);
    d.set_accuracy(-1);
    d.set_grad_norm(st.d_grad_norm);
    d.set_learning_rate(st.learning_rate);
    d.set_samples_per_sec(sps);
    d.set_d_real(st.d_real);
    d.set_d_fake(st.d_fake);
    g.set_phase(v1::PHASE_GAN_G);
    g.set_step(step);
    g.set_epoch(st.epoch);
    g.set_loss(st.g_loss);
    g.set_accuracy(-1);
    g.set_grad_norm(st.g_grad_norm);
    g.set_learning_rate(st.learning_rate);
    g.set_samples_per_sec(sps);
    {
      absl::MutexLock lock(&job->mu);
      job->record.set_step(step);
      job->record.set_epoch(st.epoch);
      job->record.set_last_loss(st.g_loss);
      job->record.set_samples_per_sec(sps);
      std::vector<v1::MetricEvent> events(2);
      events[0] = std::move(d);
      events[1] = std::move(g);
      job->history->AppendAll(std::move(events));
    }
    const absl::Time now = absl::Now();
    if (now - last_publish >= options_.publish_interval) {
      entry->Publish(capture());
      last_publish = now;
    }
    return absl::OkStatus();
  };
  // A checkpoint that cannot be taken ends the job at once, as it always has.
  absl::Status checkpoint_failed;
  cb.on_checkpoint = [&](const GanStepStats& st) -> absl::Status {
    step = st.step;
    checkpoint_failed = checkpoint();
    return checkpoint_failed;
  };
  cb.should_stop = [&]() { return job->stop.load() != kNoStop; };
  absl::Status status = trainer->Run(real, run, cb);
  NNLAB_RETURN_IF_ERROR(checkpoint_failed);
  step = trainer->step();
  *final_step = step;
  entry->Publish(capture());
  return FinishCheckpoints(job->stop.load(), checkpoint, &writer, status);
}

// --- Placement on cluster members (server/cluster/remote_job.h) -----------

std::optional<v1::Member> JobManager::PlaceLocked(const Job& job,
                                                  const std::string& exclude) {
  v1::JobSpec spec;
  {
    absl::MutexLock jl(&job.mu);
    spec = job.record.spec();
  }
  // GAN and distributed jobs run here (a distributed job's rank 0 is this
  // server); a model that is gone fails here too, as it always has.
  bool local_only = ReplicasOf(spec) > 1;
  if (!local_only) {
    absl::StatusOr<std::shared_ptr<ModelEntry>> entry =
        models_->Get(spec.model_id());
    local_only = !entry.ok() || (*entry)->is_gan();
  }
  return PlaceJob(options_.cluster, local_running_,
                  std::max(1, options_.max_running), remote_running_,
                  local_only, exclude);
}

void JobManager::ClaimLocked(const v1::Member& member, int delta) {
  if (member.member_id() == kCoordinatorMember) {
    local_running_ += delta;
    return;
  }
  int& n = remote_running_[member.member_id()];
  n += delta;
  if (n <= 0) remote_running_.erase(member.member_id());
}

absl::Status JobManager::TrainOnMember(const std::shared_ptr<Job>& job,
                                       const std::shared_ptr<ModelEntry>& entry,
                                       Model* model, Trainer* trainer,
                                       const v1::JobSpec& spec,
                                       int64_t base_steps, int64_t* final_step,
                                       bool* run_here) {
  *run_here = false;
  const int epochs = EffectiveOf(spec).epochs;
  CheckpointWriter writer([this, job](const StoredCheckpoint& ckpt) {
    return CommitCheckpoint(job, ckpt);
  });
  // This server's trainer follows the remote run's newest state, so the
  // published weights and a resume after a lost member start from it.
  auto adopt = [&](const StoredCheckpoint& ckpt) -> absl::Status {
    NNLAB_ASSIGN_OR_RETURN(RunState state,
                           RunStateFromProto(ckpt, options_.limits));
    NNLAB_RETURN_IF_ERROR(state.Restore(trainer));
    entry->Publish(CaptureWeights(model, base_steps + state.step));
    absl::MutexLock lock(&job->mu);
    job->record.set_step(state.step);
    job->record.set_epoch(std::min(trainer->state().epoch, epochs - 1));
    return absl::OkStatus();
  };
  RemoteJobCallbacks cb;
  cb.on_event = [&](v1::MetricEvent e) {
    absl::MutexLock lock(&job->mu);
    if (e.phase() == v1::PHASE_TRAIN) {
      job->record.set_step(e.step());
      job->record.set_epoch(e.epoch());
      job->record.set_last_loss(e.loss());
      job->record.set_samples_per_sec(e.samples_per_sec());
    } else if (e.phase() == v1::PHASE_EVAL) {
      v1::EvalResult* ev = job->record.mutable_last_eval();
      ev->set_loss(e.loss());
      ev->set_accuracy(e.accuracy());
      ev->set_step(e.step());
    }
    job->history->Append(std::move(e));
  };
  cb.on_checkpoint = [&](StoredCheckpoint ckpt) -> absl::Status {
    NNLAB_RETURN_IF_ERROR(adopt(ckpt));
    ckpt.set_job_id(job->id);
    return writer.Submit(std::make_unique<StoredCheckpoint>(std::move(ckpt)));
  };
  cb.should_stop = [&] { return job->stop.load() != kNoStop; };
  while (true) {
    v1::Member member;
    {
      absl::MutexLock lock(&mu_);
      member = job->placed;
    }
    LogInfo(absl::StrCat("job ", job->id, " runs on member ",
                         member.member_id(), " (", member.address(),
                         ") from step ", trainer->state().step));
    absl::StatusOr<StoredCheckpoint> result = RunJobOnMember(
        options_.cluster, member, job->id, spec,
        ReplicaCheckpoint(entry->Info().spec(), trainer, base_steps), cb);
    absl::Status status = result.status();
    if (result.ok()) status = adopt(*result);
    // Every checkpoint received is committed before the run reports.
    absl::Status written = writer.Flush();
    *final_step = trainer->state().step;
    if (status.ok()) return written;
    if (!written.ok()) return written;
    if (!absl::IsUnavailable(status) || job->stop.load() != kNoStop) {
      // Pause and shutdown resume from the last checkpoint received.
      return status;
    }
    // The member is lost: place the job again (never on that member) and
    // resume from the last checkpoint, which `trainer` holds.
    LogError(absl::StrCat("job ", job->id, ": ", status.message(),
                          "; resuming from step ", trainer->state().step,
                          " elsewhere"));
    std::optional<v1::Member> next;
    while (!next) {
      if (job->stop.load() != kNoStop) {
        return absl::CancelledError("stopped while waiting for a member");
      }
      {
        absl::MutexLock lock(&mu_);
        next = PlaceLocked(*job, member.member_id());
        if (next) {
          ClaimLocked(job->placed, -1);
          ClaimLocked(*next, +1);
          job->placed = *next;
          absl::MutexLock jl(&job->mu);
          job->record.set_placed_on(next->member_id());
          job->record.set_step(trainer->state().step);
          job->record.set_resume_count(job->record.resume_count() + 1);
        }
      }
      if (!next) absl::SleepFor(absl::Milliseconds(100));
    }
    if (next->member_id() == kCoordinatorMember) {
      *run_here = true;
      return absl::OkStatus();
    }
  }
}

}  // namespace nnlab::server
