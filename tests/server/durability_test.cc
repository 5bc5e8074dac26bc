// Durability details of the job manager and model registry: replay from a
// step, the final evaluation of a job stopped by max_steps, damaged model
// files and damaged checkpoints found at start-up, and finished jobs'
// histories served from their event logs instead of memory; when the steps
// of client-driven training reach the model file.
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "gtest/gtest.h"
#include "server/datasets.h"
#include "server/jobs.h"
#include "server/models.h"
#include "server/storage.h"
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

// The steps stored in a model file (its trained_steps), or -1 if unreadable.
int64_t StoredSteps(const std::string& data_dir, const std::string& id) {
  server::StoredModel stored;
  if (!server::ReadRecord(data_dir + "/models/" + id + ".model", &stored).ok())
    return -1;
  return stored.file().trained_steps();
}

v1::TrainStepRequest BlobStep(const std::string& model_id) {
  Blobs b = MakeBlobs(16);
  v1::TrainStepRequest req;
  req.set_model_id(model_id);
  req.mutable_optimizer()->set_kind(v1::OPTIMIZER_SGD);
  req.mutable_optimizer()->set_learning_rate(0.1f);
  v1::Tensor* x = req.mutable_inputs();
  x->add_shape(16);
  x->add_shape(2);
  for (float v : b.x) x->add_data(v);
  v1::Tensor* y = req.mutable_targets();
  y->add_shape(16);
  for (float v : b.y) y->add_data(v);
  return req;
}

// The durability rule of server/train_session.h: client steps are not
// written one by one, but a TrainStream's steps are on disk when it ends,
// and every step acknowledged before a clean shutdown is in the model after
// a restart, weights included.
TEST(DurabilityTest, ClientStepsPersistAtStreamEndAndShutdown) {
  TempDir dir;
  server::ServerOptions o;
  o.train_persist_interval = absl::Hours(1);  // Only the other two rules.
  v1::ExportModelResponse before;
  {
    TestServer server(o, dir.path());
    Client c = server.MakeClient();
    CreateModel(c, MlpSpec(2, 8, 2), "m");
    for (int i = 0; i < 3; ++i) {
      v1::TrainStepResponse r;
      auto ctx = Ctx();
      ASSERT_TRUE(c.training->TrainStep(ctx.get(), BlobStep("m"), &r).ok());
      EXPECT_EQ(r.metrics().step(), i + 1);
    }
    // No write per step: the file still holds the untrained model.
    EXPECT_EQ(StoredSteps(dir.path(), "m"), 0);
    {
      auto ctx = Ctx();
      auto stream = c.training->TrainStream(ctx.get());
      for (int i = 0; i < 2; ++i) {
        ASSERT_TRUE(stream->Write(BlobStep("m")));
        v1::TrainStepResponse r;
        ASSERT_TRUE(stream->Read(&r));
        EXPECT_EQ(r.metrics().step(), 4 + i);
      }
      stream->WritesDone();
      ASSERT_TRUE(stream->Finish().ok());
    }
    // The stream's end wrote every step so far (the unary ones too).
    EXPECT_EQ(StoredSteps(dir.path(), "m"), 5);
    v1::TrainStepResponse r;
    auto ctx = Ctx();
    ASSERT_TRUE(c.training->TrainStep(ctx.get(), BlobStep("m"), &r).ok());
    EXPECT_EQ(r.metrics().step(), 6);
    EXPECT_EQ(StoredSteps(dir.path(), "m"), 5);
    v1::ExportModelRequest ereq;
    ereq.set_model_id("m");
    auto ectx = Ctx();
    ASSERT_TRUE(c.models->ExportModel(ectx.get(), ereq, &before).ok());
    EXPECT_EQ(before.file().trained_steps(), 6);
  }  // Clean shutdown.
  EXPECT_EQ(StoredSteps(dir.path(), "m"), 6);
  TestServer server(o, dir.path());
  Client c = server.MakeClient();
  v1::ExportModelRequest ereq;
  ereq.set_model_id("m");
  v1::ExportModelResponse after;
  auto ctx = Ctx();
  ASSERT_TRUE(c.models->ExportModel(ctx.get(), ereq, &after).ok());
  EXPECT_EQ(after.file().trained_steps(), 6);
  ASSERT_EQ(after.file().params_size(), before.file().params_size());
  for (int i = 0; i < after.file().params_size(); ++i) {
    EXPECT_EQ(after.file().params(i).SerializeAsString(),
              before.file().params(i).SerializeAsString())
        << after.file().params(i).name();
  }
}

