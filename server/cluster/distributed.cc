#include "server/cluster/distributed.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/model/model.h"
#include "core/status_macros.h"
#include "core/train/run_state.h"
#include "server/cluster/gloo_collective.h"
#include "server/cluster/grpc_store.h"
#include "server/job_spec.h"
#include "server/log.h"
#include "server/storage.pb.h"
#include "server/weights.h"

namespace nnlab::server {
namespace {

std::chrono::milliseconds Millis(absl::Duration d) {
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

GlooCollective::Options CollectiveOptions(const ClusterNode& node, int rank,
                                          int size) {
  GlooCollective::Options o;
  o.rank = rank;
  o.size = size;
  o.address = node.options().collective_listen;
  o.timeout = Millis(node.options().collective_timeout);
  return o;
}

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      s.error_message());
}

}  // namespace

bool IsClusterFault(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) ||
         absl::IsAborted(status);
}

int AliveWorkers(ClusterNode* cluster) {
  if (cluster == nullptr) return 0;
  int n = 0;
  for (const v1::Member& m : cluster->membership()->Alive()) {
    n += m.coordinator() ? 0 : 1;
  }
  return n;
}

int ReplicasOf(const v1::JobSpec& spec) { return std::max(1, spec.replicas()); }

int MinReplicasOf(const v1::JobSpec& spec) {
  return spec.min_replicas() > 0 ? spec.min_replicas() : ReplicasOf(spec);
}

int AttemptReplicas(const v1::JobSpec& spec, int alive_workers) {
  const int n = std::min(ReplicasOf(spec), 1 + std::max(0, alive_workers));
  return n >= MinReplicasOf(spec) ? n : 0;
}

v1::JobSpec GlobalBatchSpec(const v1::JobSpec& spec) {
  v1::JobSpec global = spec;
  global.set_batch_size(EffectiveOf(spec).batch_size * ReplicasOf(spec));
  return global;
}

absl::Status CheckReplicas(const v1::JobSpec& spec, bool is_gan,
                           ClusterNode* cluster) {
  if (spec.replicas() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.replicas must be >= 1 (0: 1), got ", spec.replicas()));
  }
  if (spec.min_replicas() < 0 || spec.min_replicas() > ReplicasOf(spec)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.min_replicas must be in [0, replicas = ", ReplicasOf(spec),
        "], got ", spec.min_replicas()));
  }
  if (ReplicasOf(spec) == 1) return absl::OkStatus();
  if (is_gan) {
    return absl::FailedPreconditionError(
        "spec.replicas: GAN jobs cannot run data-parallel yet; use "
        "replicas = 1");
  }
  const size_t alive =
      cluster == nullptr ? 1 : cluster->membership()->Alive().size();
  if (static_cast<size_t>(MinReplicasOf(spec)) > alive) {
    return absl::FailedPreconditionError(absl::StrCat(
        spec.min_replicas() > 0 ? "spec.min_replicas = " : "spec.replicas = ",
        MinReplicasOf(spec), " but the cluster has ", alive, " live member",
        alive == 1 ? "" : "s",
        " (the coordinator included); start workers with nnlabd --join"));
  }
  if (spec.batch_size() > 0 &&
      int64_t{spec.batch_size()} * ReplicasOf(spec) > kMaxBatchSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.batch_size x replicas must be <= ", kMaxBatchSize));
  }
  return absl::OkStatus();
}

// --- Rank 0 ----------------------------------------------------------------

std::string ReplicaCheckpoint(const v1::ModelSpec& spec, Trainer* trainer,
                              int64_t base_steps) {
  StoredCheckpoint ckpt;
  v1::ModelFile* file = ckpt.mutable_model();
  file->set_format_version(1);
  *file->mutable_spec() = spec;
  const RunState state = RunState::Capture(trainer);
  RunStateToProto(state, base_steps + state.step, &ckpt);
  return ckpt.SerializeAsString();
}

