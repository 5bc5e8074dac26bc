// Faults of data-parallel jobs across real nnlabd processes on loopback.
// One 2-replica job lives through three: its worker cut off (frozen) and
// thawed, then killed (kill -9) in mid-epoch and restarted at once, then
// the coordinator killed and restarted. Each time the allreduce fails
// within the collective timeout, the job goes back to the queue with the
// reason instead of hanging or failing, waits there for its members,
// resumes from its last checkpoint, and it ends with exactly the weights of
// an uninterrupted run.
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/server/cluster_test_util.h"

namespace nnlab::testing {
namespace {

constexpr int kTimeoutMs = 3000;  // --collective_timeout_ms.

TEST(ClusterFaultsTest, LostMembersRequeueTheJobThatResumesFromCheckpoint) {
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
  const std::string id = job.job_id();

  // Waits until the job runs `steps` past `from` with a checkpoint past
  // `from`, then freezes `process` (SIGSTOP): the job cannot finish while
  // one of its replicas is frozen, so its state is certain from then on.
  // (The margin to its end is over 1,000 steps.)
  auto freeze_mid_run = [&](NnlabdProcess& process, int64_t from) {
    const v1::Job seen = WaitFor(c, id, [&](const v1::Job& j) {
      return Ended(j) ||
             (j.state() == v1::JOB_STATE_RUNNING && j.step() >= from + 30 &&
              j.checkpoint_step() >= from + 10);
    });
    EXPECT_EQ(kill(process.pid(), SIGSTOP), 0);
    EXPECT_EQ(seen.state(), v1::JOB_STATE_RUNNING);
    EXPECT_LT(seen.step(), 1400);
    return seen;
  };
  // Back in the queue with the reason within the collective timeout (+
  // slack for a loaded machine), not FAILED, not hanging.
  auto expect_requeued = [&](const char* what, int resumes) {
    const absl::Time t = absl::Now();
    const v1::Job q = WaitFor(c, id, [&](const v1::Job& j) {
      return j.state() != v1::JOB_STATE_RUNNING;
    });
    const double seconds = absl::ToDoubleSeconds(absl::Now() - t);
    EXPECT_EQ(q.state(), v1::JOB_STATE_QUEUED)
        << what << ": " << q.failure_reason();
    EXPECT_NE(q.failure_reason().find("cluster fault"), std::string::npos)
        << what << ": " << q.failure_reason();
    EXPECT_GE(q.resume_count(), resumes) << what;
    EXPECT_LT(seconds, kTimeoutMs / 1000.0 + 10) << what;
    std::printf("%s: queued after %.1f s: %s\n", what, seconds,
                q.failure_reason().c_str());
    return q;
  };

  // 1. The worker is cut off (frozen: its sockets stay open, nothing
  // arrives): rank 0's allreduce times out. Once it runs again it notices
  // it was given up on, joins again, and is used again.
  const v1::Job cut = freeze_mid_run(cluster.worker(0), 0);
  expect_requeued("worker cut off", 1);
  // It waits there (the frozen worker is dead to the coordinator after 3
  // missed beats) and says why.
  const v1::Job waiting = WaitFor(c, id, [](const v1::Job& j) {
    return j.failure_reason().find("waiting for cluster members") !=
           std::string::npos;
  });
  EXPECT_EQ(waiting.state(), v1::JOB_STATE_QUEUED);
  absl::SleepFor(absl::Seconds(1));
  EXPECT_EQ(WaitFor(c, id, [](const v1::Job&) { return true; }).state(),
            v1::JOB_STATE_QUEUED);
  ASSERT_EQ(kill(cluster.worker(0).pid(), SIGCONT), 0);

  // 2. kill -9 of the worker mid-epoch: the peer's sockets close and the
  // allreduce fails at once. The worker is restarted with the same flags
  // at once (its old entry still looks alive for 3 beats: it keeps asking
  // to join until it is let in), and the job resumes on it.
  const v1::Job before_kill = freeze_mid_run(cluster.worker(0), cut.step());
  cluster.worker(0).Signal(SIGKILL);
  expect_requeued("worker killed", 2);
  ASSERT_TRUE(cluster.RestartWorker(0).ok());

  // 3. The coordinator crashes (kill -9) mid-run and is restarted with the
  // same flags: it resumes the job as it resumes local ones, once the
  // worker has joined it again.
  freeze_mid_run(cluster.coordinator(), before_kill.step());
  cluster.coordinator().Signal(SIGKILL);
  ASSERT_TRUE(cluster.RestartCoordinator().ok());
  // A fresh channel; its first call may still meet the connection to the
  // killed process (gRPC shares subchannels): retried until one answers.
  Client c2 = cluster.MakeClient();
  grpc::Status answered;
  for (int i = 0; i < 100; ++i) {
    v1::GetJobRequest req;
    req.set_job_id(id);
    v1::Job j;
    auto ctx = Ctx(10, kToken);
    answered = c2.training->GetJob(ctx.get(), req, &j);
    if (answered.ok()) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(answered.ok()) << answered.error_message();

  const v1::Job done = Wait(c2, id);
  ASSERT_EQ(done.state(), v1::JOB_STATE_COMPLETED) << done.failure_reason();
  EXPECT_EQ(done.step(), 1500);
  EXPECT_EQ(done.replica_members_size(), 2);
  EXPECT_NE(
      cluster.ReadLog("coordinator")
          .find(absl::StrCat("job ", id, " resumed from checkpoint at step")),
      std::string::npos);

  // The resumed run replays the steps after the checkpoint from the
  // checkpointed weights, optimizer slots, RNG and data order, with the
  // same two replicas and the same reduction order, so its weights equal
  // the uninterrupted run's bit for bit. (What could differ: a resume with
  // another replica count, whose global batch and summation order change.)
  const std::vector<float> wr = Weights(c2, "ref");
  const std::vector<float> wm = Weights(c2, "m");
  ASSERT_EQ(wr.size(), wm.size());
  ASSERT_FALSE(wr.empty());
  double worst = 0;
  for (size_t i = 0; i < wr.size(); ++i) {
    worst = std::max(worst, std::abs(double(wr[i]) - wm[i]));
  }
  EXPECT_LE(worst, 1e-6);
  std::printf(
      "uninterrupted run %.1f s; after 3 faults, worst weight difference "
      "%.2e\n",
      ref_seconds, worst);
}

// CPU seconds `pid` has used (utime + stime of /proc/<pid>/stat).
double CpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), {});
  // Fields after the command name (which may hold spaces) in parentheses.
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);
  }
  return ticks / sysconf(_SC_CLK_TCK);
}