// A lone TrainStep, with no stream end or shutdown after it, still reaches
// disk within about the persist interval.
TEST(DurabilityTest, LoneClientStepIsWrittenWithinThePersistInterval) {
  TempDir dir;
  server::ServerOptions o;
  o.train_persist_interval = absl::Milliseconds(200);
  TestServer server(o, dir.path());
  Client c = server.MakeClient();
  CreateModel(c, MlpSpec(2, 8, 2), "m");
  v1::TrainStepResponse r;
  auto ctx = Ctx();
  ASSERT_TRUE(c.training->TrainStep(ctx.get(), BlobStep("m"), &r).ok());
  const absl::Time acked = absl::Now();
  while (StoredSteps(dir.path(), "m") != 1 &&
         absl::Now() - acked < absl::Seconds(10)) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(StoredSteps(dir.path(), "m"), 1);
  // 200 ms plus the flusher's tick (50 ms) plus a write; generous for a
  // loaded machine, far below the 10 s the loop allows.
  EXPECT_LT(absl::Now() - acked, absl::Seconds(3));
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
    // 250,000 steps, far more than the test lets it take: the pause always
    // lands while it runs.
    spec.set_epochs(10000);
    spec.set_checkpoint_every_steps(7);
    id = StartJob(c, spec).job_id();
    WaitUntil(c, id,
              [](const v1::Job& j) { return j.checkpoint_step() >= 30; });
    Pause(c, id);
    const v1::Job j = WaitForJob(c, id);
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
    EXPECT_EQ(Resume(c, id).resume_count(), 1);
    // It trains on from the older checkpoint, past where it was paused, and
    // checkpoints again.
    j = WaitUntil(c, id, [&](const v1::Job& now) {
      return now.checkpoint_step() > paused_at + 7;
    });
    EXPECT_EQ(j.state(), v1::JOB_STATE_RUNNING) << j.failure_reason();
    EXPECT_EQ(j.checkpoint_step() % 7, 0);
    const v1::Job cancelled = Cancel(c, id);
    EXPECT_GE(cancelled.step(), j.checkpoint_step());
    EXPECT_EQ(cancelled.failure_reason(), "");
  }
}

// A job manager on its own, without the gRPC layer, so the test can look
// at how many events it holds in memory.
class Manager {
 public:
  // Without `start` no worker runs: jobs stay queued.
  explicit Manager(const std::string& dir, int max_queued = 16,
                   bool start = true) {
    server::SetQuietLogs(true);
    models_ = std::make_unique<server::ModelRegistry>(dir + "/models",
                                                      server::Limits(), 100);
    EXPECT_TRUE(models_->Load().ok());
    datasets_ = std::make_unique<server::DatasetRegistry>(
        dir + "/no-builtin", dir + "/datasets", int64_t{1} << 20,
        server::Limits());
    EXPECT_TRUE(datasets_->Load().ok());
    server::JobManagerOptions o;
    o.dir = dir + "/jobs";
    o.max_queued = max_queued;
    EXPECT_TRUE(server::MakeDirs(o.dir).ok());
    jobs_ =
        std::make_unique<server::JobManager>(o, models_.get(), datasets_.get());
    if (start) {
      EXPECT_TRUE(jobs_->Start().ok());
    }
  }
  server::JobManager& jobs() { return *jobs_; }
  server::ModelRegistry& models() { return *models_; }
  server::DatasetRegistry& datasets() { return *datasets_; }

  // 1000 two-class blobs, 200 of them held out: 25 steps per epoch.
  absl::StatusOr<v1::DatasetInfo> AddBlobs() {
    const Blobs b = MakeBlobs(1000);
    std::string payload(reinterpret_cast<const char*>(b.x.data()),
                        b.x.size() * 4);
    payload.append(reinterpret_cast<const char*>(b.y.data()), b.y.size() * 4);
    v1::DatasetHeader h;
    h.set_name("blobs");
    h.add_sample_shape(2);
    h.set_num_classes(2);
    h.set_num_samples(1000);
    h.set_test_samples(200);
    h.set_crc32c(server::Crc32c(payload));
    return datasets_->AddUpload(h, payload);
  }

