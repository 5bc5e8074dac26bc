// Faults: the real nnlabd under SIGKILL at random moments, a full disk, and
// clients that vanish mid-call. What must hold: no torn file is ever loaded,
// jobs resume from their newest good checkpoint and end with exactly the
// numbers of an uninterrupted run, acknowledged models survive, and the
// server keeps serving without leaking threads or memory.
#include <sys/mount.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "gtest/gtest.h"
#include "server/storage.pb.h"
#include "tests/server/daemon_util.h"

namespace nnlab::testing {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

grpc::Status GetJob(Client& c, const std::string& id, v1::Job* job) {
  v1::GetJobRequest req;
  req.set_job_id(id);
  auto ctx = Ctx(10);
  return c.training->GetJob(ctx.get(), req, job);
}

std::set<std::string> ListModelIds(Client& c) {
  v1::ListModelsRequest req;
  v1::ListModelsResponse resp;
  auto ctx = Ctx(10);
  grpc::Status s = c.models->ListModels(ctx.get(), req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  std::set<std::string> ids;
  for (const auto& m : resp.models()) ids.insert(m.model_id());
  return ids;
}

// What a finished job leaves: loss per training step, eval loss per step.
struct History {
  std::map<int64_t, double> train, eval;
  int64_t train_events = 0;
  v1::JobState last_state = v1::JOB_STATE_UNSPECIFIED;
};

History ReadHistory(Client& c, const std::string& job) {
  v1::StreamMetricsRequest req;
  req.set_job_id(job);
  grpc::Status st;
  History h;
  for (const auto& e : ReadStream(c, req, &st)) {
    if (e.phase() == v1::PHASE_TRAIN) {
      h.train[e.step()] = e.loss();
      ++h.train_events;
    } else if (e.phase() == v1::PHASE_EVAL) {
      // A kill between an epoch-end evaluation and the next checkpoint
      // repeats it after the restart, with the same numbers.
      auto [it, fresh] = h.eval.emplace(e.step(), e.loss());
      EXPECT_TRUE(fresh || it->second == e.loss()) << "eval at " << e.step();
    } else if (e.phase() == v1::PHASE_STATE) {
      h.last_state = e.job_state();
    }
  }
  EXPECT_TRUE(st.ok()) << st.error_message();
  return h;
}

// Step of a stored checkpoint, -1 if it is missing or unreadable.
int64_t CheckpointStep(const std::string& path) {
  server::StoredCheckpoint ckpt;
  if (!server::ReadRecord(path, &ckpt).ok()) return -1;
  return ckpt.trainer().step();
}

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

void FlipByte(const std::string& path) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f.good()) << path;
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  ASSERT_GT(size, 64);
  const std::streamoff at = size / 2;
  f.seekg(at);
  char b = 0;
  f.read(&b, 1);
  b = static_cast<char>(b ^ 0x5A);
  f.seekp(at);
  f.write(&b, 1);
}

// The daemon log from `offset` on.
std::string LogSince(const std::string& log, std::streamoff offset) {
  std::ifstream in(log);
  in.seekg(offset);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
std::streamoff LogSize(const std::string& log) {
  std::ifstream in(log, std::ios::ate);
  return in.good() ? static_cast<std::streamoff>(in.tellg()) : 0;
}

// The step a job was re-queued from, as the restart logged it; -1 if the
// log does not say.
int64_t ResumedFrom(const std::string& log_text, const std::string& job) {
  const std::string key =
      absl::StrCat("job ", job, " JOB_STATE_QUEUED: server restarted");
  const size_t at = log_text.rfind(key);
  if (at == std::string::npos) return -1;
  const std::string from = "resuming from the checkpoint at step ";
  const size_t p = log_text.find(from, at);
  if (p == std::string::npos) return -1;
  return std::strtoll(log_text.c_str() + p + from.size(), nullptr, 10);
}

int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t p = text.find(needle); p != std::string::npos;
       p = text.find(needle, p + 1)) {
    ++n;
  }
  return n;
}

