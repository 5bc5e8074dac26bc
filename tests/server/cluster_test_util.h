// Helpers for the cluster tests (cluster_*_test.cc): a coordinator and
// workers as real nnlabd processes on loopback sharing one token, small
// data-parallel specs, and reading jobs, losses and weights back.
#ifndef NNLAB_TESTS_SERVER_CLUSTER_TEST_UTIL_H_
#define NNLAB_TESTS_SERVER_CLUSTER_TEST_UTIL_H_

#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "nnlab/v1/cluster.grpc.pb.h"
#include "server/convert.h"
#include "tests/nnlabd_process.h"
#include "tests/server/server_test_util.h"

namespace nnlab::testing {

inline constexpr char kToken[] = "cluster-test-token";

// A coordinator and workers, all sharing one token file.
class Cluster {
 public:
  // `timeout_ms`: --collective_timeout_ms of every process (sanitizer
  // builds start replicas slowly; the fault cases want a short bound).
  // `extra_flags` go to every process (e.g. --max_jobs).
  explicit Cluster(int timeout_ms = 20000,
                   std::vector<std::string> extra_flags = {})
      : timeout_ms_(timeout_ms), common_flags_(std::move(extra_flags)) {
    token_file_ = dir_.path() + "/token";
    FILE* f = std::fopen(token_file_.c_str(), "w");
    std::fputs(kToken, f);
    std::fclose(f);
  }

  std::vector<std::string> Flags(const std::string& name,
                                 const std::string& token_file) const {
    std::vector<std::string> flags = {
        absl::StrCat("--data_dir=", dir_.path(), "/", name),
        "--token_file=" + token_file, "--blas_threads=1", "--heartbeat_ms=500",
        absl::StrCat("--collective_timeout_ms=", timeout_ms_)};
    flags.insert(flags.end(), common_flags_.begin(), common_flags_.end());
    return flags;
  }
  // Every process started afterwards also gets `flags`; the test's own
  // calls use `creds`.
  void UseTls(const std::vector<std::string>& flags,
              std::shared_ptr<grpc::ChannelCredentials> creds) {
    common_flags_.insert(common_flags_.end(), flags.begin(), flags.end());
    creds_ = std::move(creds);
  }
  const std::string& dir() const { return dir_.path(); }
  std::string Log(const std::string& name) const {
    return absl::StrCat(dir_.path(), "/", name, ".log");
  }

  absl::Status StartCoordinator() {
    return coordinator_.Start(NNLAB_NNLABD_PATH, 0,
                              Flags("coordinator", token_file_),
                              Log("coordinator"));
  }
  // Starts a worker that joins the coordinator; `extra` flags appended.
  absl::Status AddWorker(const std::vector<std::string>& extra = {},
                         const std::string& token_file = "") {
    const std::string name = absl::StrCat("worker", workers_.size());
    std::vector<std::string> flags =
        Flags(name, token_file.empty() ? token_file_ : token_file);
    flags.push_back("--join=" + coordinator_.address());
    flags.insert(flags.end(), extra.begin(), extra.end());
    auto w = std::make_unique<NnlabdProcess>();
    absl::Status s = w->Start(NNLAB_NNLABD_PATH, 0, flags, Log(name));
    workers_.push_back(std::move(w));
    worker_flags_.push_back(std::move(flags));
    return s;
  }
  // Starts worker `i` again after it ended, with the same flags, data
  // directory and port (as a supervisor restarting it would).
  absl::Status RestartWorker(int i) {
    NnlabdProcess& w = *workers_[i];
    const int port = w.port();
    return w.Start(NNLAB_NNLABD_PATH, port, worker_flags_[i],
                   Log(absl::StrCat("worker", i)));
  }

  // Starts the coordinator again after it ended, with the same flags, data
  // directory and port (the workers find it again there).
  absl::Status RestartCoordinator() {
    return coordinator_.Start(NNLAB_NNLABD_PATH, coordinator_.port(),
                              Flags("coordinator", token_file_),
                              Log("coordinator"));
  }
  NnlabdProcess& coordinator() { return coordinator_; }

