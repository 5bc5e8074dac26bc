// One-replica jobs placed on cluster members (server/cluster/remote_job.h),
// with real nnlabd processes on loopback: a coordinator whose one job slot
// (--max_jobs=1) is taken by a long job, and one worker. A second job lands
// on the worker; its events reach a client watching the coordinator, its
// checkpoints the coordinator's store, its result the coordinator's model
// registry. kill -9 of the worker after a checkpoint: the job resumes from
// that checkpoint on the coordinator and ends with the weights of an
// uninterrupted run.
#include <signal.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "nnlab/v1/cluster.grpc.pb.h"
#include "tests/server/cluster_test_util.h"

namespace nnlab::testing {
namespace {

// The coordinator has one job slot, so a second job goes to the worker.
class PlacementCluster : public Cluster {
 public:
  PlacementCluster() : Cluster(/*timeout_ms=*/10000, {"--max_jobs=1"}) {}
};

v1::JobSpec PlacementSpec(const std::string& model, int64_t max_steps) {
  v1::JobSpec spec = Spec(model, 16, /*replicas=*/1);
  spec.set_checkpoint_every_steps(100);
  // The test data's MNIST may be a subset: enough epochs for max_steps.
  spec.set_epochs(50);
  spec.set_max_steps(max_steps);  // 0: the 50 epochs.
  return spec;
}

// The coordinator runs `long_job` in its only slot.
std::string StartLongJob(Client& c) {
  CreateModel(c, "long");
  const v1::Job job = Start(c, PlacementSpec("long", 0));
  const v1::Job running = WaitFor(c, job.job_id(), [](const v1::Job& j) {
    return j.state() == v1::JOB_STATE_RUNNING && j.step() > 0;
  });
  EXPECT_EQ(running.placed_on(), "coordinator");
  return job.job_id();
}

TEST(PlacementTest, JobRunsOnIdleWorkerAndStreamsThroughCoordinator) {
  PlacementCluster cluster;
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.AddWorker().ok());
  const std::vector<v1::Member> members = cluster.Members();
  ASSERT_EQ(members.size(), 2u);
  Client c = cluster.MakeClient();
  const std::string long_id = StartLongJob(c);
  CreateModel(c, "m");
  const v1::Job job = Start(c, PlacementSpec("m", 300));

