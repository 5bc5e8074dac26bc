// nnlab::Client against a real nnlabd: typed calls and status codes,
// the token, TLS, and a metric stream that survives a server restart.
#include "client/client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <set>
#include <thread>
#include <vector>

#include "client/cli/spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/cli_test_util.h"

namespace nnlab {
namespace {

using ::testing::HasSubstr;
using testing::ServerProcess;
using testing::SourcePath;

std::unique_ptr<Client> Connect(const std::string& address,
                                ClientOptions o = ClientOptions()) {
  o.server = address;
  auto c = Client::Create(o);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

v1::CreateModelRequest Spec(const std::string& file) {
  v1::CreateModelRequest req;
  absl::Status s = cli::LoadModelDefinition(SourcePath(file), &req);
  EXPECT_TRUE(s.ok()) << s;
  return req;
}

TEST(ClientTest, TypedCallsAndStatusCodes) {
  ServerProcess server;
  ASSERT_TRUE(server.ok()) << server.log();
  auto client = Connect(server.address());
  ASSERT_NE(client, nullptr);

  auto health = client->Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, HealthStatus::kServing);

  v1::CreateModelRequest req = Spec("examples/mnist_mlp_100.textproto");
  req.set_model_id("mlp");
  auto model = client->CreateModel(req);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->model_id(), "mlp");
  EXPECT_EQ(model->parameter_count(), 79510);

  // The server's codes come through unchanged.
  EXPECT_EQ(client->CreateModel(req).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(client->GetModel("nosuch").status().code(),
            absl::StatusCode::kNotFound);
  v1::CreateModelRequest bad;
  bad.mutable_spec()->add_input_shape(784);
  bad.mutable_spec()->add_layers()->mutable_dense()->set_units(0);
  auto rejected = client->CreateModel(bad);
  EXPECT_EQ(rejected.status().code(), absl::StatusCode::kInvalidArgument);

  auto models = client->ListModels();
  ASSERT_TRUE(models.ok());
  ASSERT_EQ(models->size(), 1u);
  EXPECT_EQ((*models)[0].model_id(), "mlp");

  // One client-driven step on a hand-made batch of two samples.
  v1::TrainStepRequest step;
  step.set_model_id("mlp");
  step.mutable_inputs()->add_shape(2);
  step.mutable_inputs()->add_shape(784);
  for (int i = 0; i < 2 * 784; ++i)
    step.mutable_inputs()->add_data((i % 7) / 7.0f);
  step.mutable_targets()->add_shape(2);
  step.mutable_targets()->add_data(3);
  step.mutable_targets()->add_data(5);
  step.set_layer_stats(true);
  auto trained = client->TrainStep(step);
  ASSERT_TRUE(trained.ok()) << trained.status();
  EXPECT_EQ(trained->metrics().step(), 1);
  EXPECT_GT(trained->metrics().loss(), 0);
  EXPECT_EQ(trained->metrics().layers_size(), 2);

  v1::InferRequest infer;
  infer.set_model_id("mlp");
  *infer.mutable_inputs() = step.inputs();
  infer.set_top_k(3);
  auto out = client->Infer(infer);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->predictions_size(), 2);
  ASSERT_EQ(out->top_k_size(), 2);
  EXPECT_EQ(out->top_k(0).classes(0), out->predictions(0));
  EXPECT_EQ(out->weights_step(), 1);

  auto datasets = client->ListDatasets();
  ASSERT_TRUE(datasets.ok());
  EXPECT_EQ((*datasets)[0].dataset_id(), "mnist");

  EXPECT_TRUE(client->DeleteModel("mlp").ok());
  EXPECT_EQ(client->GetModel("mlp").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(ClientTest, UploadChecksumsThePayload) {
  ServerProcess server;
  ASSERT_TRUE(server.ok()) << server.log();
  auto client = Connect(server.address());
  // 6 samples of 2 features, 2 classes, the last 2 for testing.
  v1::DatasetHeader h;
  h.set_name("tiny");
  h.add_sample_shape(2);
  h.set_num_classes(2);
  h.set_num_samples(6);
  h.set_test_samples(2);
  std::string payload;
  auto put = [&](float v) {
    payload.append(reinterpret_cast<const char*>(&v), 4);
  };
  for (int i = 0; i < 12; ++i) put(static_cast<float>(i) / 12);
  for (int i = 0; i < 6; ++i) put(static_cast<float>(i % 2));
  auto info = client->UploadDataset(h, payload, /*chunk_bytes=*/20);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->train_samples(), 4);
  EXPECT_EQ(info->test_samples(), 2);
  EXPECT_FALSE(info->builtin());

  // A wrong checksum is DATA_LOSS.
  h.set_crc32c(Crc32c(payload.data(), payload.size()) ^ 1);
  EXPECT_EQ(client->UploadDataset(h, payload).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_TRUE(client->DeleteDataset(info->dataset_id()).ok());
}

TEST(ClientTest, Crc32cMatchesTheStandardCheckValue) {
  // The CRC-32C check value of "123456789" (RFC 3720, iSCSI).
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  // Incremental use gives the same result.
  EXPECT_EQ(Crc32c("56789", 5, Crc32c("1234", 4)), 0xE3069283u);
}

TEST(ClientTest, TokenTravelsAsBearerMetadata) {
  const std::string token_file = ::testing::TempDir() + "/client_token";
  {
    std::ofstream f(token_file);
    f << "abc123\n";
  }
  ServerProcess server({"--token_file=" + token_file});
  ASSERT_TRUE(server.ok()) << server.log();
  auto anonymous = Connect(server.address());
  EXPECT_EQ(anonymous->ListModels().status().code(),
            absl::StatusCode::kUnauthenticated);
  ClientOptions o;
  o.token = "abc123";
  auto authorised = Connect(server.address(), o);
  EXPECT_TRUE(authorised->ListModels().ok());
  std::remove(token_file.c_str());
}

TEST(ClientTest, TlsWithTheServersCertificate) {
  const std::string dir = testing::MakeTempDir("tls");
  const std::string cert = dir + "/cert.pem", key = dir + "/key.pem";
  // A self-signed certificate for localhost and 127.0.0.1.
  const std::string cmd =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
      key + " -out " + cert + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0)
      << "openssl (from ca-certificates) is needed";
  ServerProcess server({"--tls_cert=" + cert, "--tls_key=" + key});
  ASSERT_TRUE(server.ok()) << server.log();

  ClientOptions o;
  o.tls = true;
  o.tls_ca_file = cert;
  auto tls = Connect(server.address(), o);
  auto health = tls->Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, HealthStatus::kServing);
  EXPECT_TRUE(tls->ListModels().ok());

