// The job manager: training jobs on a bounded worker pool, their state
// machine, event history and watchers, checkpoints, and persistence in
// <data_dir>/jobs (<id>.job record, <id>.ckpt checkpoint and the one before
// it, <id>.ckpt.prev, <id>.events log).
//
// The pieces live in their own modules: the event log (event_log.h), the
// history and its watchers (job_events.h), checkpoint files and their
// writer thread (checkpoint_store.h), spec validation (job_spec.h). This
// file is the state machine, the queue and workers, the training runs, and
// recovery at startup.
//
// Durability: checkpoints and records are written atomically (storage.h).
// The event log is appended per event and fdatasync'ed before every
// checkpoint and state change, so after a crash the history covers at least
// everything up to the checkpoint the job resumes from. A checkpoint that
// fails its checksum is reported (log line) and the previous one is used;
// with neither readable the job ends FAILED with a DATA_LOSS reason. A
// checkpoint that cannot be written (disk full, I/O error) fails the job
// with a reason naming the error; the previous checkpoint stays in place.
//
// States: QUEUED -> RUNNING -> COMPLETED | CANCELLED | FAILED, and
// RUNNING/QUEUED -> PAUSED -> QUEUED. Pause, cancel and shutdown reach the
// core as Trainer::Callbacks::should_stop, polled between mini-batches.
//
// Memory: an ended job's history stays in memory only while watchers are
// attached; afterwards only the small job record remains and a new watcher
// reads the history back from <id>.events (complete and durable by then).
//
// Watchers never slow training: the training thread only appends an event
// to the job's history (a short critical section) and wakes waiters; each
// watcher reads the history at its own pace through a cursor. A watcher
// that falls more than `watcher_buffer` events behind the live edge skips
// ahead and is told how many events it missed (MetricEvent.dropped_events:
// only events it would have received, after from_step and every_n).
//
// Thread-safe.
#ifndef NNLAB_SERVER_JOBS_H_
#define NNLAB_SERVER_JOBS_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nnlab/v1/cluster.pb.h"
#include "nnlab/v1/training.pb.h"
#include "server/checkpoint_store.h"
#include "server/datasets.h"
#include "server/job_events.h"
#include "server/models.h"

namespace nnlab {
class Model;
class Trainer;
}  // namespace nnlab

namespace nnlab::server {

class ClusterNode;

struct JobManagerOptions {
  std::string dir;                // Where job files live.
  int max_running = 1;            // Worker threads (concurrent jobs).
  int max_queued = 16;            // QUEUED jobs beyond which StartJob fails.
  int64_t history_limit = 50000;  // Events kept per job (oldest dropped).
  int64_t watcher_buffer = 1024;  // Events a watcher may lag behind.
  absl::Duration publish_interval = absl::Milliseconds(100);  // Weights for
                                                              // inference.
  Limits limits;
  // Members for distributed jobs (spec.replicas > 1) and for one-replica
  // jobs placed on workers (server/cluster/remote_job.h: the placement
  // rule); null: none.
  ClusterNode* cluster = nullptr;
};

class Job;

class JobManager {
 public:
  JobManager(JobManagerOptions options, ModelRegistry* models,
             DatasetRegistry* datasets);
  ~JobManager();

  // Loads job records and histories, re-queues jobs a crash or shutdown
  // interrupted (they resume from their last checkpoint), and starts the
  // workers.
  absl::Status Start();

  absl::StatusOr<v1::Job> StartJob(const v1::JobSpec& spec);
  absl::StatusOr<v1::Job> Get(const std::string& id) const;
  std::vector<v1::Job> List(const std::string& model_id,
                            v1::JobState state) const;
  absl::StatusOr<v1::Job> Cancel(const std::string& id);
  absl::StatusOr<v1::Job> Pause(const std::string& id);
  absl::StatusOr<v1::Job> Resume(const std::string& id);

  // A watcher from the start of the retained history. DataLoss if an ended
  // job's history has to be read back from a damaged event log.
  absl::StatusOr<std::unique_ptr<Watcher>> Watch(const std::string& id,
                                                 const Watcher::Options& o);