  // A client watching the coordinator sees the whole run.
  v1::StreamMetricsRequest req;
  req.set_job_id(job.job_id());
  auto ctx = Ctx(60, kToken);
  auto reader = c.training->StreamMetrics(ctx.get(), req);
  v1::MetricEvent e;
  int64_t train_events = 0;
  int64_t evals = 0;
  double last_eval_accuracy = -1;
  v1::JobState last_state = v1::JOB_STATE_UNSPECIFIED;
  while (reader->Read(&e)) {
    if (e.phase() == v1::PHASE_TRAIN) {
      EXPECT_EQ(e.step(), train_events + 1);
      ++train_events;
    } else if (e.phase() == v1::PHASE_EVAL) {
      ++evals;
      last_eval_accuracy = e.accuracy();
    } else if (e.phase() == v1::PHASE_STATE) {
      last_state = e.job_state();
    }
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(train_events, 300);
  EXPECT_EQ(evals, 1);  // The final one: 300 steps are less than an epoch.
  EXPECT_EQ(last_state, v1::JOB_STATE_COMPLETED);

  const v1::Job done = Get(c, job.job_id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_COMPLETED) << done.failure_reason();
  EXPECT_EQ(done.placed_on(), members[1].member_id());
  EXPECT_EQ(done.step(), 300);
  EXPECT_EQ(done.checkpoint_step(), 300);  // In the coordinator's store.
  EXPECT_NE(cluster.ReadLog("worker0").find(
                absl::StrCat("job ", job.job_id(), ": running here")),
            std::string::npos);
  // The long job still holds the coordinator's slot: the worker did the work.
  EXPECT_EQ(Get(c, long_id).state(), v1::JOB_STATE_RUNNING);

  // The coordinator's registry has the trained weights.
  v1::EvaluateRequest ereq;
  ereq.set_model_id("m");
  ereq.set_dataset("mnist");
  v1::EvaluateResponse eresp;
  auto ectx = Ctx(60, kToken);
  ASSERT_TRUE(c.training->Evaluate(ectx.get(), ereq, &eresp).ok());
  EXPECT_GT(eresp.accuracy(), 0.7);
  EXPECT_NEAR(eresp.accuracy(), last_eval_accuracy, 1e-3);
  EXPECT_NEAR(eresp.accuracy(), done.last_eval().accuracy(), 1e-3);
  CancelJob(c, long_id);
}

TEST(PlacementTest, KilledWorkerJobResumesOnCoordinatorFromCheckpoint) {
  PlacementCluster cluster;
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.AddWorker().ok());
  const std::string worker_id = cluster.Members().at(1).member_id();
  Client c = cluster.MakeClient();
  const std::string long_id = StartLongJob(c);
  CreateModel(c, "m");
  CreateModel(c, "ref");
  const int64_t kSteps = 3000;
  const v1::Job job = Start(c, PlacementSpec("m", kSteps));
  // State certain: the coordinator holds a checkpoint taken on the worker,
  // and 2,900 steps remain (about 2 s here).
  const v1::Job mid = WaitFor(c, job.job_id(), [](const v1::Job& j) {
    return j.checkpoint_step() >= 100 || Ended(j);
  });
  ASSERT_EQ(mid.state(), v1::JOB_STATE_RUNNING);
  ASSERT_EQ(mid.placed_on(), worker_id);
  ASSERT_TRUE(cluster.worker(0).Signal(SIGKILL) > 0);
  // The coordinator's slot is taken: the job waits for it, then resumes.
  absl::SleepFor(absl::Milliseconds(500));
  const v1::Job waiting = Get(c, job.job_id());
  EXPECT_EQ(waiting.state(), v1::JOB_STATE_RUNNING);
  EXPECT_LT(waiting.step(), kSteps);
  CancelJob(c, long_id);
  const v1::Job done = WaitFor(c, job.job_id(), Ended);
  ASSERT_EQ(done.state(), v1::JOB_STATE_COMPLETED) << done.failure_reason();
  EXPECT_EQ(done.placed_on(), "coordinator");
  EXPECT_EQ(done.step(), kSteps);
  EXPECT_GE(done.resume_count(), 1);
  EXPECT_NE(cluster.ReadLog("coordinator").find("lost"), std::string::npos);
  if (HasFailure()) {
    std::printf("%s\n---\n%s", cluster.ReadLog("coordinator").c_str(),
                cluster.ReadLog("worker0").c_str());
  }