TEST(FaultsTest, KillNineLoopNeverLoadsATornCheckpoint) {
  uint64_t seed = std::random_device{}();
  if (const char* s = getenv("NNLAB_FAULT_SEED"))
    seed = std::strtoull(s, 0, 10);
  std::printf("kill -9 loop: seed %llu (set NNLAB_FAULT_SEED to replay)\n",
              static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  const auto start = Clock::now();
  TempDir dir;
  const std::string data = dir.path() + "/data";
  const std::string jobs = data + "/jobs", models = data + "/models";
  const std::string log = dir.path() + "/nnlabd.log";

  // 2,400 blobs: 2,000 train (63 steps per epoch), 400 test. max_steps stops
  // mid-epoch, so the final evaluation comes from the max_steps path.
  constexpr int64_t kTotal = 1500;
  v1::JobSpec spec;
  spec.mutable_optimizer()->set_kind(v1::OPTIMIZER_ADAM);
  spec.mutable_optimizer()->set_learning_rate(0.003f);
  spec.set_batch_size(32);
  spec.set_epochs(40);
  spec.set_max_steps(kTotal);
  spec.set_stats_every(-1);
  const v1::ModelSpec model_spec = MlpSpec(2, 16, 2, 11);

  History ref;
  std::vector<float> ref_out;
  std::string ref_job;
  double ref_seconds = 0;
  std::set<std::string> listed;  // Acknowledged models that must survive.
  {
    Daemon d(data, log);
    ASSERT_TRUE(d.ok());
    Client c = d.MakeClient();
    spec.set_dataset(UploadBlobs(c, 2400, 400));
    CreateModel(c, model_spec, "ref");
    listed.insert("ref");
    spec.set_model_id("ref");
    const auto t0 = Clock::now();
    ref_job = StartJob(c, spec).job_id();
    v1::Job done = WaitForJob(c, ref_job, 300);
    ref_seconds = SecondsSince(t0);
    ASSERT_EQ(done.state(), v1::JOB_STATE_COMPLETED) << done.failure_reason();
    ASSERT_EQ(done.step(), kTotal);
    // The job stopped by max_steps mid-epoch still ends with an evaluation.
    EXPECT_EQ(done.last_eval().step(), kTotal);
    ref = ReadHistory(c, ref_job);
    ref_out = Outputs(c, "ref");
    ASSERT_EQ(ref.train.size(), size_t(kTotal));
    ASSERT_EQ(ref.eval.count(kTotal), 1u);
    EXPECT_EQ(d.Kill(SIGTERM), 0);
  }
  std::printf("reference job: %lld steps in %.2f s\n",
              static_cast<long long>(kTotal), ref_seconds);

  int kills = 0, during_writes = 0, torn = 0, jobs_done = 0;
  int fallbacks = 0, data_loss_reported = 0, resumes = 0;
  std::string job_id, victim;
  int64_t last_ckpt = 0;          // Newest checkpoint seen before the kill.
  int64_t expect_fallback = -1;   // Step of .ckpt.prev after a flipped .ckpt.
  bool expect_data_loss = false;  // Both checkpoints flipped.
  std::string damaged_model;
  int victims = 0;

  // A finished victim must match the reference bit for bit.
  auto verify = [&](Client& c, const std::string& id, const std::string& m) {
    v1::Job j;
    ASSERT_TRUE(GetJob(c, id, &j).ok());
    EXPECT_EQ(j.state(), v1::JOB_STATE_COMPLETED) << j.failure_reason();
    EXPECT_EQ(j.step(), kTotal);
    History h = ReadHistory(c, id);
    const bool same = h.train == ref.train && h.train_events == kTotal &&
                      h.eval == ref.eval && Outputs(c, m) == ref_out;
    EXPECT_TRUE(same) << "job " << id << " differs from the reference ("
                      << h.train.size() << " steps, " << h.train_events
                      << " train events, " << h.eval.size() << " evals)";
    if (!same) ++torn;
    ++jobs_done;
  };
  auto start_victim = [&](Client& c) {
    victim = absl::StrCat("victim-", victims++);
    CreateModel(c, model_spec, victim);
    listed.insert(victim);
    spec.set_model_id(victim);
    // Small and varied cadences, so kills often land in checkpoint writes.
    spec.set_checkpoint_every_steps(5 + int64_t(rng() % 16));
    job_id = StartJob(c, spec).job_id();
    last_ckpt = 0;
  };

  enum { kNoDamage, kNewest, kBothCheckpoints } damage_due = kNoDamage;
  constexpr int kIterations = 40;
  for (int i = 0; i < kIterations; ++i) {
    const std::streamoff log_mark = LogSize(log);
    Daemon d(data, log);
    ASSERT_TRUE(d.ok()) << "iteration " << i;
    Client c = d.MakeClient();
    const std::string started_log = LogSince(log, log_mark);
    // Every model acknowledged before a kill is still listed.
    const std::set<std::string> ids = ListModelIds(c);
    for (const std::string& m : listed) {
      EXPECT_EQ(ids.count(m), 1u)
          << "model " << m << " lost at iteration " << i;
    }
    if (!damaged_model.empty()) {
      // A damaged model file is reported, never loaded.
      EXPECT_EQ(ids.count(damaged_model), 0u);
      v1::GetModelRequest g;
      g.set_model_id(damaged_model);
      v1::Model m;
      auto ctx = Ctx(10);
      grpc::Status s = c.models->GetModel(ctx.get(), g, &m);
      EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS)
          << s.error_message();
      v1::DeleteModelRequest del;
      del.set_model_id(damaged_model);
      v1::DeleteModelResponse dr;
      auto dctx = Ctx(10);
      EXPECT_TRUE(c.models->DeleteModel(dctx.get(), del, &dr).ok());
      EXPECT_FALSE(Exists(absl::StrCat(models, "/", damaged_model, ".model")));
      damaged_model.clear();
    }
    if (!job_id.empty()) {
      v1::Job j;
      ASSERT_TRUE(GetJob(c, job_id, &j).ok());
      const int64_t from = ResumedFrom(started_log, job_id);
      if (expect_data_loss) {
        // Neither checkpoint readable: reported, not loaded.
        EXPECT_EQ(j.state(), v1::JOB_STATE_FAILED);
        EXPECT_NE(j.failure_reason().find("DATA_LOSS"), std::string::npos)
            << j.failure_reason();
        ++data_loss_reported;
        job_id.clear();
      } else if (j.state() == v1::JOB_STATE_FAILED) {
        ADD_FAILURE() << "job " << job_id
                      << " failed after a kill: " << j.failure_reason();
        ++torn;
        job_id.clear();
      } else if (j.state() != v1::JOB_STATE_COMPLETED) {
        ++resumes;
        EXPECT_GE(from, 0) << "no resume line for " << job_id;
        if (expect_fallback >= 0) {
          // The flipped newest checkpoint was detected; the one before it
          // is used.
          EXPECT_EQ(from, expect_fallback);
          EXPECT_NE(started_log.find("using the previous checkpoint"),
                    std::string::npos);
          ++fallbacks;
        } else {
          // Never behind what was checkpointed before the kill.
          EXPECT_GE(from, last_ckpt) << "iteration " << i;
        }
        last_ckpt = std::max<int64_t>(from, 0);
      }
    }
    expect_fallback = -1;
    expect_data_loss = false;
    if (job_id.empty()) start_victim(c);
    // A model created in this run, acknowledged before the kill.
    const std::string extra = absl::StrCat("m-", i);
    CreateModel(c, model_spec, extra);
    listed.insert(extra);

    // Run to a random moment, watching the checkpoint step.
    const auto kill_at =
        Clock::now() + std::chrono::microseconds(rng() % 250000);
    while (Clock::now() < kill_at) {
      v1::Job j;
      if (GetJob(c, job_id, &j).ok()) {
        last_ckpt = std::max(last_ckpt, j.checkpoint_step());
        if (j.state() == v1::JOB_STATE_COMPLETED) {
          verify(c, job_id, victim);
          start_victim(c);
        } else if (j.state() == v1::JOB_STATE_FAILED) {
          ADD_FAILURE() << j.failure_reason();
          start_victim(c);
        }
      }
      usleep(1000);
    }
    EXPECT_EQ(d.Kill(SIGKILL), 128 + SIGKILL);
    ++kills;
    // Did the kill land inside a checkpoint write? A temp file, or the
    // window between moving the old checkpoint aside and the new one's
    // rename.
    const std::string ckpt = absl::StrCat(jobs, "/", job_id, ".ckpt");
    const std::string prev = ckpt + ".prev";
    if (!FilesEndingIn(jobs, ".tmp").empty() ||
        !FilesEndingIn(models, ".tmp").empty() ||
        (!Exists(ckpt) && Exists(prev))) {
      ++during_writes;
    }
    // Deliberate damage between two runs (of an unfinished job's files).
    server::StoredJob record;
    const bool unfinished =
        server::ReadRecord(absl::StrCat(jobs, "/", job_id, ".job"), &record)
            .ok() &&
        record.job().state() != v1::JOB_STATE_COMPLETED;
    // Due every 8th iteration, and done at the first kill after that
    // which leaves an unfinished job with a checkpoint (fast victims often
    // finish before the kill).
    if (i % 8 == 3) damage_due = i == 35 ? kBothCheckpoints : kNewest;
    if (damage_due != kNoDamage && unfinished && Exists(ckpt)) {
      const bool both = damage_due == kBothCheckpoints;
      damage_due = kNoDamage;
      if (both && Exists(prev)) {
        FlipByte(ckpt);
        FlipByte(prev);
        expect_data_loss = true;
      } else {
        const int64_t prev_step = CheckpointStep(prev);
        FlipByte(ckpt);
        if (prev_step >= 0) {
          expect_fallback = prev_step;
        } else {
          expect_data_loss = true;
        }
      }
    }
    if (i == 20) {
      damaged_model = "m-3";
      FlipByte(absl::StrCat(models, "/m-3.model"));
      listed.erase("m-3");
    }
  }
  // Last run: the current victim finishes.
  {
    Daemon d(data, log);
    ASSERT_TRUE(d.ok());
    Client c = d.MakeClient();
    const std::set<std::string> ids = ListModelIds(c);
    for (const std::string& m : listed) EXPECT_EQ(ids.count(m), 1u) << m;
    if (expect_data_loss) {
      v1::Job j;
      ASSERT_TRUE(GetJob(c, job_id, &j).ok());
      EXPECT_EQ(j.state(), v1::JOB_STATE_FAILED);
      ++data_loss_reported;
      start_victim(c);
    }
    v1::Job j = WaitForJob(c, job_id, 300);
    ASSERT_EQ(j.state(), v1::JOB_STATE_COMPLETED) << j.failure_reason();
    verify(c, job_id, victim);
    v1::Job r;
    ASSERT_TRUE(GetJob(c, ref_job, &r).ok());
    EXPECT_EQ(r.state(), v1::JOB_STATE_COMPLETED);
    EXPECT_EQ(d.Kill(SIGTERM), 0);
  }
  const std::string all_log = LogSince(log, 0);
  std::printf(
      "kill -9 loop: %d kills, %d during checkpoint writes, %d torn loads "
      "(%d resumes, %d victims completed bit-identical to the reference, "
      "%d flipped checkpoints fell back to the previous one, %d reported "
      "DATA_LOSS; %d unusable-checkpoint log lines) in %.1f s\n",
      kills, during_writes, torn, resumes, jobs_done, fallbacks,
      data_loss_reported, Count(all_log, "unusable checkpoint"),
      SecondsSince(start));
  EXPECT_EQ(torn, 0);
  EXPECT_GE(kills, 40);
  EXPECT_GE(jobs_done, 1);
  EXPECT_GE(fallbacks + data_loss_reported, 1);
}