  Client MakeClient() const {
    return Client(grpc::CreateChannel(coordinator_.address(), creds_));
  }
  std::vector<v1::Member> Members() const {
    auto stub = v1::ClusterService::NewStub(
        grpc::CreateChannel(coordinator_.address(), creds_));
    auto ctx = Ctx(10, kToken);
    v1::ListMembersResponse resp;
    EXPECT_TRUE(stub->ListMembers(ctx.get(), {}, &resp).ok());
    return {resp.members().begin(), resp.members().end()};
  }
  std::string ReadLog(const std::string& name) const {
    std::ifstream in(Log(name));
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  NnlabdProcess& worker(int i) { return *workers_[i]; }

 private:
  int timeout_ms_;
  std::vector<std::string> common_flags_;
  TempDir dir_;
  std::string token_file_;
  std::shared_ptr<grpc::ChannelCredentials> creds_ =
      grpc::InsecureChannelCredentials();
  NnlabdProcess coordinator_;
  std::vector<std::unique_ptr<NnlabdProcess>> workers_;
  std::vector<std::vector<std::string>> worker_flags_;
};

inline v1::JobSpec Spec(const std::string& model, int64_t batch, int replicas) {
  v1::JobSpec spec;
  spec.set_model_id(model);
  spec.set_dataset("mnist");
  spec.mutable_optimizer()->set_kind(v1::OPTIMIZER_MOMENTUM);
  spec.mutable_optimizer()->set_learning_rate(0.05f);
  spec.set_batch_size(batch);
  spec.set_replicas(replicas);
  spec.set_max_steps(50);
  spec.set_shuffle_seed(3);
  return spec;
}

inline v1::Job Start(Client& c, const v1::JobSpec& spec, grpc::Status* status) {
  v1::StartJobRequest req;
  *req.mutable_spec() = spec;
  v1::Job job;
  auto ctx = Ctx(30, kToken);
  *status = c.training->StartJob(ctx.get(), req, &job);
  return job;
}

// Start that expects the job to be accepted.
inline v1::Job Start(Client& c, const v1::JobSpec& spec) {
  grpc::Status s;
  v1::Job job = Start(c, spec, &s);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return job;
}

inline v1::Job Get(Client& c, const std::string& id) {
  v1::GetJobRequest req;
  req.set_job_id(id);
  v1::Job job;
  auto ctx = Ctx(10, kToken);
  const grpc::Status s = c.training->GetJob(ctx.get(), req, &job);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return job;
}

inline void CancelJob(Client& c, const std::string& id) {
  v1::CancelJobRequest req;
  req.set_job_id(id);
  v1::Job job;
  auto ctx = Ctx(10, kToken);
  EXPECT_TRUE(c.training->CancelJob(ctx.get(), req, &job).ok());
}

inline bool Ended(const v1::Job& j) {
  return j.state() == v1::JOB_STATE_COMPLETED ||
         j.state() == v1::JOB_STATE_FAILED ||
         j.state() == v1::JOB_STATE_CANCELLED;
}

// Polls the job (every 50 ms, up to 60 s) until `done` says so.
template <typename Pred>
v1::Job WaitFor(Client& c, const std::string& id, Pred done) {
  v1::Job job;
  for (int i = 0; i < 1200; ++i) {
    job = Get(c, id);
    if (done(job)) return job;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ADD_FAILURE() << "job " << id << " never reached the awaited state; it is "
                << v1::JobState_Name(job.state()) << " at step " << job.step()
                << ": " << job.failure_reason();
  return job;
}

// Polls until the job has ended.
inline v1::Job Wait(Client& c, const std::string& id) {
  return WaitFor(c, id, Ended);
}

// The training losses of a finished job, by step.
inline std::vector<double> Losses(Client& c, const std::string& id) {
  v1::StreamMetricsRequest req;
  req.set_job_id(id);
  auto ctx = Ctx(60, kToken);
  auto reader = c.training->StreamMetrics(ctx.get(), req);
  std::vector<double> losses;
  v1::MetricEvent e;
  while (reader->Read(&e)) {
    if (e.phase() == v1::PHASE_TRAIN) {
      EXPECT_EQ(e.step(), static_cast<int64_t>(losses.size()) + 1);
      losses.push_back(e.loss());
    }
  }
  EXPECT_TRUE(reader->Finish().ok());
  return losses;
}

inline std::vector<float> Weights(Client& c, const std::string& model) {
  v1::ExportModelRequest req;
  req.set_model_id(model);
  v1::ExportModelResponse resp;
  auto ctx = Ctx(30, kToken);
  EXPECT_TRUE(c.models->ExportModel(ctx.get(), req, &resp).ok());
  std::vector<float> all;
  for (const v1::NamedTensor& p : resp.file().params()) {
    auto t = server::TensorFromProto(p.tensor(), "param", server::Limits());
    EXPECT_TRUE(t.ok()) << t.status();
    if (t.ok()) all.insert(all.end(), t->data(), t->data() + t->size());
  }
  return all;
}

inline void CreateModel(Client& c, const std::string& id) {
  v1::CreateModelRequest req;
  req.set_model_id(id);
  *req.mutable_spec() = MlpSpec(784, 64, 10, /*seed=*/5);
  v1::Model m;
  auto ctx = Ctx(30, kToken);
  ASSERT_TRUE(c.models->CreateModel(ctx.get(), req, &m).ok());
}

}  // namespace nnlab::testing

#endif  // NNLAB_TESTS_SERVER_CLUSTER_TEST_UTIL_H_
