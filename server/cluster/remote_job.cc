#include "server/cluster/remote_job.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "core/model/model.h"
#include "core/status_macros.h"
#include "core/train/run_state.h"
#include "core/train/trainer.h"
#include "grpcpp/grpcpp.h"
#include "nnlab/v1/cluster.grpc.pb.h"
#include "server/cluster/distributed.h"
#include "server/job_spec.h"
#include "server/log.h"
#include "server/weights.h"

namespace nnlab::server {

std::optional<v1::Member> PlaceJob(ClusterNode* cluster, int local_running,
                                   int local_max,
                                   const std::map<std::string, int>& placed,
                                   bool local_only,
                                   const std::string& exclude) {
  std::optional<v1::Member> best;
  double best_load = 0;
  auto consider = [&](const v1::Member& m, int running, int max) {
    if (m.member_id() == exclude || running >= std::max(1, max)) return;
    const double load = double(running) / std::max(1, max);
    // Strictly less: ties stay with the earlier candidate (coordinator
    // first, then workers in join order).
    if (!best || load < best_load) {
      best = m;
      best_load = load;
    }
  };
  v1::Member self;
  self.set_member_id(kCoordinatorMember);
  self.set_coordinator(true);
  consider(self, local_running, local_max);
  if (local_only || cluster == nullptr) return best;
  for (const v1::Member& m : cluster->membership()->Alive()) {
    if (m.coordinator()) continue;
    auto it = placed.find(m.member_id());
    const int mine = it == placed.end() ? 0 : it->second;
    consider(m, std::max(m.running_jobs(), mine), m.max_concurrent_jobs());
  }
  return best;
}

absl::StatusOr<StoredCheckpoint> RunJobOnMember(ClusterNode* cluster,
                                                const v1::Member& member,
                                                const std::string& job_id,
                                                const v1::JobSpec& spec,
                                                std::string checkpoint,
                                                const RemoteJobCallbacks& cb) {
  // Checkpoints may exceed gRPC's default 4 MiB receive limit.
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  auto stub = v1::ClusterService::NewStub(grpc::CreateCustomChannel(
      member.address(), grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext ctx;
  if (!cluster->token().empty()) {
    ctx.AddMetadata("authorization", "Bearer " + cluster->token());
  }
  // No deadline: a job runs as long as it runs. A dead member breaks the
  // stream (keepalive-free loopback: the connection closes with the
  // process); `should_stop` cancels it.
  v1::RunJobRequest req;
  req.set_job_id(job_id);
  *req.mutable_spec() = spec;
  req.set_checkpoint(std::move(checkpoint));
  std::atomic<bool> stopped{false};
  absl::Notification done;
  // The reading thread blocks in Read; this one turns a stop request into
  // a cancelled call.
  std::thread stopper([&] {
    while (!done.WaitForNotificationWithTimeout(absl::Milliseconds(50))) {
      if (cb.should_stop()) {
        stopped = true;
        ctx.TryCancel();
        return;
      }
    }
  });
  std::unique_ptr<grpc::ClientReader<v1::RunJobResponse>> reader =
      stub->RunJob(&ctx, req);
  v1::RunJobResponse msg;
  std::optional<StoredCheckpoint> final_state;
  absl::Status failed;
  while (failed.ok() && reader->Read(&msg)) {
    switch (msg.what_case()) {
      case v1::RunJobResponse::kEvent:
        cb.on_event(std::move(*msg.mutable_event()));
        break;
      case v1::RunJobResponse::kCheckpoint: {
        StoredCheckpoint ckpt;
        if (!ckpt.ParseFromString(msg.checkpoint())) {
          failed = absl::DataLossError(absl::StrCat("a checkpoint from member ",
                                                    member.member_id(),
                                                    " does not parse"));
          break;
        }
        failed = cb.on_checkpoint(std::move(ckpt));
        break;
      }
      case v1::RunJobResponse::kFinalState: {
        StoredCheckpoint ckpt;
        if (!ckpt.ParseFromString(msg.final_state())) {
          failed = absl::DataLossError(
              absl::StrCat("the final state from member ", member.member_id(),
                           " does not parse"));
          break;
        }
        final_state = std::move(ckpt);
        break;
      }
      default:
        break;  // A newer member's message this coordinator ignores.
    }
  }
  if (!failed.ok()) ctx.TryCancel();
  const grpc::Status s = reader->Finish();
  done.Notify();
  stopper.join();
  if (stopped) return absl::CancelledError("stopped");
  NNLAB_RETURN_IF_ERROR(failed);
  if (!s.ok()) {
    const auto code = static_cast<absl::StatusCode>(s.error_code());
    // A broken stream says UNAVAILABLE (or CANCELLED when the peer reset
    // it): the member is gone, not the job's fault.
    if (code == absl::StatusCode::kUnavailable ||
        code == absl::StatusCode::kCancelled) {
      return absl::UnavailableError(
          absl::StrCat("member ", member.member_id(), " (", member.address(),
                       ") lost: ", s.error_message()));
    }
    return absl::Status(code, absl::StrCat("on member ", member.member_id(),
                                           ": ", s.error_message()));
  }
  if (!final_state) {
    return absl::UnavailableError(absl::StrCat(
        "member ", member.member_id(), " ended the run without its result"));
  }
  return *std::move(final_state);
}

// --- The member's side ------------------------------------------------------

absl::Status ServeRunJob(
    const v1::RunJobRequest& req, DatasetRegistry* datasets,
    const Limits& limits,
    const std::function<bool(const v1::RunJobResponse&)>& write,
    const std::function<bool()>& cancelled) {
  const v1::JobSpec& spec = req.spec();
  NNLAB_RETURN_IF_ERROR(ValidateJobSpecFields(spec));
  if (spec.replicas() > 1) {
    return absl::InvalidArgumentError(
        "RunJob runs one-replica jobs; use RunReplica");
  }
  NNLAB_ASSIGN_OR_RETURN(MemberRun run, PrepareMemberRun(spec, req.checkpoint(),
                                                         datasets, limits));
  Trainer* trainer = run.trainer.get();
  const DatasetView& train = *run.train;
  const DatasetView* test = run.test.get();
  LogInfo(absl::StrCat("job ", req.job_id(), ": running here from step ",
                       trainer->state().step));

  // The same events, cadence and end as a local run (JobManager::Train).
  const EffectiveSpec eff = EffectiveOf(spec);
  const int64_t ntrain = train.size();
  const int64_t per_epoch = StepsPerEpoch(spec, ntrain);
  auto state_record = [&]() {
    StoredCheckpoint out;
    out.set_job_id(req.job_id());
    v1::ModelFile* file = out.mutable_model();
    file->set_format_version(1);
    *file->mutable_spec() = run.checkpoint.model().spec();
    const RunState state = RunState::Capture(trainer);
    RunStateToProto(state, run.base_steps + state.step, &out);
    return out.SerializeAsString();
  };
  auto send = [&](const v1::RunJobResponse& m) -> absl::Status {
    if (!write(m)) return absl::CancelledError("the coordinator went away");
    return absl::OkStatus();
  };
  SampleRate rate;
  bool reached_max_steps = false;
  int64_t last_eval_step = -1;
  Trainer::Callbacks cb;
  cb.on_step = [&](const StepStats& stats) -> absl::Status {
    v1::RunJobResponse m;
    StepStatsToEvent(stats, m.mutable_event());
    m.mutable_event()->set_samples_per_sec(
        rate.Step(std::min<int64_t>(eff.batch_size, ntrain)));
    NNLAB_RETURN_IF_ERROR(send(m));
    const bool epoch_end = trainer->state().batch_in_epoch >= per_epoch;
    if (CheckpointDue(spec, stats.step, epoch_end)) {
      v1::RunJobResponse c;
      c.set_checkpoint(state_record());
      NNLAB_RETURN_IF_ERROR(send(c));
    }
    if (spec.max_steps() > 0 && stats.step >= spec.max_steps()) {
      reached_max_steps = true;
      return absl::CancelledError("max_steps reached");
    }
    return absl::OkStatus();
  };
  absl::Status eval_sent;
  cb.on_eval = [&](const StepStats& at, const EvalResult& r) {
    v1::RunJobResponse m;
    v1::MetricEvent* e = m.mutable_event();
    e->set_phase(v1::PHASE_EVAL);
    e->set_step(trainer->state().step);
    e->set_epoch(at.epoch);
    e->set_loss(r.loss);
    e->set_accuracy(r.accuracy);
    if (eval_sent.ok()) eval_sent = send(m);
    last_eval_step = trainer->state().step;
  };
  cb.should_stop = [&] { return !eval_sent.ok() || cancelled(); };

  absl::Status status;
  if (spec.max_steps() > 0 && trainer->state().step >= spec.max_steps()) {
    reached_max_steps = true;
  } else {
    status = trainer->Run(train, test, cb);
  }
  NNLAB_RETURN_IF_ERROR(eval_sent);
  if (reached_max_steps) {
    status = absl::OkStatus();
    // As a local run: a job stopped by max_steps mid-epoch still ends
    // with an evaluation of its final weights.
    if (test != nullptr && last_eval_step != trainer->state().step) {
      NNLAB_ASSIGN_OR_RETURN(EvalResult r,
                             Evaluate(run.model.get(), *test, eff.batch_size));
      StepStats at;
      at.step = trainer->state().step;
      at.epoch = std::min(trainer->state().epoch, eff.epochs - 1);
      cb.on_eval(at, r);
      NNLAB_RETURN_IF_ERROR(eval_sent);
    }
  }
  LogInfo(absl::StrCat("job ", req.job_id(), ": run here ended at step ",
                       trainer->state().step, ": ", status.ToString()));
  NNLAB_RETURN_IF_ERROR(status);
  v1::RunJobResponse fin;
  fin.set_final_state(state_record());
  return send(fin);
}

}  // namespace nnlab::server
