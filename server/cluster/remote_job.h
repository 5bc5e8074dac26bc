// One-replica jobs on cluster members: where a queued job runs, and running
// a whole job on a worker with its events, checkpoints and final state
// streamed back to the coordinator (ClusterService.RunJob).
//
// Placement rule (PlaceJob): among the members with a free slot (running
// jobs < their --max_jobs), the least loaded one relative to its --max_jobs
// (running / max); ties go to the coordinator, then to the earliest joined
// worker. The coordinator counts its own running jobs exactly; a worker's
// load is the larger of what its last heartbeat reported and the jobs this
// coordinator has placed on it (a heartbeat lags). GAN jobs and distributed
// jobs (replicas > 1, whose rank 0 is always the coordinator) run only on
// the coordinator. With no free slot anywhere the job stays queued.
//
// A job placed on a worker stays the coordinator's job: the coordinator
// appends the streamed events to its history, commits the checkpoints to
// its own store and publishes the final weights to its model registry, so a
// client never needs to know where a job runs. Cancelling the call stops
// the remote run; a run whose stream breaks (the member died) resumes from
// the last checkpoint the coordinator received, placed again.
#ifndef NNLAB_SERVER_CLUSTER_REMOTE_JOB_H_
#define NNLAB_SERVER_CLUSTER_REMOTE_JOB_H_

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "nnlab/v1/cluster.pb.h"
#include "nnlab/v1/training.pb.h"
#include "server/cluster/cluster_node.h"
#include "server/convert.h"
#include "server/datasets.h"
#include "server/storage.pb.h"

namespace nnlab::server {

// The member id PlaceJob and Job.placed_on use for the coordinator.
inline constexpr char kCoordinatorMember[] = "coordinator";

// Where a job runs now: the coordinator's entry (member_id "coordinator")
// or a live worker, by the rule above; nullopt when no member has a free
// slot. `local_running` / `local_max`: the coordinator's running jobs and
// its --max_jobs. `placed`: jobs this coordinator runs on each worker, by
// member id. `local_only`: the job may run only on the coordinator.
// `exclude`: a member id not to use (one whose run just broke). `cluster`
// may be null (then only the coordinator). Thread-safe.
std::optional<v1::Member> PlaceJob(ClusterNode* cluster, int local_running,
                                   int local_max,
                                   const std::map<std::string, int>& placed,
                                   bool local_only, const std::string& exclude);

// What the coordinator does with a remote run's stream, called in order on
// the calling thread.
struct RemoteJobCallbacks {
  std::function<void(v1::MetricEvent)> on_event;
  // A checkpoint the member took; an error ends the run with it.
  std::function<absl::Status(StoredCheckpoint)> on_checkpoint;
  // Polled every few tens of milliseconds; true cancels the call.
  std::function<bool()> should_stop;
};

// The coordinator's side: runs job `job_id` on `member` from `checkpoint`
// (a serialised StoredCheckpoint with the model spec and the full
// RunState) until it ends. Returns the final state, Cancelled once
// `should_stop` said so, or the error that ended the run: the member's
// status, or Unavailable naming the member when the stream broke.
absl::StatusOr<StoredCheckpoint> RunJobOnMember(ClusterNode* cluster,
                                                const v1::Member& member,
                                                const std::string& job_id,
                                                const v1::JobSpec& spec,
                                                std::string checkpoint,
                                                const RemoteJobCallbacks& cb);

// The member's side (the RunJob handler): trains req's job to its end,
// handing each message of the stream to `write` (false: the coordinator
// went away, the run stops). `cancelled` is polled between steps.
absl::Status ServeRunJob(
    const v1::RunJobRequest& req, DatasetRegistry* datasets,
    const Limits& limits,
    const std::function<bool(const v1::RunJobResponse&)>& write,
    const std::function<bool()>& cancelled);

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_CLUSTER_REMOTE_JOB_H_
