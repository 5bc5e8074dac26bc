// Data-parallel jobs across real nnlabd processes on loopback: a
// coordinator and 1 or 3 workers (--join), each replica its own process
// with its own Gloo transport. The first 50 steps' losses of a job with N
// replicas at batch b equal those of a one-process job at batch N x b
// within 1e-5 relative, and so do the final weights (they differ only by
// the order of the floating-point sums: Gloo's halving-doubling adds the
// replicas' gradients in another order than one process sums its batch).
// Bad input: too many or negative replicas, a worker with another token,
// one that joins twice, a Gloo address nobody can reach: clear status
// codes, nothing hangs.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "nnlab/v1/cluster.grpc.pb.h"
#include "server/convert.h"
#include "tests/nnlabd_process.h"
#include "tests/server/server_test_util.h"

namespace nnlab::testing {
namespace {

const char kToken[] = "cluster-test-token";

// A coordinator and workers, all sharing one token file.
class Cluster {
 public:
  // `timeout_ms`: --collective_timeout_ms of every process (sanitizer
  // builds start replicas slowly; the fault cases want a short bound).
  explicit Cluster(int timeout_ms = 20000) : timeout_ms_(timeout_ms) {
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
  // Every process started afterwards gets `flags`; the test's own calls
  // use `creds`.
  void UseTls(std::vector<std::string> flags,
              std::shared_ptr<grpc::ChannelCredentials> creds) {
    common_flags_ = std::move(flags);
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
    return s;
  }

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
  TempDir dir_;
  std::string token_file_;
  std::vector<std::string> common_flags_;
  std::shared_ptr<grpc::ChannelCredentials> creds_ =
      grpc::InsecureChannelCredentials();
  NnlabdProcess coordinator_;
  std::vector<std::unique_ptr<NnlabdProcess>> workers_;
};

v1::JobSpec Spec(const std::string& model, int64_t batch, int replicas) {
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

v1::Job Start(Client& c, const v1::JobSpec& spec, grpc::Status* status) {
  v1::StartJobRequest req;
  *req.mutable_spec() = spec;
  v1::Job job;
  auto ctx = Ctx(30, kToken);
  *status = c.training->StartJob(ctx.get(), req, &job);
  return job;
}

v1::Job Wait(Client& c, const std::string& id) {
  for (int i = 0; i < 1200; ++i) {
    v1::GetJobRequest req;
    req.set_job_id(id);
    v1::Job job;
    auto ctx = Ctx(10, kToken);
    EXPECT_TRUE(c.training->GetJob(ctx.get(), req, &job).ok());
    if (job.state() == v1::JOB_STATE_COMPLETED ||
        job.state() == v1::JOB_STATE_FAILED ||
        job.state() == v1::JOB_STATE_CANCELLED) {
      return job;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  ADD_FAILURE() << "job " << id << " did not end";
  return {};
}

// The training losses of a finished job, by step.
std::vector<double> Losses(Client& c, const std::string& id) {
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

std::vector<float> Weights(Client& c, const std::string& model) {
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

void CreateModel(Client& c, const std::string& id) {
  v1::CreateModelRequest req;
  req.set_model_id(id);
  *req.mutable_spec() = MlpSpec(784, 64, 10, /*seed=*/5);
  v1::Model m;
  auto ctx = Ctx(30, kToken);
  ASSERT_TRUE(c.models->CreateModel(ctx.get(), req, &m).ok());
}

void ExpectSameAsOneProcess(int replicas) {
  Cluster cluster;
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  for (int i = 1; i < replicas; ++i) ASSERT_TRUE(cluster.AddWorker().ok());
  ASSERT_EQ(cluster.Members().size(), static_cast<size_t>(replicas));
  Client c = cluster.MakeClient();
  CreateModel(c, "one");
  CreateModel(c, "many");
  const int64_t b = 16;
  grpc::Status s;
  const v1::Job one = Start(c, Spec("one", replicas * b, 1), &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(Wait(c, one.job_id()).state(), v1::JOB_STATE_COMPLETED);
  const v1::Job many = Start(c, Spec("many", b, replicas), &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const v1::Job done = Wait(c, many.job_id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_COMPLETED) << done.failure_reason();
  ASSERT_EQ(done.replica_members_size(), replicas);
  EXPECT_EQ(done.replica_members(0), "coordinator");

  const std::vector<double> l1 = Losses(c, one.job_id());
  const std::vector<double> ln = Losses(c, many.job_id());
  ASSERT_EQ(l1.size(), 50u);
  ASSERT_EQ(ln.size(), 50u);
  double worst = 0;
  for (size_t i = 0; i < l1.size(); ++i) {
    const double rel = std::abs(l1[i] - ln[i]) / std::abs(l1[i]);
    worst = std::max(worst, rel);
    EXPECT_LE(rel, 1e-5) << "step " << i + 1 << ": " << l1[i] << " vs "
                         << ln[i];
  }
  // The losses moved: the comparison is not between two untrained models.
  EXPECT_LT(l1.back(), l1.front() * 0.8);
  const std::vector<float> w1 = Weights(c, "one");
  const std::vector<float> wn = Weights(c, "many");
  ASSERT_EQ(w1.size(), wn.size());
  double d = 0, n = 0;
  for (size_t i = 0; i < w1.size(); ++i) {
    d += (double(w1[i]) - wn[i]) * (double(w1[i]) - wn[i]);
    n += double(w1[i]) * w1[i];
  }
  EXPECT_LE(std::sqrt(d / n), 1e-5);
  std::printf(
      "%d replicas: worst loss difference %.2e relative, weights %.2e\n",
      replicas, worst, std::sqrt(d / n));
}

TEST(ClusterTest, TwoReplicasTrainLikeOneProcessAtTheGlobalBatch) {
  ExpectSameAsOneProcess(2);
}

TEST(ClusterTest, FourReplicasTrainLikeOneProcessAtTheGlobalBatch) {
  ExpectSameAsOneProcess(4);
}

// Every member serves TLS and requires client certificates from the
// cluster's CA: joining, heartbeats, rendezvous and the coordinator's calls
// to its workers all go over mutual TLS, and a 2-replica job completes. A
// worker whose certificate another CA signed cannot join.
TEST(ClusterTest, MutualTlsBetweenMembers) {
  Cluster cluster;
  const std::string d = cluster.dir();
  MakeCa(d, "ca");
  MakeCa(d, "other-ca");
  MakeCert(d, "ca", "member");
  MakeCert(d, "ca", "client");
  MakeCert(d, "other-ca", "stranger");
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadText(d + "/ca.pem");
  ssl.pem_cert_chain = ReadText(d + "/client.pem");
  ssl.pem_private_key = ReadText(d + "/client.key");
  cluster.UseTls(
      {"--tls_cert=" + d + "/member.pem", "--tls_key=" + d + "/member.key",
       "--tls_client_ca=" + d + "/ca.pem", "--cluster_tls_ca=" + d + "/ca.pem"},
      grpc::SslCredentials(ssl));
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.AddWorker().ok());
  EXPECT_FALSE(cluster
                   .AddWorker({"--tls_cert=" + d + "/stranger.pem",
                               "--tls_key=" + d + "/stranger.key"})
                   .ok());
  ASSERT_EQ(cluster.Members().size(), 2u);
  Client c = cluster.MakeClient();
  CreateModel(c, "m");
  grpc::Status s;
  const v1::Job job = Start(c, Spec("m", 16, 2), &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const v1::Job done = Wait(c, job.job_id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_COMPLETED) << done.failure_reason();
  EXPECT_EQ(done.replica_members_size(), 2);
}

TEST(ClusterTest, BadInputGetsClearCodesAndNothingHangs) {
  Cluster cluster(/*timeout_ms=*/5000);
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.AddWorker().ok());
  // A worker with another token never starts serving; it says why.
  const std::string bad_token = cluster.Log("bad") + ".token";
  {
    FILE* f = std::fopen(bad_token.c_str(), "w");
    std::fputs("not-the-token", f);
    std::fclose(f);
  }
  EXPECT_FALSE(cluster.AddWorker({}, bad_token).ok());
  EXPECT_NE(cluster.ReadLog("worker1").find("UNAUTHENTICATED"),
            std::string::npos);
  // A second process claiming a live member's address is refused.
  EXPECT_FALSE(cluster
                   .AddWorker({"--advertise=127.0.0.1:" +
                               std::to_string(cluster.worker(0).port())})
                   .ok());
  EXPECT_NE(cluster.ReadLog("worker2").find("ALREADY_EXISTS"),
            std::string::npos);
  // A wildcard Gloo address needs explicit consent.
  EXPECT_FALSE(cluster.AddWorker({"--collective_listen=0.0.0.0"}).ok());
  EXPECT_NE(cluster.ReadLog("worker3").find("wildcard"), std::string::npos);
  ASSERT_EQ(cluster.Members().size(), 2u);

  Client c = cluster.MakeClient();
  CreateModel(c, "m");
  grpc::Status s;
  Start(c, Spec("m", 16, 3), &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << s.error_message();
  Start(c, Spec("m", 16, -1), &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::JobSpec min = Spec("m", 16, 2);
  min.set_min_replicas(3);
  Start(c, min, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // RunReplica is for the coordinator; garbage gets clear codes.
  {
    auto stub = v1::ClusterService::NewStub(grpc::CreateChannel(
        cluster.worker(0).address(), grpc::InsecureChannelCredentials()));
    v1::RunReplicaRequest req;
    req.set_job_id("j");
    *req.mutable_spec() = Spec("m", 16, 2);
    req.set_rendezvous_prefix("p/");
    req.set_rank(1);
    req.set_size(2);
    req.set_checkpoint("not a checkpoint");
    v1::RunReplicaResponse resp;
    auto ctx = Ctx(30, kToken);
    EXPECT_EQ(stub->RunReplica(ctx.get(), req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    req.set_rank(2);
    ctx = Ctx(30, kToken);
    EXPECT_EQ(stub->RunReplica(ctx.get(), req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    ctx = Ctx(30, "wrong");
    EXPECT_EQ(stub->RunReplica(ctx.get(), req, &resp).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }

  // A worker whose Gloo address is not this machine's: its replica cannot
  // bind, rank 0's rendezvous times out, the job fails with the reason
  // within the 5 s collective timeout instead of hanging.
  ASSERT_TRUE(cluster.worker(0).Signal(SIGKILL) > 0);
  ASSERT_TRUE(cluster.AddWorker({"--collective_listen=192.0.2.1"}).ok());
  // The killed worker is noticed (3 missed 500 ms beats).
  for (int i = 0; i < 100 && cluster.Members().size() > 2; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  int alive = 0;
  for (const v1::Member& m : cluster.Members()) alive += m.alive();
  for (int i = 0; i < 100 && alive != 2; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    alive = 0;
    for (const v1::Member& m : cluster.Members()) alive += m.alive();
  }
  ASSERT_EQ(alive, 2);
  const absl::Time start = absl::Now();
  const v1::Job job = Start(c, Spec("m", 16, 2), &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const v1::Job failed = Wait(c, job.job_id());
  EXPECT_EQ(failed.state(), v1::JOB_STATE_FAILED);
  EXPECT_NE(failed.failure_reason().find("192.0.2.1"), std::string::npos)
      << failed.failure_reason();
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
}

// kill -9 of a worker mid-job: rank 0's next allreduce fails (the peer's
// sockets close), the job ends FAILED with the reason instead of hanging,
// the coordinator notices the member is gone and keeps serving.
TEST(ClusterTest, KilledWorkerFailsTheJobInsteadOfHanging) {
  Cluster cluster(/*timeout_ms=*/5000);
  ASSERT_TRUE(cluster.StartCoordinator().ok());
  ASSERT_TRUE(cluster.AddWorker().ok());
  Client c = cluster.MakeClient();
  CreateModel(c, "m");
  v1::JobSpec spec = Spec("m", 16, 2);
  spec.set_max_steps(0);
  spec.set_epochs(50);  // 12,500 steps: it cannot finish first.
  grpc::Status s;
  const v1::Job job = Start(c, spec, &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  v1::Job now;
  for (int i = 0; i < 600; ++i) {
    v1::GetJobRequest req;
    req.set_job_id(job.job_id());
    auto ctx = Ctx(10, kToken);
    ASSERT_TRUE(c.training->GetJob(ctx.get(), req, &now).ok());
    if (now.step() >= 20) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_GE(now.step(), 20);
  ASSERT_EQ(now.state(), v1::JOB_STATE_RUNNING);
  const absl::Time killed = absl::Now();
  cluster.worker(0).Signal(SIGKILL);
  const v1::Job failed = Wait(c, job.job_id());
  EXPECT_EQ(failed.state(), v1::JOB_STATE_FAILED);
  EXPECT_NE(failed.failure_reason().find("allreduce"), std::string::npos)
      << failed.failure_reason();
  EXPECT_LT(absl::Now() - killed, absl::Seconds(15));
  EXPECT_LT(failed.step(), 12500);
  std::printf("failed at step %lld: %s\n", (long long)failed.step(),
              failed.failure_reason().c_str());
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    const std::vector<v1::Member> members = cluster.Members();
    gone = members.size() == 2 && !members[1].alive();
    if (!gone) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(gone);
}

}  // namespace
}  // namespace nnlab::testing