  // The same job uninterrupted, here.
  const v1::Job ref = Start(c, PlacementSpec("ref", kSteps));
  const v1::Job ref_done = WaitFor(c, ref.job_id(), Ended);
  ASSERT_EQ(ref_done.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(ref_done.placed_on(), "coordinator");
  const std::vector<float> w = Weights(c, "m");
  const std::vector<float> wr = Weights(c, "ref");
  ASSERT_EQ(w.size(), wr.size());
  ASSERT_FALSE(w.empty());
  float worst = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    worst = std::max(worst, std::abs(w[i] - wr[i]));
  }
  EXPECT_EQ(worst, 0.0f) << "resumed and uninterrupted runs differ";
  EXPECT_NEAR(done.last_loss(), ref_done.last_loss(), 1e-6);
}

// Pause and cancel reach the remote run; a resumed job is placed again and
// continues from the checkpoint the worker sent.
TEST(PlacementTest, PauseResumeAndCancelActOnTheRemoteRun) {
  PlacementCluster cluster;
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.AddWorker().ok());
  const std::string worker_id = cluster.Members().at(1).member_id();
  Client c = cluster.MakeClient();
  const std::string long_id = StartLongJob(c);
  CreateModel(c, "m");
  const int64_t kSteps = 3000;
  const v1::Job job = Start(c, PlacementSpec("m", kSteps));
  const v1::Job mid = WaitFor(c, job.job_id(), [](const v1::Job& j) {
    return j.checkpoint_step() >= 100 || Ended(j);
  });
  ASSERT_EQ(mid.state(), v1::JOB_STATE_RUNNING);
  ASSERT_EQ(mid.placed_on(), worker_id);
  {
    v1::PauseJobRequest req;
    req.set_job_id(job.job_id());
    v1::Job j;
    auto ctx = Ctx(10, kToken);
    ASSERT_TRUE(c.training->PauseJob(ctx.get(), req, &j).ok());
  }
  const v1::Job paused = WaitFor(c, job.job_id(), [](const v1::Job& j) {
    return j.state() != v1::JOB_STATE_RUNNING;
  });
  ASSERT_EQ(paused.state(), v1::JOB_STATE_PAUSED) << paused.failure_reason();
  EXPECT_GE(paused.checkpoint_step(), 100);
  EXPECT_LT(paused.checkpoint_step(), kSteps);
  {
    v1::ResumeJobRequest req;
    req.set_job_id(job.job_id());
    v1::Job j;
    auto ctx = Ctx(10, kToken);
    ASSERT_TRUE(c.training->ResumeJob(ctx.get(), req, &j).ok());
  }
  const v1::Job done = WaitFor(c, job.job_id(), Ended);
  ASSERT_EQ(done.state(), v1::JOB_STATE_COMPLETED) << done.failure_reason();
  EXPECT_EQ(done.placed_on(), worker_id);  // The coordinator is still busy.
  EXPECT_EQ(done.step(), kSteps);

  // Cancel: the worker's run stops too.
  CreateModel(c, "n");
  const v1::Job other = Start(c, PlacementSpec("n", 0));
  WaitFor(c, other.job_id(), [&](const v1::Job& j) {
    return j.placed_on() == worker_id && j.step() > 0;
  });
  CancelJob(c, other.job_id());
  const v1::Job cancelled = WaitFor(c, other.job_id(), Ended);
  EXPECT_EQ(cancelled.state(), v1::JOB_STATE_CANCELLED);
  const std::string ended =
      absl::StrCat("job ", other.job_id(), ": run here ended at step ");
  for (int i = 0; i < 100; ++i) {
    if (cluster.ReadLog("worker0").find(ended) != std::string::npos) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_NE(cluster.ReadLog("worker0").find(ended), std::string::npos);
  CancelJob(c, long_id);
}

// RunJob is for the coordinator; garbage gets clear codes, never a crash.
TEST(PlacementTest, RunJobRejectsBadInput) {
  PlacementCluster cluster;
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.AddWorker().ok());
  auto stub = v1::ClusterService::NewStub(grpc::CreateChannel(
      cluster.worker(0).address(), grpc::InsecureChannelCredentials()));
  auto code = [&](const v1::RunJobRequest& req, const char* token) {
    auto ctx = Ctx(30, token);
    auto reader = stub->RunJob(ctx.get(), req);
    v1::RunJobResponse resp;
    while (reader->Read(&resp)) {
    }
    return reader->Finish().error_code();
  };
  v1::RunJobRequest req;
  req.set_job_id("j");
  *req.mutable_spec() = PlacementSpec("m", 10);
  req.set_checkpoint("not a checkpoint");
  EXPECT_EQ(code(req, kToken), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(code(req, "wrong"), grpc::StatusCode::UNAUTHENTICATED);
  req.mutable_spec()->set_replicas(2);
  EXPECT_EQ(code(req, kToken), grpc::StatusCode::INVALID_ARGUMENT);
  req.mutable_spec()->set_replicas(1);
  req.mutable_spec()->set_batch_size(-1);
  EXPECT_EQ(code(req, kToken), grpc::StatusCode::INVALID_ARGUMENT);
  // Still serving after all that.
  req.mutable_spec()->set_batch_size(16);
  EXPECT_EQ(code(req, kToken), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace nnlab::testing