absl::StatusOr<std::unique_ptr<ReplicaGroup>> ReplicaGroup::Start(
    ClusterNode* cluster, const std::string& job_id, const v1::JobSpec& spec,
    int size, std::string checkpoint,
    const std::function<bool()>& should_stop) {
  const int n = size;
  if (n < 2 || n > ReplicasOf(spec)) {
    return absl::InternalError(absl::StrCat("bad replica count ", n));
  }
  if (cluster == nullptr) {
    return absl::FailedPreconditionError("this server has no cluster");
  }
  // Workers only, least loaded first (stable: earliest joined first). A
  // job resumed at start-up waits (up to the collective timeout) for its
  // workers to join again.
  std::vector<v1::Member> workers;
  const absl::Time give_up =
      absl::Now() + cluster->options().collective_timeout;
  while (true) {
    workers.clear();
    for (v1::Member& m : cluster->membership()->Alive()) {
      if (!m.coordinator()) workers.push_back(std::move(m));
    }
    if (static_cast<int>(workers.size()) >= n - 1 || absl::Now() > give_up ||
        (should_stop && should_stop())) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  std::stable_sort(workers.begin(), workers.end(),
                   [](const v1::Member& a, const v1::Member& b) {
                     const double la = double(a.running_jobs()) /
                                       std::max(1, a.max_concurrent_jobs());
                     const double lb = double(b.running_jobs()) /
                                       std::max(1, b.max_concurrent_jobs());
                     return la < lb;
                   });
  if (static_cast<int>(workers.size()) < n - 1) {
    return absl::UnavailableError(
        absl::StrCat("job needs ", n, " replicas but only ", workers.size(),
                     " worker(s) are alive besides the coordinator"));
  }
  auto group = std::unique_ptr<ReplicaGroup>(new ReplicaGroup());
  group->cluster_ = cluster;
  group->prefix_ =
      absl::StrCat("job/", job_id, "/", absl::ToUnixNanos(absl::Now()), "/");
  group->members_.push_back("coordinator");
  // The RunReplica calls have no deadline (a job runs for as long as it
  // runs); a replica that dies or hangs fails rank 0's collective within
  // the collective timeout, and Finish then cancels the calls.
  for (int rank = 1; rank < n; ++rank) {
    const v1::Member& m = workers[rank - 1];
    group->members_.push_back(m.member_id());
    auto r = std::make_unique<Replica>();
    r->member_id = m.member_id();
    if (!cluster->token().empty()) {
      r->ctx.AddMetadata("authorization", "Bearer " + cluster->token());
    }
    v1::RunReplicaRequest req;
    req.set_job_id(job_id);
    *req.mutable_spec() = spec;
    req.set_checkpoint(checkpoint);
    req.set_rank(rank);
    req.set_size(n);
    req.set_rendezvous_prefix(group->prefix_);
    auto stub =
        v1::ClusterService::NewStub(cluster->MemberChannel(m.address()));
    Replica* raw = r.get();
    r->thread = std::thread(
        [raw, req = std::move(req), stub = std::move(stub)]() mutable {
          raw->status = stub->RunReplica(&raw->ctx, req, &raw->resp);
        });
    group->replicas_.push_back(std::move(r));
  }
  LocalStore store(cluster->store(), group->prefix_,
                   Millis(cluster->options().collective_timeout));
  absl::StatusOr<std::unique_ptr<GlooCollective>> c =
      GlooCollective::Create(CollectiveOptions(*cluster, 0, n), &store);
  if (!c.ok()) {
    absl::Status s = group->Finish(c.status());
    return s;
  }
  group->collective_ = std::move(c).value();
  LogInfo(absl::StrCat("job ", job_id, ": ", n, " replicas connected"));
  return group;
}

ReplicaGroup::~ReplicaGroup() {
  CancelAndJoin();
  if (cluster_ != nullptr) cluster_->store()->ErasePrefix(prefix_);
}

Collective* ReplicaGroup::collective() { return collective_.get(); }

void ReplicaGroup::CancelAndJoin() {
  for (auto& r : replicas_) r->ctx.TryCancel();
  for (auto& r : replicas_) {
    if (r->thread.joinable()) r->thread.join();
  }
}

absl::Status ReplicaGroup::Finish(absl::Status status) {
  if (!status.ok()) {
    // Rank 0 is gone from the collective; the others would fail on their
    // own within the timeout, but need not wait for it.
    collective_.reset();
    CancelAndJoin();
  } else {
    for (auto& r : replicas_) {
      if (r->thread.joinable()) r->thread.join();
    }
  }
  collective_.reset();
  for (const auto& r : replicas_) {
    if (r->status.ok() || r->status.error_code() == grpc::StatusCode::CANCELLED)
      continue;
    const absl::Status replica = FromGrpc(r->status);
    const std::string why =
        absl::StrCat("replica on ", r->member_id, ": ", replica.ToString());
    if (status.ok()) return absl::Status(replica.code(), why);
    const absl::StatusCode code =
        IsClusterFault(replica) ? status.code() : replica.code();
    return absl::Status(code, absl::StrCat(status.message(), "; ", why));
  }
  return status;
}

// --- Ranks 1..N-1 -----------------------------------------------------------

absl::StatusOr<MemberRun> PrepareMemberRun(const v1::JobSpec& spec,
                                           const std::string& checkpoint,
                                           DatasetRegistry* datasets,
                                           const Limits& limits) {
  MemberRun run;
  if (!run.checkpoint.ParseFromString(checkpoint)) {
    return absl::InvalidArgumentError("the job's checkpoint does not parse");
  }
  NNLAB_ASSIGN_OR_RETURN(ModelSpec model_spec,
                         ModelSpecFromProto(run.checkpoint.model().spec(),
                                            "checkpoint.model.spec", limits));
  NNLAB_ASSIGN_OR_RETURN(run.model, Model::Build(model_spec));
  NNLAB_ASSIGN_OR_RETURN(TrainOptions opts, TrainOptionsOf(spec));
  NNLAB_ASSIGN_OR_RETURN(run.trainer, Trainer::Create(run.model.get(), opts));
  NNLAB_ASSIGN_OR_RETURN(RunState state,
                         RunStateFromProto(run.checkpoint, limits));
  NNLAB_RETURN_IF_ERROR(state.Restore(run.trainer.get()));
  // The checkpoint's trained_steps count the job's own steps in.
  run.base_steps = run.checkpoint.model().trained_steps() - state.step;

  NNLAB_ASSIGN_OR_RETURN(std::shared_ptr<const DatasetPair> data,
                         datasets->Get(spec.dataset()));
  Shape sample = data->train->sample_shape();
  if (!spec.sample_shape().empty()) {
    sample = Shape(spec.sample_shape().begin(), spec.sample_shape().end());
  }
  run.train = std::make_unique<DatasetView>(
      data->train, TrainSamples(spec, data->train->size()), sample);
  if (data->test != nullptr) {
    run.test =
        std::make_unique<DatasetView>(data->test, data->test->size(), sample);
  }
  return run;
}

absl::StatusOr<int64_t> RunReplica(const v1::RunReplicaRequest& req,
                                   ClusterNode* cluster,
                                   DatasetRegistry* datasets,
                                   const Limits& limits,
                                   const std::function<bool()>& cancelled) {
  if (req.size() < 2 || req.size() > ReplicasOf(req.spec()) || req.rank() < 1 ||
      req.rank() >= req.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "replica rank ", req.rank(), " of ", req.size(), " is invalid"));
  }
  if (cluster->coordinator_channel() == nullptr) {
    return absl::FailedPreconditionError(
        "this nnlabd joined no cluster (start it with --join)");
  }
  if (req.rendezvous_prefix().empty() || req.rendezvous_prefix().size() > 128) {
    return absl::InvalidArgumentError("bad rendezvous prefix");
  }
  const v1::JobSpec& spec = req.spec();
  NNLAB_RETURN_IF_ERROR(ValidateJobSpecFields(spec));
  NNLAB_ASSIGN_OR_RETURN(MemberRun run, PrepareMemberRun(spec, req.checkpoint(),
                                                         datasets, limits));
  Trainer* trainer = run.trainer.get();

  const std::chrono::milliseconds timeout =
      Millis(cluster->options().collective_timeout);
  GrpcStore store(cluster->coordinator_channel(), cluster->token(),
                  req.rendezvous_prefix(), timeout);
  NNLAB_ASSIGN_OR_RETURN(
      std::unique_ptr<GlooCollective> collective,
      GlooCollective::Create(
          CollectiveOptions(*cluster, req.rank(), req.size()), &store));
  trainer->set_collective(collective.get());
  LogInfo(absl::StrCat("job ", req.job_id(), ": replica ", req.rank(), " of ",
                       req.size(), " starts at step ", trainer->state().step));

  Trainer::Callbacks cb;
  bool reached_max_steps = false;
  cb.on_step = [&](const StepStats& stats) -> absl::Status {
    // Rank 0 stops at max_steps after the same step.
    if (spec.max_steps() > 0 && stats.step >= spec.max_steps()) {
      reached_max_steps = true;
      return absl::CancelledError("max_steps reached");
    }
    return absl::OkStatus();
  };
  cb.should_stop = cancelled;
  absl::Status s;
  if (!(spec.max_steps() > 0 && trainer->state().step >= spec.max_steps())) {
    s = trainer->Run(*run.train, run.test.get(), cb);
  }
  if (reached_max_steps) s = absl::OkStatus();
  LogInfo(absl::StrCat("job ", req.job_id(), ": replica ", req.rank(),
                       " ended at step ", trainer->state().step, ": ",
                       s.ToString()));
  NNLAB_RETURN_IF_ERROR(s);
  return trainer->state().step;
}

}  // namespace nnlab::server