  // Events held in memory over all jobs (for tests and metrics). An ended
  // job's history leaves memory once no watcher is attached; Watch reads it
  // back from the job's event log.
  int64_t EventsInMemory() const;

  // Stops accepting jobs, makes running jobs checkpoint and stop (they are
  // resumed at the next start), wakes every watcher, joins the workers.
  void Shutdown();
  bool shutting_down() const { return shutting_down_.load(); }

 private:
  // The job `id`: InvalidArgument for a malformed id, NotFound if unknown.
  absl::StatusOr<std::shared_ptr<Job>> Find(const std::string& id) const;
  void WorkerLoop();
  void RunJob(const std::shared_ptr<Job>& job);
  // Distributed jobs after a cluster fault (server/cluster/distributed.h):
  // waiting for members, and the way back into the queue.
  bool AwaitMembers(const std::shared_ptr<Job>& job,
                    const std::shared_ptr<ModelEntry>& entry);
  void RequeueAfterFault(const std::shared_ptr<Job>& job,
                         const absl::Status& status);
  // What a training run starts from (defined in jobs.cc).
  struct RunInputs;
  // The job's spec and progress, its data set viewed as the spec says, and
  // the checkpoint to resume from, if any.
  absl::StatusOr<RunInputs> PrepareRun(Job& job) const;
  absl::Status Train(const std::shared_ptr<Job>& job,
                     const std::shared_ptr<ModelEntry>& entry,
                     int64_t* final_step);
  // Alternating GAN training (core/train/gan_trainer.h) of a GAN pair entry:
  // the whole GAN loop, checkpoints and events included.
  absl::Status TrainGan(const std::shared_ptr<Job>& job,
                        const std::shared_ptr<ModelEntry>& entry, RunInputs in,
                        int64_t* final_step);
  // Where `job` would run now (remote_job.h's PlaceJob), avoiding member
  // `exclude`; nullopt while no member has a free slot.
  std::optional<v1::Member> PlaceLocked(const Job& job,
                                        const std::string& exclude)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes or gives back the slot of `member` (PlaceLocked's answer).
  void ClaimLocked(const v1::Member& member, int delta)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Train's branch for a job placed on a worker: runs it there, mirrors
  // its events, checkpoints and result here. A lost member re-places the
  // job from its last checkpoint; `*run_here` then says it continues on
  // this server with `trainer` holding that checkpoint.
  absl::Status TrainOnMember(const std::shared_ptr<Job>& job,
                             const std::shared_ptr<ModelEntry>& entry,
                             Model* model, Trainer* trainer,
                             const v1::JobSpec& spec, int64_t base_steps,
                             int64_t* final_step, bool* run_here);
  absl::Status ValidateSpec(const v1::JobSpec& spec,
                            std::shared_ptr<ModelEntry>* entry,
                            int64_t* total_steps);
  // Records a state change: record, event, disk, log.
  void SetState(const std::shared_ptr<Job>& job, v1::JobState state,
                const std::string& message);
  absl::Status SaveRecord(const std::shared_ptr<Job>& job);
  // Makes `ckpt` the job's durable resume point: the history up to now,
  // then the checkpoint, then the record that names its step. Runs on the
  // job's checkpoint writer thread.
  absl::Status CommitCheckpoint(const std::shared_ptr<Job>& job,
                                const StoredCheckpoint& ckpt);
  std::string PathFor(const std::string& id, absl::string_view ext) const;

  const JobManagerOptions options_;
  CheckpointStore checkpoints_;  // In options_.dir.
  ModelRegistry* const models_;
  DatasetRegistry* const datasets_;
  std::atomic<bool> shutting_down_{false};

  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);  // Creation order.
  std::deque<std::shared_ptr<Job>> queue_ ABSL_GUARDED_BY(mu_);
  // StartJob calls past the queue-limit check that have not queued yet.
  int admitting_ ABSL_GUARDED_BY(mu_) = 0;
  // Jobs running on this server, and on each worker by member id.
  int local_running_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, int> remote_running_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> workers_;
};

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_JOBS_H_