  // Without trusting the certificate, or in plaintext: no connection.
  auto untrusted = Connect(server.address(), [] {
    ClientOptions u;
    u.tls = true;
    return u;
  }());
  EXPECT_EQ(untrusted->ListModels().status().code(),
            absl::StatusCode::kUnavailable);
  ClientOptions plain;
  plain.deadline = absl::Seconds(5);
  auto plaintext = Connect(server.address(), plain);
  EXPECT_FALSE(plaintext->ListModels().ok());

  // Half a client key pair, or an unreadable CA file, is refused up front.
  o.tls_cert_file = cert;
  EXPECT_EQ(Client::Create(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.tls_cert_file.clear();
  o.tls_ca_file = dir + "/missing.pem";
  EXPECT_EQ(Client::Create(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  testing::RemoveTree(dir);
}

TEST(ClientTest, DefaultDeadlineBoundsEveryCall) {
  // A socket that accepts connections (the kernel does, from the backlog)
  // but never speaks HTTP/2: without a deadline the call would hang.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 16), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);

  ClientOptions o;
  o.deadline = absl::Milliseconds(500);
  auto client = Connect(absl::StrCat("127.0.0.1:", ntohs(addr.sin_port)), o);
  const absl::Time start = absl::Now();
  absl::Status s = client->GetJob("j").status();
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_GE(took, absl::Milliseconds(400));
  EXPECT_LT(took, absl::Seconds(5));
  close(fd);
}

TEST(ClientTest, WatchReconnectsFromTheLastStepAfterARestart) {
  ServerProcess server;
  ASSERT_TRUE(server.ok()) << server.log();
  ClientOptions o;
  o.max_reconnects = 50;
  o.reconnect_backoff = absl::Milliseconds(100);
  auto client = Connect(server.address(), o);
  auto model =
      client->CreateModel(Spec("examples/lecture_deep_sigmoid.textproto"));
  ASSERT_TRUE(model.ok()) << model.status();
  v1::JobSpec spec;
  spec.set_model_id(model->model_id());
  spec.set_dataset("mnist");
  spec.set_batch_size(10);
  // 80,000 steps, far more than the test follows: the job is still running
  // when the server is stopped, however fast it trains. Cancelled at the end.
  spec.set_epochs(100);
  auto job = client->StartJob(spec);
  ASSERT_TRUE(job.ok()) << job.status();

  // At step 50 the server is stopped (it checkpoints the job) and started
  // again on the same port; the watch must carry on across it. It stops at
  // the first step from 600 on that arrives after it reconnected.
  std::vector<int64_t> steps;
  std::set<int64_t> sequences;
  std::atomic<bool> restarted{false};
  std::thread restarter;
  int reconnects = 0;
  bool duplicate = false;
  absl::Status s = client->WatchMetrics(
      [&] {
        v1::StreamMetricsRequest r;
        r.set_job_id(job->job_id());
        r.set_omit_layer_stats(true);
        return r;
      }(),
      [&](const v1::MetricEvent& e) {
        duplicate |= !sequences.insert(e.sequence()).second;
        if (e.phase() == v1::PHASE_TRAIN) steps.push_back(e.step());
        if (e.step() >= 50 && !restarted.exchange(true)) {
          restarter = std::thread(
              [&] { EXPECT_TRUE(server.Restart()) << server.log(); });
        }
        return !(reconnects > 0 && e.phase() == v1::PHASE_TRAIN &&
                 e.step() >= 600);
      },
      [&](const absl::Status&, int64_t from) {
        ++reconnects;
        EXPECT_GE(from, 50);
      });
  if (restarter.joinable()) restarter.join();
  ASSERT_TRUE(s.ok()) << s << "\n" << server.log();
  EXPECT_GE(reconnects, 1);
  EXPECT_FALSE(duplicate);
  auto now = client->GetJob(job->job_id());
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_TRUE(now->state() == v1::JOB_STATE_QUEUED ||
              now->state() == v1::JOB_STATE_RUNNING)
      << now->DebugString();
  EXPECT_GE(now->resume_count(), 1);
  // Every step exactly once, in order, across the restart.
  ASSERT_GE(steps.size(), 600u);
  for (size_t i = 0; i < steps.size(); ++i)
    EXPECT_EQ(steps[i], static_cast<int64_t>(i + 1));

  ASSERT_TRUE(client->CancelJob(job->job_id()).ok());
  for (int i = 0; i < 1000; ++i) {
    now = client->GetJob(job->job_id());
    ASSERT_TRUE(now.ok()) << now.status();
    if (now->state() == v1::JOB_STATE_CANCELLED) break;
    usleep(10000);
  }
  EXPECT_EQ(now->state(), v1::JOB_STATE_CANCELLED) << now->DebugString();
}

}  // namespace
}  // namespace nnlab