// No temp file in the data directory, apart from those of process
// `writer` (temp names carry the writing pid), which may be writing one
// right now.
bool NoTempFiles(const std::string& data, pid_t writer = -1) {
  const std::string own = absl::StrCat(".", writer, ".");
  for (const char* sub : {"/jobs", "/models", "/datasets"}) {
    for (const std::string& name : FilesEndingIn(data + sub, ".tmp")) {
      if (writer > 0 && name.find(own) != std::string::npos) continue;
      ADD_FAILURE() << "temp file left: " << data << sub << "/" << name;
      return false;
    }
  }
  return true;
}

TEST(FaultsTest, FullDiskFailsTheCheckpointNotTheServer) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  const std::string log = dir.path() + "/nnlabd.log";
  ASSERT_TRUE(server::MakeDirs(data).ok());
  if (mount("tmpfs", data.c_str(), "tmpfs", 0, "size=2m") != 0) {
    GTEST_SKIP() << "cannot mount a 2 MiB tmpfs on " << data << ": "
                 << std::strerror(errno) << " (needs root or CAP_SYS_ADMIN)";
  }
  struct Unmount {
    std::string path;
    ~Unmount() { umount2(path.c_str(), MNT_DETACH); }
  } unmount{data};
  const std::string jobs = data + "/jobs";
  const std::string filler = data + "/filler";
  std::string job_id;
  int64_t good_step = 0;
  v1::JobSpec spec;
  {
    Daemon d(data, log);
    ASSERT_TRUE(d.ok());
    Client c = d.MakeClient();
    spec.set_dataset(UploadBlobs(c, 2000, 0));
    CreateModel(c, MlpSpec(2, 64, 2, 5), "full");
    spec.set_model_id("full");
    spec.mutable_optimizer()->set_kind(v1::OPTIMIZER_ADAM);
    spec.mutable_optimizer()->set_learning_rate(0.003f);
    spec.set_batch_size(32);
    // 63,000 steps: still running when the disk fills, however late this
    // thread sees its checkpoints.
    spec.set_epochs(1000);
    spec.set_checkpoint_every_steps(10);
    spec.set_stats_every(-1);
    job_id = StartJob(c, spec).job_id();
    v1::Job j;
    for (int k = 0; k < 5000; ++k) {
      ASSERT_TRUE(GetJob(c, job_id, &j).ok());
      if (j.checkpoint_step() >= 30) break;
      usleep(1000);
    }
    ASSERT_GE(j.checkpoint_step(), 30);
    // Fills the file system to the last byte (again: the server frees
    // space as it replaces checkpoints and drops temp files).
    int64_t filled = 0;
    auto fill = [&] {
      const int fd = open(filler.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ASSERT_GE(fd, 0);
      const std::string block(4096, 'x');
      while (write(fd, block.data(), block.size()) > 0) filled += 4096;
      for (char b = 'y'; write(fd, &b, 1) == 1;) ++filled;
      ASSERT_EQ(errno, ENOSPC);
      close(fd);
    };
    fill();
    v1::Job failed = WaitForJob(c, job_id, 60);
    ASSERT_EQ(failed.state(), v1::JOB_STATE_FAILED);
    EXPECT_NE(failed.failure_reason().find("No space left on device"),
              std::string::npos)
        << failed.failure_reason();
    good_step = failed.checkpoint_step();
    std::printf(
        "disk full (%lld bytes of filler): job failed at step %lld: %s; "
        "checkpoint at step %lld kept\n",
        static_cast<long long>(filled), static_cast<long long>(failed.step()),
        failed.failure_reason().c_str(), static_cast<long long>(good_step));
    // The previous checkpoint is intact and loadable; no temp file leaked.
    EXPECT_GT(good_step, 0);
    EXPECT_EQ(CheckpointStep(absl::StrCat(jobs, "/", job_id, ".ckpt")),
              good_step);
    NoTempFiles(data);
    // The server keeps serving; writes report the disk, reads work.
    fill();
    EXPECT_EQ(ListModelIds(c), std::set<std::string>{"full"});
    EXPECT_EQ(Outputs(c, "full").size(), 6u);
    v1::CreateModelRequest creq;
    creq.set_model_id("more");
    *creq.mutable_spec() = MlpSpec(2, 64, 2, 6);
    v1::Model m;
    auto ctx = Ctx(10);
    grpc::Status s = c.models->CreateModel(ctx.get(), creq, &m);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << s.error_message();
    EXPECT_EQ(ListModelIds(c).count("more"), 0u);
    NoTempFiles(data);
    // Space comes back; the server is killed and started again.
    ASSERT_EQ(unlink(filler.c_str()), 0);
    EXPECT_EQ(d.Kill(SIGKILL), 128 + SIGKILL);
  }
  const std::streamoff mark = LogSize(log);
  Daemon d(data, log);
  ASSERT_TRUE(d.ok());
  Client c = d.MakeClient();
  // Start-up removed the old debris; the resumed job may already be
  // writing its next checkpoint.
  NoTempFiles(data, d.pid());
  v1::Job j;
  ASSERT_TRUE(GetJob(c, job_id, &j).ok());
  if (j.state() == v1::JOB_STATE_FAILED) {
    // The FAILED record made it to disk before the disk filled up.
    EXPECT_NE(j.failure_reason().find("No space left on device"),
              std::string::npos);
    std::printf("after restart: job stays FAILED\n");
  } else {
    // The disk was too full for the FAILED record: the job resumes from
    // the checkpoint that survived, trains and checkpoints on; then it is
    // cancelled.
    EXPECT_EQ(ResumedFrom(LogSince(log, mark), job_id), good_step);
    const v1::Job on = WaitUntil(c, job_id, [&](const v1::Job& now) {
      return now.checkpoint_step() >= good_step + 50;
    });
    EXPECT_EQ(on.state(), v1::JOB_STATE_RUNNING) << on.failure_reason();
    Cancel(c, job_id);
    std::printf("after restart: job resumed from step %lld and trained on\n",
                static_cast<long long>(good_step));
  }
  // And a new model fits again.
  CreateModel(c, MlpSpec(2, 64, 2, 6), "more");
  EXPECT_EQ(d.Kill(SIGTERM), 0);
  NoTempFiles(data);
}

