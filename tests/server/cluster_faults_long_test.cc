// Faults of data-parallel jobs across real nnlabd processes on loopback:
// a worker killed (kill -9) in mid-epoch makes rank 0's allreduce fail
// within the collective timeout; the job goes back to the queue with the
// reason instead of hanging or failing, waits there for the worker, and
// when the worker is restarted (same flags) resumes from its checkpoint
// and ends with exactly the weights of an uninterrupted run.
#include <signal.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/server/cluster_test_util.h"

namespace nnlab::testing {
namespace {

constexpr int kTimeoutMs = 3000;  // --collective_timeout_ms.

bool Ended(const v1::Job& j) {
  return j.state() == v1::JOB_STATE_COMPLETED ||
         j.state() == v1::JOB_STATE_FAILED ||
         j.state() == v1::JOB_STATE_CANCELLED;
}

TEST(ClusterFaultsTest, KilledWorkerRequeuesTheJobThatResumesFromCheckpoint) {
  Cluster cluster(kTimeoutMs);
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.AddWorker().ok());
  Client c = cluster.MakeClient();
  CreateModel(c, "ref");
  CreateModel(c, "m");  // Same spec and seed: the same initial weights.
  v1::JobSpec spec = Spec("ref", 16, 2);
  spec.set_epochs(100);      // Epochs are short in the test data set:
  spec.set_max_steps(1500);  // the step count ends the job, mid-epoch.
  spec.set_checkpoint_every_steps(10);

  grpc::Status s;
  absl::Time t0 = absl::Now();
  const v1::Job ref = Start(c, spec, &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const v1::Job ref_done = Wait(c, ref.job_id());
  ASSERT_EQ(ref_done.state(), v1::JOB_STATE_COMPLETED);
  ASSERT_EQ(ref_done.step(), 1500);
  const double ref_seconds = absl::ToDoubleSeconds(absl::Now() - t0);

  spec.set_model_id("m");
  const v1::Job job = Start(c, spec, &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const v1::Job before = WaitFor(c, job.job_id(), [](const v1::Job& j) {
    return Ended(j) || (j.step() >= 30 && j.checkpoint_step() >= 20);
  });
  // The worker is frozen first: rank 0 then cannot get past the step's
  // allreduce, so the job is certainly mid-run (not finished) when the
  // worker dies. (The margin before that point: ~1,470 steps.)
  ASSERT_EQ(kill(cluster.worker(0).pid(), SIGSTOP), 0);
  const v1::Job frozen =
      WaitFor(c, job.job_id(), [](const v1::Job&) { return true; });
  ASSERT_EQ(frozen.state(), v1::JOB_STATE_RUNNING)
      << "the job ran 1,500 steps before the test could stop it; step "
      << before.step();
  ASSERT_LT(frozen.step(), 1500);
  const absl::Time killed = absl::Now();
  cluster.worker(0).Signal(SIGKILL);

  // Back in the queue with the reason within the timeout (+ slack for a
  // loaded machine), not FAILED, not hanging.
  const v1::Job queued = WaitFor(c, job.job_id(), [](const v1::Job& j) {
    return j.state() != v1::JOB_STATE_RUNNING;
  });
  const double requeue_seconds = absl::ToDoubleSeconds(absl::Now() - killed);
  ASSERT_EQ(queued.state(), v1::JOB_STATE_QUEUED) << queued.failure_reason();
  EXPECT_NE(queued.failure_reason().find("cluster fault"), std::string::npos)
      << queued.failure_reason();
  EXPECT_LT(requeue_seconds, kTimeoutMs / 1000.0 + 10);
  EXPECT_GE(queued.resume_count(), 1);
  // It waits there (the dead worker is noticed after 3 missed beats) and
  // says why.
  const v1::Job waiting = WaitFor(c, job.job_id(), [](const v1::Job& j) {
    return j.failure_reason().find("waiting for cluster members") !=
           std::string::npos;
  });
  EXPECT_EQ(waiting.state(), v1::JOB_STATE_QUEUED);
  absl::SleepFor(absl::Seconds(1));
  {
    v1::GetJobRequest req;
    req.set_job_id(job.job_id());
    v1::Job j;
    auto ctx = Ctx(10, kToken);
    ASSERT_TRUE(c.training->GetJob(ctx.get(), req, &j).ok());
    EXPECT_EQ(j.state(), v1::JOB_STATE_QUEUED);
  }

  // The worker comes back with the same flags: it joins again, the job
  // resumes from its last checkpoint on it and completes.
  ASSERT_TRUE(cluster.RestartWorker(0).ok());
  const v1::Job done = Wait(c, job.job_id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_COMPLETED) << done.failure_reason();
  EXPECT_EQ(done.step(), 1500);
  EXPECT_EQ(done.replica_members_size(), 2);
  EXPECT_NE(cluster.ReadLog("coordinator")
                .find(absl::StrCat("job ", job.job_id(),
                                   " resumed from checkpoint at step")),
            std::string::npos);

  // The resumed run replays the steps after the checkpoint from the
  // checkpointed weights, optimizer slots, RNG and data order, with the
  // same two replicas and the same reduction order, so its weights equal
  // the uninterrupted run's bit for bit. (What could differ: a resume with
  // another replica count, whose global batch and summation order change.)
  const std::vector<float> wr = Weights(c, "ref");
  const std::vector<float> wm = Weights(c, "m");
  ASSERT_EQ(wr.size(), wm.size());
  ASSERT_FALSE(wr.empty());
  double worst = 0;
  for (size_t i = 0; i < wr.size(); ++i) {
    worst = std::max(worst, std::abs(double(wr[i]) - wm[i]));
  }
  EXPECT_LE(worst, 1e-6);
  std::printf(
      "uninterrupted run %.1f s; killed at step %lld (checkpoint %lld), "
      "queued after %.1f s; worst weight difference %.2e\n",
      ref_seconds, (long long)frozen.step(),
      (long long)frozen.checkpoint_step(), requeue_seconds, worst);
}

}  // namespace
}  // namespace nnlab::testing
