// Restart: the real nnlabd binary is SIGKILLed in the middle of a job and
// started again on the same data directory. Models, finished jobs and
// checkpoints survive; the interrupted job resumes from its last checkpoint
// and ends with exactly the loss curve and weights of an uninterrupted run.
#include <signal.h>

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
    spec.set_model_id("victim");
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
  EXPECT_LT(resumed.checkpoint_step(), 3750);
  std::printf("killed at step %lld; resuming from checkpoint at step %lld\n",
              static_cast<long long>(killed_at),
              static_cast<long long>(resumed.checkpoint_step()));
  v1::Job done = WaitForJob(c, job_id, 600);
  ASSERT_EQ(done.state(), v1::JOB_STATE_COMPLETED) << done.failure_reason();
  EXPECT_EQ(done.step(), 3750);
  // Same loss at every step, same final weights, as if never interrupted.
  std::map<int64_t, double> a = TrainLosses(c, ref_job),
                            b = TrainLosses(c, job_id);
  ASSERT_EQ(a.size(), 3750u);
  ASSERT_EQ(b.size(), a.size());
  for (const auto& [step, loss] : a)
    ASSERT_EQ(b.at(step), loss) << "step " << step;
  EXPECT_EQ(Outputs(c, "victim"), Outputs(c, "ref"));
  // Graceful stop: exit 0.
  EXPECT_EQ(d.Kill(SIGTERM), 0);
}

}  // namespace
}  // namespace nnlab::testing
