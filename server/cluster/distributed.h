// Distributed (data-parallel) jobs: placing a job's replicas on cluster
// members, shipping them its state, and running a replica on a member.
//
// Placement rule: rank 0 is the coordinator itself (it streams events,
// evaluates, checkpoints and owns the result); ranks 1..N-1 go to the live
// workers with the fewest running jobs relative to their
// --max_concurrent_jobs (ties: the earliest joined). Each replica gets the
// job spec and rank 0's full RunState (weights, buffers, optimizer slots,
// RNGs, step) as a checkpoint record, so all replicas start identical; the
// trainer then keeps them identical (core/train/trainer.h). Replicas meet
// through the coordinator's rendezvous store under a prefix unique to the
// attempt.
#ifndef NNLAB_SERVER_CLUSTER_DISTRIBUTED_H_
#define NNLAB_SERVER_CLUSTER_DISTRIBUTED_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/model/model.h"
#include "core/train/trainer.h"
#include "grpcpp/grpcpp.h"
#include "nnlab/v1/cluster.grpc.pb.h"
#include "nnlab/v1/training.pb.h"
#include "server/cluster/cluster_node.h"
#include "server/convert.h"
#include "server/datasets.h"

namespace nnlab::server {

class GlooCollective;

// spec.replicas with 0 meaning 1.
int ReplicasOf(const v1::JobSpec& spec);
// spec.min_replicas with 0 meaning replicas: the fewest replicas an
// attempt of the job may run on.
int MinReplicasOf(const v1::JobSpec& spec);
// Replicas for an attempt that starts now with `alive_workers` live workers
// besides the coordinator: as many as are alive, at most replicas, or 0
// when that is fewer than MinReplicasOf(spec). The global batch stays
// replicas x batch_size either way (TrainOptionsOf): fewer replicas take
// larger slices of it, so steps, data order and the averaged gradient do
// not change.
int AttemptReplicas(const v1::JobSpec& spec, int alive_workers);
// `spec` with batch_size = replicas x the effective batch: what the steps
// per epoch and the total steps of a distributed job count.
// REQUIRES: ValidateJobSpecFields(spec) is OK.
v1::JobSpec GlobalBatchSpec(const v1::JobSpec& spec);

// StartJob's check: InvalidArgument for replicas < 0 or min_replicas
// outside [0, replicas]; FailedPrecondition for a GAN with replicas > 1
// or fewer live members than MinReplicasOf(spec) (`cluster` may be null: one
// member).
absl::Status CheckReplicas(const v1::JobSpec& spec, bool is_gan,
                           ClusterNode* cluster);

// Whether an error of a distributed attempt is the cluster's rather than
// the job's own: a member died, was cut off or could not be reached
// (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED). The job manager puts such a
// job back in the queue; any other error (bad spec, non-finite loss, a
// data set a member lacks) ends it as for a local job.
bool IsClusterFault(const absl::Status& status);

// Live workers (members other than the coordinator); 0 without a cluster.
int AliveWorkers(ClusterNode* cluster);

// The state replicas start from: `trainer`'s RunState with the model spec,
// as a serialised StoredCheckpoint (trained_steps = base_steps + step).
std::string ReplicaCheckpoint(const v1::ModelSpec& spec, Trainer* trainer,
                              int64_t base_steps);

// Rank 0's side of one attempt of a distributed job. Not thread-safe.
class ReplicaGroup {
 public:
  // Places ranks 1..size-1 (size: this attempt's replicas, at most
  // spec.replicas; Unavailable when too few members are alive after waiting up
  // to the collective timeout for them, or sooner once `should_stop` says so),
  // starts their RunReplica calls with `checkpoint` (rank 0's state, serialised
  // StoredCheckpoint), and connects rank 0's collective. Errors of the
  // connection say which member failed to show up.
  static absl::StatusOr<std::unique_ptr<ReplicaGroup>> Start(
      ClusterNode* cluster, const std::string& job_id, const v1::JobSpec& spec,
      int size, std::string checkpoint,
      const std::function<bool()>& should_stop);
  ~ReplicaGroup();

  Collective* collective();
  // Member ids, rank 0 (the coordinator) first.
  const std::vector<std::string>& members() const { return members_; }

  // Waits for the other replicas. If `status` (rank 0's result) is an
  // error they are cancelled first. Returns `status`, with the first
  // replica error appended when there is one (it usually names the
  // cause: a member that died), or a replica's error if rank 0 succeeded.
  // A replica's own error that is no cluster fault (IsClusterFault) gives
  // the result its code: the job failed on that member, not the member.
  absl::Status Finish(absl::Status status);

 private:
  struct Replica {
    std::string member_id;
    grpc::ClientContext ctx;
    v1::RunReplicaResponse resp;
    grpc::Status status;
    std::thread thread;
  };
  ReplicaGroup() = default;
  void CancelAndJoin();

  ClusterNode* cluster_ = nullptr;
  std::string prefix_;
  std::vector<std::string> members_;
  std::vector<std::unique_ptr<Replica>> replicas_;
  std::unique_ptr<GlooCollective> collective_;
};

// What a member needs to run a job the coordinator shipped to it: the
// model and trainer restored from `checkpoint` (a serialised
// StoredCheckpoint: the model spec and the full RunState) and the data
// views of `spec`, the test view as the coordinator's (every replica
// evaluates its slice of it). `test` is null when the data set has none.
struct MemberRun {
  StoredCheckpoint checkpoint;
  std::unique_ptr<Model> model;
  std::unique_ptr<Trainer> trainer;  // Trains `model`.
  std::unique_ptr<DatasetView> train;
  std::unique_ptr<DatasetView> test;
  int64_t base_steps = 0;  // The model's steps before this job.
};
// InvalidArgument for a checkpoint that does not parse or does not fit;
// the data set's lookup error when this member lacks it.
// REQUIRES: ValidateJobSpecFields(spec) is OK.
absl::StatusOr<MemberRun> PrepareMemberRun(const v1::JobSpec& spec,
                                           const std::string& checkpoint,
                                           DatasetRegistry* datasets,
                                           const Limits& limits);

// A member's side: runs replica req.rank() of a job until it ends (the
// RunReplica handler). `cancelled` is polled between steps. It evaluates
// its slice of the data set's test split whenever rank 0 evaluates (same
// view as rank 0's; core/train/trainer.h, EvaluateSharded).
absl::StatusOr<int64_t> RunReplica(const v1::RunReplicaRequest& req,
                                   ClusterNode* cluster,
                                   DatasetRegistry* datasets,
                                   const Limits& limits,
                                   const std::function<bool()>& cancelled);

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_CLUSTER_DISTRIBUTED_H_
