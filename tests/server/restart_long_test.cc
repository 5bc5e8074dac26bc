// Restart: the real nnlabd binary is SIGKILLed in the middle of a job and
// started again on the same data directory. Models, finished jobs and
// checkpoints survive; the interrupted job resumes from its last checkpoint
// with exactly the loss curve and weights of an uninterrupted run.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>

#include "gtest/gtest.h"
#include "tests/server/daemon_util.h"
#include "tests/server/server_test_util.h"

namespace nnlab::testing {
namespace {

std::map<int64_t, double> TrainLosses(Client& c, const std::string& job) {
  v1::StreamMetricsRequest req;
  req.set_job_id(job);
  grpc::Status st;
  std::map<int64_t, double> out;
  for (const auto& e : ReadStream(c, req, &st)) {
    if (e.phase() == v1::PHASE_TRAIN) out[e.step()] = e.loss();
  }
  EXPECT_TRUE(st.ok()) << st.error_message();
  return out;
}

TEST(RestartTest, KilledServerResumesJobFromCheckpoint) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  const std::string log = dir.path() + "/nnlabd.log";
  v1::JobSpec spec;
  std::string ref_job, job_id;
  int64_t killed_at = 0, checkpointed_at = 0;
  {
    Daemon d(data, log);
    Client c = d.MakeClient();
    const std::string ds = UploadBlobs(c, 4000, 0);
    CreateModel(c, MlpSpec(2, 64, 2, 11), "ref");
    CreateModel(c, MlpSpec(2, 64, 2, 11), "victim");
    spec.set_model_id("ref");
    spec.set_dataset(ds);
    spec.mutable_optimizer()->set_kind(v1::OPTIMIZER_ADAM);
    spec.mutable_optimizer()->set_learning_rate(0.003f);
    spec.set_batch_size(32);
    spec.set_epochs(30);  // 125 steps per epoch: 3,750 steps.
    spec.set_checkpoint_every_steps(100);
    spec.set_stats_every(-1);
    ref_job = StartJob(c, spec).job_id();
    ASSERT_EQ(WaitForJob(c, ref_job, 600).state(), v1::JOB_STATE_COMPLETED);
    // The victim runs the same spec for far longer than the test lets it
    // (it is paused later), so the kill always lands mid-run.
    spec.set_model_id("victim");
    spec.set_epochs(3000);
    job_id = StartJob(c, spec).job_id();
    // Kill it somewhere past a few checkpoints.
    while (true) {
      v1::GetJobRequest g;
      g.set_job_id(job_id);
      v1::Job now;
      auto ctx = Ctx();
      ASSERT_TRUE(c.training->GetJob(ctx.get(), g, &now).ok());
      ASSERT_NE(now.state(), v1::JOB_STATE_COMPLETED)
          << "job finished too soon";
      if (now.checkpoint_step() >= 1000 && now.step() >= 1050) {
        killed_at = now.step();
        checkpointed_at = now.checkpoint_step();
        break;
      }
      usleep(2000);
    }
    EXPECT_EQ(d.Kill(SIGKILL), 128 + SIGKILL);
  }
  // Debris a crash might leave: a temp file, and a torn model file.
  std::ofstream(data + "/models/victim.model.999.0.tmp") << "half a write";
  std::ofstream(data + "/models/torn.model") << "NNLR\x01";

  Daemon d(data, log);
  Client c = d.MakeClient();
  EXPECT_FALSE(std::ifstream(data + "/models/victim.model.999.0.tmp").good());
  v1::ListModelsRequest lreq;
  v1::ListModelsResponse models;
  {
    auto ctx = Ctx();
    ASSERT_TRUE(c.models->ListModels(ctx.get(), lreq, &models).ok());
  }
  ASSERT_EQ(models.models_size(), 2);  // The torn file is skipped.
  EXPECT_EQ(models.models(0).model_id(), "ref");
  EXPECT_EQ(models.models(0).trained_steps(), 3750);
  v1::GetJobRequest g;
  g.set_job_id(ref_job);
  v1::Job ref;
  {
    auto ctx = Ctx();
    ASSERT_TRUE(c.training->GetJob(ctx.get(), g, &ref).ok());
  }
  EXPECT_EQ(ref.state(), v1::JOB_STATE_COMPLETED);
  g.set_job_id(job_id);
  v1::Job resumed;
  {
    auto ctx = Ctx();
    ASSERT_TRUE(c.training->GetJob(ctx.get(), g, &resumed).ok());
  }
  EXPECT_EQ(resumed.resume_count(), 1);
  // The job keeps running between the last GetJob and the SIGKILL, so the
  // checkpoint may be newer than what we saw, but never older, and it is a
  // checkpoint boundary of an unfinished run.
  EXPECT_GE(resumed.checkpoint_step(), checkpointed_at);
  EXPECT_EQ(resumed.checkpoint_step() % 100, 0);
  EXPECT_LT(resumed.checkpoint_step(), resumed.total_steps());
  std::printf("killed at step %lld; resuming from checkpoint at step %lld\n",
              static_cast<long long>(killed_at),
              static_cast<long long>(resumed.checkpoint_step()));
  // It trains on, past 3,750 steps and 200 steps past where it resumed,
  // and is paused there, at a checkpoint.
  const int64_t until =
      std::max<int64_t>(3750, resumed.checkpoint_step() + 200);
  WaitUntil(
      c, job_id, [until](const v1::Job& j) { return j.step() >= until; }, 600);
  Pause(c, job_id);
  const v1::Job paused = WaitForJob(c, job_id, 600);
  ASSERT_EQ(paused.state(), v1::JOB_STATE_PAUSED) << paused.failure_reason();
  const int64_t end = paused.step();
  // Cancelled where it is, so that its metric stream ends.
  EXPECT_EQ(Cancel(c, job_id).step(), end);
  // The same run never interrupted, stopped by max_steps at the same step:
  // same loss at every step, same final weights.
  CreateModel(c, MlpSpec(2, 64, 2, 11), "straight");
  spec.set_model_id("straight");
  spec.set_max_steps(end);
  const std::string straight = StartJob(c, spec).job_id();
  const v1::Job done = WaitForJob(c, straight, 600);
  ASSERT_EQ(done.state(), v1::JOB_STATE_COMPLETED) << done.failure_reason();
  ASSERT_EQ(done.step(), end);
  std::map<int64_t, double> a = TrainLosses(c, straight),
                            b = TrainLosses(c, job_id);
  ASSERT_EQ(a.size(), size_t(end));
  ASSERT_EQ(b.size(), a.size());
  for (const auto& [step, loss] : a)
    ASSERT_EQ(b.at(step), loss) << "step " << step;
  EXPECT_EQ(Outputs(c, "victim"), Outputs(c, "straight"));
  // The 30-epoch reference from before the crash is the same run too.
  for (const auto& [step, loss] : TrainLosses(c, ref_job))
    ASSERT_EQ(b.at(step), loss) << "step " << step;
  // Graceful stop: exit 0.
  EXPECT_EQ(d.Kill(SIGTERM), 0);
}

}  // namespace
}  // namespace nnlab::testing