// Uploads, metric streams and training streams whose clients disappear
// halfway cost nothing lasting.
TEST(FaultsTest, VanishingClientsLeaveNothingBehind) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  Daemon d(data, dir.path() + "/nnlabd.log");
  ASSERT_TRUE(d.ok());
  Client c = d.MakeClient();
  const std::string ds = UploadBlobs(c, 4000, 0);
  CreateModel(c, MlpSpec(2, 64, 2, 3), "watched");
  CreateModel(c, MlpSpec(2, 64, 2, 4), "driven");
  v1::JobSpec spec;
  spec.set_model_id("watched");
  spec.set_dataset(ds);
  spec.mutable_optimizer()->set_kind(v1::OPTIMIZER_SGD);
  spec.mutable_optimizer()->set_learning_rate(0.01f);
  spec.set_epochs(10000);
  spec.set_stats_every(10);
  const std::string job_id = StartJob(c, spec).job_id();
  // Watchers replay its history and then wait on it. Paused, it stops
  // growing its history, which would blur the server's memory figures.
  v1::Job j;
  do {
    ASSERT_TRUE(GetJob(c, job_id, &j).ok());
  } while (j.step() < 300);
  {
    v1::PauseJobRequest p;
    p.set_job_id(job_id);
    auto ctx = Ctx(10);
    ASSERT_TRUE(c.training->PauseJob(ctx.get(), p, &j).ok());
    ASSERT_EQ(WaitForJob(c, job_id, 30).state(), v1::JOB_STATE_PAUSED);
  }

  // A 2.4 MB upload (200,000 samples) that the client abandons halfway.
  const Blobs big = MakeBlobs(200000, 9);
  std::string payload(reinterpret_cast<const char*>(big.x.data()),
                      big.x.size() * 4);
  payload.append(reinterpret_cast<const char*>(big.y.data()), big.y.size() * 4);
  const Blobs batch = MakeBlobs(16, 3);
  std::atomic<int> uploads_refused{0};

  auto vanish = [&](int kind) {
    Client own = d.MakeClient();  // Its own connection.
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(60));
    if (kind == 0) {
      v1::StreamMetricsRequest req;
      req.set_job_id(job_id);
      auto reader = own.training->StreamMetrics(&ctx, req);
      v1::MetricEvent e;
      for (int k = 0; k < 20 && reader->Read(&e); ++k) {
      }
      ctx.TryCancel();
      reader->Finish().error_code();
    } else if (kind == 1) {
      v1::DatasetInfo info;
      auto writer = own.training->UploadDataset(&ctx, &info);
      v1::UploadDatasetRequest req;
      v1::DatasetHeader* h = req.mutable_header();
      h->set_name("abandoned");
      h->add_sample_shape(2);
      h->set_num_classes(2);
      h->set_num_samples(200000);
      h->set_crc32c(server::Crc32c(payload));
      writer->Write(req);
      constexpr size_t kChunk = 64 << 10;
      for (size_t off = 0; off < payload.size() / 2; off += kChunk) {
        v1::UploadDatasetRequest part;
        part.set_chunk(payload.substr(off, kChunk));
        if (!writer->Write(part)) break;
      }
      ctx.TryCancel();
      if (!writer->Finish().ok()) ++uploads_refused;
    } else {
      auto stream = own.training->TrainStream(&ctx);
      for (int k = 0; k < 3; ++k) {
        v1::TrainStepRequest req;
        req.set_model_id("driven");
        req.mutable_optimizer()->set_kind(v1::OPTIMIZER_SGD);
        req.mutable_optimizer()->set_learning_rate(0.01f);
        v1::Tensor* x = req.mutable_inputs();
        x->add_shape(16);
        x->add_shape(2);
        for (float v : batch.x) x->add_data(v);
        v1::Tensor* y = req.mutable_targets();
        y->add_shape(16);
        for (float v : batch.y) y->add_data(v);
        if (!stream->Write(req)) break;
        v1::TrainStepResponse resp;
        if (k < 2 && !stream->Read(&resp)) break;
      }
      ctx.TryCancel();
      stream->Finish().error_code();
    }
  };
  auto burst = [&](int n, int* peak_threads) {
    std::atomic<bool> done{false};
    std::thread sampler([&] {
      while (!done.load()) {
        *peak_threads = std::max(*peak_threads, d.Threads());
        usleep(5000);
      }
    });
    std::vector<std::thread> clients;
    for (int k = 0; k < n; ++k) clients.emplace_back(vanish, k % 3);
    for (auto& t : clients) t.join();
    done = true;
    sampler.join();
  };
  // Settles: waits for the thread count to stop moving.
  auto settle = [&]() {
    int last = d.Threads();
    for (int k = 0; k < 40; ++k) {
      usleep(250000);
      const int now = d.Threads();
      if (now == last && k >= 4) break;
      last = now;
    }
  };
  int warm_peak = 0;
  burst(9, &warm_peak);  // Warms the pools the burst will use.
  settle();
  const int base_threads = d.Threads();
  const int64_t base_rss = d.RssKib();
  // Two bursts: the first may raise the allocator's high-water mark (17
  // half uploads of 2.4 MB buffers at once); a leak grows with each.
  int peak_threads = 0;
  uploads_refused = 0;
  burst(50, &peak_threads);
  settle();
  const int mid_threads = d.Threads();
  const int64_t mid_rss = d.RssKib();
  EXPECT_EQ(uploads_refused.load(), 17);
  burst(50, &peak_threads);
  settle();
  const int end_threads = d.Threads();
  const int64_t end_rss = d.RssKib();
  std::printf(
      "2 x 50 vanishing clients: threads %d before, %d peak, %d after the "
      "first burst, %d after the second; RSS %lld KiB before, %lld after the "
      "first, %lld after the second\n",
      base_threads, peak_threads, mid_threads, end_threads,
      static_cast<long long>(base_rss), static_cast<long long>(mid_rss),
      static_cast<long long>(end_rss));
  EXPECT_LE(mid_threads, base_threads + 4);
  EXPECT_LE(end_threads, base_threads + 4);
