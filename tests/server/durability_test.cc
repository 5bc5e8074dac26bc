// Durability details of the job manager and model registry: replay from a
// step, the final evaluation of a job stopped by max_steps, damaged model
// files and damaged checkpoints found at start-up.
#include <fstream>

#include "gtest/gtest.h"
#include "server/storage.pb.h"
#include "tests/server/server_test_util.h"

namespace nnlab::testing {
namespace {

v1::JobSpec BlobJob(const std::string& model, const std::string& dataset) {
  v1::JobSpec spec;
  spec.set_model_id(model);
  spec.set_dataset(dataset);
  spec.mutable_optimizer()->set_kind(v1::OPTIMIZER_SGD);
  spec.mutable_optimizer()->set_learning_rate(0.1f);
  spec.set_batch_size(32);
  spec.set_stats_every(-1);
  return spec;
}

void FlipByte(const std::string& path) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f.good()) << path;
  f.seekg(0, std::ios::end);
  const std::streamoff at = static_cast<std::streamoff>(f.tellg()) / 2;
  f.seekg(at);
  char b = 0;
  f.read(&b, 1);
  b = static_cast<char>(b ^ 0x5A);
  f.seekp(at);
  f.write(&b, 1);
}

TEST(DurabilityTest, FromStepSkipsEarlierStateChanges) {
  TestServer server;
  Client c = server.MakeClient();
  const std::string ds = UploadBlobs(c, 1000, 200);  // 25 steps per epoch.
  CreateModel(c, MlpSpec(2, 8, 2), "net");
  v1::JobSpec spec = BlobJob("net", ds);
  spec.set_epochs(2);
  const std::string id = StartJob(c, spec).job_id();
  ASSERT_EQ(WaitForJob(c, id).state(), v1::JOB_STATE_COMPLETED);
  v1::StreamMetricsRequest req;
  req.set_job_id(id);
  grpc::Status st;
  std::vector<v1::MetricEvent> all = ReadStream(c, req, &st);
  ASSERT_TRUE(st.ok());
  int states = 0;
  for (const auto& e : all) states += e.phase() == v1::PHASE_STATE;
  EXPECT_EQ(states, 3);  // QUEUED, RUNNING, COMPLETED.
  req.set_from_step(30);
  std::vector<v1::MetricEvent> late = ReadStream(c, req, &st);
  ASSERT_TRUE(st.ok());
  ASSERT_FALSE(late.empty());
  for (const auto& e : late) EXPECT_GE(e.step(), 30) << e.DebugString();
  EXPECT_EQ(late.front().phase(), v1::PHASE_TRAIN);
  EXPECT_EQ(late.front().step(), 30);
  EXPECT_EQ(late.back().job_state(), v1::JOB_STATE_COMPLETED);
  // Past the end: only how the job ended.
  req.set_from_step(1000);
  std::vector<v1::MetricEvent> none = ReadStream(c, req, &st);
  ASSERT_TRUE(st.ok());
  ASSERT_EQ(none.size(), 1u);
  EXPECT_EQ(none[0].phase(), v1::PHASE_STATE);
  EXPECT_EQ(none[0].job_state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(none[0].step(), 50);
}

TEST(DurabilityTest, MaxStepsMidEpochEndsWithAnEvaluation) {
  TestServer server;
  Client c = server.MakeClient();
  const std::string ds = UploadBlobs(c, 1000, 200);  // 25 steps per epoch.
  CreateModel(c, MlpSpec(2, 8, 2), "net");
  v1::JobSpec spec = BlobJob("net", ds);
  spec.set_epochs(5);
  spec.set_max_steps(37);
  const std::string id = StartJob(c, spec).job_id();
  v1::Job done = WaitForJob(c, id);
  ASSERT_EQ(done.state(), v1::JOB_STATE_COMPLETED) << done.failure_reason();
  EXPECT_EQ(done.step(), 37);
  EXPECT_EQ(done.last_eval().step(), 37);
  v1::StreamMetricsRequest req;
  req.set_job_id(id);
  grpc::Status st;
  std::vector<int64_t> evals;
  for (const auto& e : ReadStream(c, req, &st)) {
    if (e.phase() == v1::PHASE_EVAL) {
      evals.push_back(e.step());
      EXPECT_GT(e.accuracy(), 0.8);  // Blobs are easy.
    }
  }
  EXPECT_EQ(evals, (std::vector<int64_t>{25, 37}));
  EXPECT_NEAR(done.last_eval().loss(), 0, 0.5);
}

TEST(DurabilityTest, DamagedModelFileIsReportedNotLoaded) {
  TempDir dir;
  {
    TestServer server({}, dir.path());
    Client c = server.MakeClient();
    CreateModel(c, MlpSpec(2, 8, 2), "a");
    CreateModel(c, MlpSpec(2, 8, 2), "b");
  }
  FlipByte(dir.path() + "/models/a.model");
  TestServer server({}, dir.path());
  Client c = server.MakeClient();
  v1::GetModelRequest g;
  g.set_model_id("a");
  v1::Model m;
  auto ctx = Ctx();
  grpc::Status s = c.models->GetModel(ctx.get(), g, &m);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_NE(s.error_message().find("checksum"), std::string::npos)
      << s.error_message();
  v1::ListModelsRequest lreq;
  v1::ListModelsResponse list;
  auto lctx = Ctx();
  ASSERT_TRUE(c.models->ListModels(lctx.get(), lreq, &list).ok());
  ASSERT_EQ(list.models_size(), 1);
  EXPECT_EQ(list.models(0).model_id(), "b");
  v1::CreateModelRequest creq;
  creq.set_model_id("a");
  *creq.mutable_spec() = MlpSpec(2, 8, 2);
  auto cctx = Ctx();
  EXPECT_EQ(c.models->CreateModel(cctx.get(), creq, &m).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  v1::DeleteModelRequest dreq;
  dreq.set_model_id("a");
  v1::DeleteModelResponse dresp;
  auto dctx = Ctx();
  EXPECT_TRUE(c.models->DeleteModel(dctx.get(), dreq, &dresp).ok());
  CreateModel(c, MlpSpec(2, 8, 2), "a");
}

TEST(DurabilityTest, CorruptNewestCheckpointFallsBackToThePreviousOne) {
  TempDir dir;
  std::string id;
  int64_t paused_at = 0;
  {
    TestServer server({}, dir.path());
    Client c = server.MakeClient();
    const std::string ds = UploadBlobs(c, 1000, 200);
    CreateModel(c, MlpSpec(2, 8, 2), "net");
    v1::JobSpec spec = BlobJob("net", ds);
    spec.set_epochs(2000);
    spec.set_max_steps(600);
    spec.set_checkpoint_every_steps(7);
    id = StartJob(c, spec).job_id();
    v1::Job j;
    do {
      v1::GetJobRequest g;
      g.set_job_id(id);
      auto ctx = Ctx();
      ASSERT_TRUE(c.training->GetJob(ctx.get(), g, &j).ok());
    } while (j.checkpoint_step() < 30);
    v1::PauseJobRequest p;
    p.set_job_id(id);
    auto pctx = Ctx();
    ASSERT_TRUE(c.training->PauseJob(pctx.get(), p, &j).ok());
    j = WaitForJob(c, id);
    ASSERT_EQ(j.state(), v1::JOB_STATE_PAUSED);
    paused_at = j.checkpoint_step();
  }
  const std::string ckpt = absl::StrCat(dir.path(), "/jobs/", id, ".ckpt");
  server::StoredCheckpoint prev;
  ASSERT_TRUE(server::ReadRecord(ckpt + ".prev", &prev).ok());
  const int64_t prev_step = prev.trainer().step();
  EXPECT_LE(prev_step, paused_at);
  EXPECT_EQ(prev_step % 7, 0);
  FlipByte(ckpt);
  {
    TestServer server({}, dir.path());
    Client c = server.MakeClient();
    v1::GetJobRequest g;
    g.set_job_id(id);
    v1::Job j;
    auto ctx = Ctx();
    ASSERT_TRUE(c.training->GetJob(ctx.get(), g, &j).ok());
    EXPECT_EQ(j.state(), v1::JOB_STATE_PAUSED);
    EXPECT_EQ(j.checkpoint_step(), prev_step);
    v1::ResumeJobRequest r;
    r.set_job_id(id);
    auto rctx = Ctx();
    ASSERT_TRUE(c.training->ResumeJob(rctx.get(), r, &j).ok());
    j = WaitForJob(c, id);
    EXPECT_EQ(j.state(), v1::JOB_STATE_COMPLETED) << j.failure_reason();
    EXPECT_EQ(j.step(), 600);
  }
}

}  // namespace
}  // namespace nnlab::testing