 private:
  std::unique_ptr<server::ModelRegistry> models_;
  std::unique_ptr<server::DatasetRegistry> datasets_;
  std::unique_ptr<server::JobManager> jobs_;
};

// Every event up to the end of the job.
std::vector<v1::MetricEvent> Drain(server::Watcher* w) {
  std::vector<v1::MetricEvent> out;
  v1::MetricEvent e;
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (absl::Now() < deadline) {
    const server::Watcher::Result r = w->Next(absl::Milliseconds(200), &e);
    if (r == server::Watcher::Result::kEnded) break;
    if (r == server::Watcher::Result::kEvent) out.push_back(e);
  }
  return out;
}

std::vector<v1::MetricEvent> Replay(server::JobManager& jobs,
                                    const std::string& id,
                                    const server::Watcher::Options& o = {}) {
  auto w = jobs.Watch(id, o);
  EXPECT_TRUE(w.ok()) << w.status();
  if (!w.ok()) return {};
  return Drain(w->get());
}

void ExpectSameEvents(const std::vector<v1::MetricEvent>& got,
                      const std::vector<v1::MetricEvent>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].SerializeAsString(), want[i].SerializeAsString())
        << "event " << i << ":\n"
        << got[i].DebugString() << "vs\n"
        << want[i].DebugString();
  }
}

TEST(DurabilityTest, FinishedJobsHistoriesLeaveMemoryAndReplayFromTheLog) {
  TempDir dir;
  constexpr int kJobs = 4;
  std::vector<std::string> ids;
  std::vector<std::vector<v1::MetricEvent>> live(kJobs);
  int64_t total = 0;
  {
    Manager m(dir.path());
    auto ds = m.AddBlobs();
    ASSERT_TRUE(ds.ok()) << ds.status();
    std::vector<std::unique_ptr<server::Watcher>> watchers;
    for (int i = 0; i < kJobs; ++i) {
      v1::CreateModelRequest cr;
      cr.set_model_id(absl::StrCat("net", i));
      *cr.mutable_spec() = MlpSpec(2, 8, 2, /*seed=*/i + 1);
      ASSERT_TRUE(m.models().Create(cr).ok());
      v1::JobSpec spec = BlobJob(cr.model_id(), ds->dataset_id());
      spec.set_epochs(2);
      spec.set_stats_every(10);  // Some events carry layer statistics.
      auto job = m.jobs().StartJob(spec);
      ASSERT_TRUE(job.ok()) << job.status();
      ids.push_back(job->job_id());
      auto w = m.jobs().Watch(job->job_id(), {});
      ASSERT_TRUE(w.ok()) << w.status();
      watchers.push_back(std::move(*w));
    }
    for (int i = 0; i < kJobs; ++i) {
      live[i] = Drain(watchers[i].get());
      ASSERT_FALSE(live[i].empty());
      EXPECT_EQ(live[i].back().job_state(), v1::JOB_STATE_COMPLETED);
      for (size_t k = 0; k < live[i].size(); ++k) {
        EXPECT_EQ(live[i][k].sequence(), static_cast<int64_t>(k));
        EXPECT_EQ(live[i][k].dropped_events(), 0);
      }
      total += static_cast<int64_t>(live[i].size());
    }
    // Every job has ended; the watchers still attached keep the histories.
    EXPECT_EQ(m.jobs().EventsInMemory(), total);
    for (int i = 0; i < kJobs; ++i) {
      watchers[i].reset();
      total -= static_cast<int64_t>(live[i].size());
      EXPECT_EQ(m.jobs().EventsInMemory(), total);
    }
    EXPECT_EQ(m.jobs().EventsInMemory(), 0);
    // Streams after completion come from the logs and match the live ones.
    for (int i = 0; i < kJobs; ++i) {
      ExpectSameEvents(Replay(m.jobs(), ids[i]), live[i]);
    }
    EXPECT_EQ(m.jobs().EventsInMemory(), 0);
    // Two watchers share one reloaded copy, dropped with the last of them.
    {
      auto a = m.jobs().Watch(ids[0], {});
      auto b2 = m.jobs().Watch(ids[0], {});
      ASSERT_TRUE(a.ok() && b2.ok());
      EXPECT_EQ(m.jobs().EventsInMemory(),
                static_cast<int64_t>(live[0].size()));
      a->reset();
      EXPECT_EQ(m.jobs().EventsInMemory(),
                static_cast<int64_t>(live[0].size()));
      ExpectSameEvents(Drain(b2->get()), live[0]);
    }
    EXPECT_EQ(m.jobs().EventsInMemory(), 0);
    // from_step and every_n select the same events as from memory.
    server::Watcher::Options o;
    o.from_step = 30;
    o.every_n = 4;
    o.omit_layer_stats = true;
    std::vector<v1::MetricEvent> want;
    for (v1::MetricEvent e : live[1]) {
      const bool end = e.phase() == v1::PHASE_STATE &&
                       e.job_state() == v1::JOB_STATE_COMPLETED;
      if (e.step() < 30 && !end) continue;
      if (e.phase() == v1::PHASE_TRAIN && e.step() % 4 != 0) continue;
      e.clear_layers();
      want.push_back(e);
    }
    ASSERT_GT(want.size(), 3u);
    EXPECT_EQ(want.front().step(), 32);
    ExpectSameEvents(Replay(m.jobs(), ids[1], o), want);
    // The job records stay listed.
    EXPECT_EQ(m.jobs().List("", v1::JOB_STATE_COMPLETED).size(), size_t{kJobs});
  }
  // After a restart: nothing in memory, the same histories from the logs.
  {
    Manager m(dir.path());
    EXPECT_EQ(m.jobs().EventsInMemory(), 0);
    for (int i = 0; i < kJobs; ++i) {
      ExpectSameEvents(Replay(m.jobs(), ids[i]), live[i]);
    }
    EXPECT_EQ(m.jobs().EventsInMemory(), 0);
    // A log damaged after it left memory: reported, not half-streamed.
    const std::string log =
        absl::StrCat(dir.path(), "/jobs/", ids[2], ".events");
    ASSERT_EQ(truncate(log.c_str(), 100), 0);
    auto w = m.jobs().Watch(ids[2], {});
    EXPECT_EQ(w.status().code(), absl::StatusCode::kDataLoss) << w.status();
    EXPECT_EQ(m.jobs().EventsInMemory(), 0);
    ExpectSameEvents(Replay(m.jobs(), ids[3]), live[3]);
  }
}

