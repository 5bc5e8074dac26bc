// Data-parallel jobs across real nnlabd processes on loopback: a
// coordinator and 1 or 3 workers (--join), each replica its own process
// with its own Gloo transport. The first 50 steps' losses of a job with N
// replicas at batch b equal those of a one-process job at batch N x b
// within 1e-5 relative, and so do the final weights (they differ only by
// the order of the floating-point sums: Gloo's halving-doubling adds the
// replicas' gradients in another order than one process sums its batch);
// so do the test-set evaluations, which the replicas share slice by slice.
// Bad input: too many or negative replicas, a worker with another token,
// one that joins twice, a Gloo address nobody can reach: clear status
// codes, nothing hangs. Faults (a member lost mid-job): cluster_faults_test.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "nnlab/v1/cluster.grpc.pb.h"
#include "tests/server/cluster_test_util.h"

namespace nnlab::testing {
namespace {

// The job's evaluations, in step order.
std::vector<v1::MetricEvent> Evals(Client& c, const std::string& id) {
  v1::StreamMetricsRequest req;
  req.set_job_id(id);
  auto ctx = Ctx(60, kToken);
  auto reader = c.training->StreamMetrics(ctx.get(), req);
  std::vector<v1::MetricEvent> evals;
  v1::MetricEvent e;
  while (reader->Read(&e)) {
    if (e.phase() == v1::PHASE_EVAL) evals.push_back(e);
  }
  EXPECT_TRUE(reader->Finish().ok());
  return evals;
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
  // Evaluations at steps 20 and 40 run inside training, sharded over the
  // replicas; the one at max_steps (50) is rank 0's after the replicas end.
  v1::JobSpec spec_one = Spec("one", replicas * b, 1);
  v1::JobSpec spec_many = Spec("many", b, replicas);
  spec_one.set_eval_every_steps(20);
  spec_many.set_eval_every_steps(20);
  const v1::Job one = Start(c, spec_one, &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(Wait(c, one.job_id()).state(), v1::JOB_STATE_COMPLETED);
  const v1::Job many = Start(c, spec_many, &s);
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
  // The full MNIST test set (10000 samples) each time: loss within 1e-5
  // relative, accuracy within 2 samples (a prediction on a tie may flip).
  const std::vector<v1::MetricEvent> e1 = Evals(c, one.job_id());
  const std::vector<v1::MetricEvent> en = Evals(c, many.job_id());
  ASSERT_EQ(e1.size(), 3u);
  ASSERT_EQ(en.size(), 3u);
  const int64_t eval_steps[] = {20, 40, 50};
  double worst_eval = 0;
  for (size_t i = 0; i < e1.size(); ++i) {
    worst_eval = std::max(worst_eval, std::abs(e1[i].loss() - en[i].loss()) /
                                          std::abs(e1[i].loss()));
    EXPECT_EQ(e1[i].step(), eval_steps[i]);
    EXPECT_EQ(en[i].step(), eval_steps[i]);
    EXPECT_LE(std::abs(e1[i].loss() - en[i].loss()) / std::abs(e1[i].loss()),
              1e-5)
        << "eval at step " << e1[i].step() << ": " << e1[i].loss() << " vs "
        << en[i].loss();
    EXPECT_NEAR(e1[i].accuracy(), en[i].accuracy(), 2e-4)
        << "eval at step " << e1[i].step();
  }
  EXPECT_GT(e1[0].accuracy(), 0.5);  // Trained, not chance.
  std::printf(
      "%d replicas: worst loss difference %.2e relative, weights %.2e, "
      "evaluation loss %.2e\n",
      replicas, worst, std::sqrt(d / n), worst_eval);
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
  // bind, rank 0's rendezvous times out within the 5 s collective timeout
  // instead of hanging, and the job goes back to the queue with the reason
  // (the cluster, not the job, is at fault); cancel still ends it.
  ASSERT_TRUE(cluster.worker(0).Signal(SIGKILL) > 0);
  ASSERT_TRUE(cluster.AddWorker({"--collective_listen=192.0.2.1"}).ok());
  // The killed worker is noticed (3 missed 500 ms beats).
  int alive = 0;
  for (int i = 0; i < 100; ++i) {
    alive = 0;
    for (const v1::Member& m : cluster.Members()) alive += m.alive();
    if (alive == 2 && cluster.Members().size() == 3) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_EQ(alive, 2);
  const absl::Time start = absl::Now();
  const v1::Job job = Start(c, Spec("m", 16, 2), &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const v1::Job queued = WaitFor(c, job.job_id(), [](const v1::Job& j) {
    return j.state() == v1::JOB_STATE_QUEUED && j.resume_count() >= 1;
  });
  EXPECT_NE(queued.failure_reason().find("192.0.2.1"), std::string::npos)
      << queued.failure_reason();
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  CancelJob(c, job.job_id());
  EXPECT_EQ(Wait(c, job.job_id()).state(), v1::JOB_STATE_CANCELLED);
  EXPECT_LT(absl::Now() - start, absl::Seconds(45));
}

}  // namespace
}  // namespace nnlab::testing