#if !defined(__SANITIZE_ADDRESS__)
  // A coarse bound: after a 50-thread burst glibc's per-thread arenas keep
  // from 5 to 15 MB resident (measured), so a tighter RSS bound flakes.
  // Leaks proper are LeakSanitizer's: in the ASan build the daemon's exit
  // status below is non-zero if it finds any. (Under ASan, RSS is its
  // quarantine's, so no bound at all there.)
  EXPECT_LE(mid_rss, base_rss + 32 * 1024);
  EXPECT_LE(end_rss, mid_rss + 32 * 1024);
#endif
  // No partial data set, on the wire or on disk.
  v1::ListDatasetsRequest lreq;
  v1::ListDatasetsResponse lresp;
  auto lctx = Ctx(10);
  ASSERT_TRUE(c.training->ListDatasets(lctx.get(), lreq, &lresp).ok());
  int uploads = 0;
  for (const auto& info : lresp.datasets()) {
    EXPECT_NE(info.name(), "abandoned");
    uploads += info.name() == "blobs";
  }
  EXPECT_EQ(uploads, 1);
  EXPECT_EQ(FilesEndingIn(data + "/datasets", ".dataset").size(), 1u);
  EXPECT_TRUE(FilesEndingIn(data + "/datasets", ".tmp").empty());
  // The abandoned training streams released their model.
  v1::TrainStepRequest req;
  req.set_model_id("driven");
  *req.mutable_inputs() = v1::Tensor();
  req.mutable_inputs()->add_shape(16);
  req.mutable_inputs()->add_shape(2);
  for (float v : batch.x) req.mutable_inputs()->add_data(v);
  req.mutable_targets()->add_shape(16);
  for (float v : batch.y) req.mutable_targets()->add_data(v);
  v1::TrainStepResponse resp;
  auto sctx = Ctx(10);
  grpc::Status s = c.training->TrainStep(sctx.get(), req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  ASSERT_TRUE(GetJob(c, job_id, &j).ok());
  EXPECT_EQ(j.state(), v1::JOB_STATE_PAUSED) << j.failure_reason();
  v1::CancelJobRequest creq;
  creq.set_job_id(job_id);
  auto cctx = Ctx(10);
  EXPECT_TRUE(c.training->CancelJob(cctx.get(), creq, &j).ok());
  EXPECT_EQ(WaitForJob(c, job_id, 30).state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(d.Kill(SIGTERM), 0);
}

}  // namespace
}  // namespace nnlab::testing