TEST(DurabilityTest, ConcurrentStartJobsRespectTheQueueLimit) {
  TempDir dir;
  Manager m(dir.path(), /*max_queued=*/4, /*start=*/false);
  auto ds = m.AddBlobs();
  ASSERT_TRUE(ds.ok()) << ds.status();
  constexpr int kCalls = 12;
  std::vector<absl::StatusOr<v1::Job>> results(kCalls,
                                               absl::UnknownError("not run"));
  std::vector<std::thread> calls;
  std::atomic<int> ready{0};
  for (int i = 0; i < kCalls; ++i) {
    v1::CreateModelRequest cr;
    cr.set_model_id(absl::StrCat("net", i));
    *cr.mutable_spec() = MlpSpec(2, 8, 2);
    ASSERT_TRUE(m.models().Create(cr).ok());
  }
  for (int i = 0; i < kCalls; ++i) {
    calls.emplace_back([&, i] {
      ++ready;
      while (ready.load() < kCalls) std::this_thread::yield();
      results[i] =
          m.jobs().StartJob(BlobJob(absl::StrCat("net", i), ds->dataset_id()));
    });
  }
  for (auto& t : calls) t.join();
  int accepted = 0, refused = 0;
  for (const auto& r : results) {
    if (r.ok()) {
      ++accepted;
    } else {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted)
          << r.status();
      ++refused;
    }
  }
  EXPECT_EQ(accepted, 4);
  EXPECT_EQ(refused, kCalls - 4);
  EXPECT_EQ(m.jobs().List("", v1::JOB_STATE_QUEUED).size(), 4u);
  // A refused call gave its slot back: with room again, StartJob succeeds.
  const std::string queued =
      m.jobs().List("", v1::JOB_STATE_QUEUED)[0].job_id();
  ASSERT_TRUE(m.jobs().Cancel(queued).ok());
  std::string free_model;
  for (int i = 0; i < kCalls; ++i) {
    if (!results[i].ok()) free_model = absl::StrCat("net", i);
  }
  EXPECT_TRUE(m.jobs().StartJob(BlobJob(free_model, ds->dataset_id())).ok());
}

}  // namespace
}  // namespace nnlab::testing