v1::Job Call(Client& c, const std::string& id, const char* what) {
  v1::Job j;
  auto ctx = Ctx(10, kToken);
  grpc::Status s;
  if (std::string(what) == "pause") {
    v1::PauseJobRequest req;
    req.set_job_id(id);
    s = c.training->PauseJob(ctx.get(), req, &j);
  } else if (std::string(what) == "resume") {
    v1::ResumeJobRequest req;
    req.set_job_id(id);
    s = c.training->ResumeJob(ctx.get(), req, &j);
  } else {
    v1::CancelJobRequest req;
    req.set_job_id(id);
    s = c.training->CancelJob(ctx.get(), req, &j);
  }
  EXPECT_TRUE(s.ok()) << what << ": " << s.error_message();
  return j;
}

// A job that loses a member before its first checkpoint takes one at the
// fault; waiting for members it sleeps (the coordinator uses next to no
// CPU), and pause, resume and cancel reach it there promptly.
TEST(ClusterFaultsTest,
     FaultBeforeFirstCheckpointThenIdleWaitAnswersPauseAndCancel) {
  Cluster cluster(kTimeoutMs);
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.AddWorker().ok());
  Client c = cluster.MakeClient();
  CreateModel(c, "m");
  v1::JobSpec spec = Spec("m", 16, 2);
  spec.set_max_steps(0);
  spec.set_epochs(100);  // 25,000 steps: it cannot finish first.
  // No checkpoint before the fault: the job takes one as it goes back to
  // the queue rather than resume from step 0 on weights it has changed.
  spec.set_checkpoint_every_steps(20000);
  grpc::Status s;
  const std::string id = Start(c, spec, &s).job_id();
  ASSERT_TRUE(s.ok()) << s.error_message();
  WaitFor(c, id, [](const v1::Job& j) { return j.step() >= 20; });
  cluster.worker(0).Signal(SIGKILL);
  const v1::Job waiting = WaitFor(c, id, [](const v1::Job& j) {
    return j.failure_reason().find(
               "waiting for cluster members (2 "
               "replicas need 1 live worker, 0 alive)") != std::string::npos;
  });
  ASSERT_EQ(waiting.state(), v1::JOB_STATE_QUEUED) << waiting.failure_reason();
  EXPECT_GE(waiting.checkpoint_step(), 20);
  EXPECT_EQ(waiting.checkpoint_step(), waiting.step());

  const double cpu0 = CpuSeconds(cluster.coordinator().pid());
  absl::SleepFor(absl::Seconds(2));
  const double idle_cpu = CpuSeconds(cluster.coordinator().pid()) - cpu0;
  EXPECT_LT(idle_cpu, 0.5);  // Heartbeat checks and 100 ms naps only.

  absl::Time t = absl::Now();
  Call(c, id, "pause");
  EXPECT_EQ(WaitFor(c, id,
                    [](const v1::Job& j) {
                      return j.state() != v1::JOB_STATE_QUEUED;
                    })
                .state(),
            v1::JOB_STATE_PAUSED);
  EXPECT_LT(absl::Now() - t, absl::Seconds(5));
  Call(c, id, "resume");
  WaitFor(c, id, [](const v1::Job& j) {
    return j.failure_reason().find("waiting for cluster members") !=
           std::string::npos;
  });
  t = absl::Now();
  Call(c, id, "cancel");
  const v1::Job cancelled = Wait(c, id);
  EXPECT_EQ(cancelled.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_LT(absl::Now() - t, absl::Seconds(5));
  std::printf("coordinator CPU while waiting 2 s: %.2f s\n", idle_cpu);
}

}  // namespace
}  // namespace nnlab::testing
