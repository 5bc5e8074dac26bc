// Helpers for service tests: a real nnlabd server in-process on a loopback
// port, real channels and stubs, temp directories, small specs and data.
#ifndef NNLAB_TESTS_SERVER_SERVER_TEST_UTIL_H_
#define NNLAB_TESTS_SERVER_SERVER_TEST_UTIL_H_

#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/codegen/client_unary_call.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/sync_stream.h"
#include "gtest/gtest.h"
#include "nnlab/v1/inference.grpc.pb.h"
#include "nnlab/v1/model.grpc.pb.h"
#include "nnlab/v1/training.grpc.pb.h"
#include "server/log.h"
#include "server/server.h"
#include "server/storage.h"

namespace nnlab::testing {

namespace v1 = ::nnlab::v1;

// A fresh directory under $TMPDIR, removed by the destructor.
class TempDir {
 public:
  TempDir() {
    const char* base = getenv("TMPDIR");
    std::string tmpl = absl::StrCat(base ? base : "/tmp", "/nnlab-test-XXXXXX");
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    const std::string cmd = absl::StrCat("rm -rf '", path_, "'");
    EXPECT_EQ(system(cmd.c_str()), 0);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::chrono::system_clock::time_point Deadline(int seconds = 30) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

using Metadata = std::vector<std::pair<std::string, std::string>>;

struct RawResult {
  grpc::Status status;
  std::string responses;  // Every response message, concatenated.
};

// Sends `payload` (serialized request bytes) to `method` with `metadata`,
// half-closes and reads every response; works for every streaming kind.
inline RawResult RawCall(grpc::Channel* ch, const std::string& method,
                         const std::string& payload,
                         const Metadata& metadata = {}) {
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(10));
  for (const auto& [k, v] : metadata) ctx.AddMetadata(k, v);
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>>
      rw(grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer,
                                                   grpc::ByteBuffer>::
             Create(
                 ch,
                 grpc::internal::RpcMethod(
                     method.c_str(), grpc::internal::RpcMethod::BIDI_STREAMING),
                 &ctx));
  grpc::Slice slice(payload);
  grpc::ByteBuffer req(&slice, 1), resp;
  rw->Write(req);
  rw->WritesDone();
  RawResult r;
  while (rw->Read(&resp)) {
    std::vector<grpc::Slice> slices;
    EXPECT_TRUE(resp.Dump(&slices).ok());
    for (auto& sl : slices) {
      r.responses.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
    }
  }
  r.status = rw->Finish();
  return r;
}

// grpc.health.v1.Health/Check for the whole server; returns the status
// enum (1 SERVING, 2 NOT_SERVING) or -1 on RPC failure.
inline int HealthCheck(const std::shared_ptr<grpc::Channel>& ch) {
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(5));
  grpc::Slice empty("", 0);
  grpc::ByteBuffer req(&empty, 1), resp;
  grpc::Status s =
      grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
          ch.get(),
          grpc::internal::RpcMethod("/grpc.health.v1.Health/Check",
                                    grpc::internal::RpcMethod::NORMAL_RPC),
          &ctx, req, &resp);
  if (!s.ok()) return -1;
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(resp.Dump(&slices).ok());
  std::string bytes;
  for (auto& sl : slices)
    bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  // HealthCheckResponse { status = 1 (enum) }: 0x08 <value>; empty = UNKNOWN.
  if (bytes.size() == 2 && bytes[0] == 0x08) return bytes[1];
  return 0;
}

// Stubs over one channel.
struct Client {
  explicit Client(std::shared_ptr<grpc::Channel> ch)
      : channel(ch),
        models(v1::ModelService::NewStub(ch)),
        training(v1::TrainingService::NewStub(ch)),
        inference(v1::InferenceService::NewStub(ch)) {}
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::ModelService::Stub> models;
  std::unique_ptr<v1::TrainingService::Stub> training;
  std::unique_ptr<v1::InferenceService::Stub> inference;
};

inline std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 60,
                                                const std::string& token = "") {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(Deadline(seconds));
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  return ctx;
}

// An in-process server on 127.0.0.1:0 with its own data directory.
class TestServer {
 public:
  explicit TestServer(server::ServerOptions o = {}, std::string data_dir = "") {
    server::SetQuietLogs(true);
    if (data_dir.empty()) {
      dir_ = std::make_unique<TempDir>();
      data_dir = dir_->path();
    }
    o.listen = "127.0.0.1:0";
    o.data_dir = data_dir;
    options_ = o;
    auto s = server::NnlabServer::Start(o);
    EXPECT_TRUE(s.ok()) << s.status();
    if (s.ok()) server_ = std::move(*s);
  }
  ~TestServer() {
    if (server_) server_->Shutdown(absl::Seconds(2));
  }
  server::NnlabServer* server() { return server_.get(); }
  int port() const { return server_->port(); }
  std::string address() const { return absl::StrCat("127.0.0.1:", port()); }
  std::shared_ptr<grpc::Channel> Channel() const {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    return grpc::CreateCustomChannel(address(),
                                     grpc::InsecureChannelCredentials(), args);
  }
  Client MakeClient() const { return Client(Channel()); }
  const server::ServerOptions& options() const { return options_; }

 private:
  std::unique_ptr<TempDir> dir_;
  server::ServerOptions options_;
  std::unique_ptr<server::NnlabServer> server_;
};

// [in, hidden, out] ReLU MLP with softmax cross-entropy.
// The whole file at `path` ("" when it cannot be read).
inline std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `cmd`; a non-zero exit fails the test, showing the command's output.
inline void Shell(const std::string& cmd) {
  char log[] = "/tmp/nnlab-shell-XXXXXX";
  const int fd = mkstemp(log);
  ASSERT_GE(fd, 0);
  close(fd);
  const int rc = system((cmd + " >" + log + " 2>&1").c_str());
  std::ifstream in(log);
  std::stringstream out;
  out << in.rdbuf();
  unlink(log);
  ASSERT_EQ(rc, 0) << cmd << "\n" << out.str();
}

// A CA (`dir`/`ca`.pem and .key) and certificates it signs for
// 127.0.0.1 / localhost (`dir`/`name`.pem and .key), made with openssl.
inline void MakeCa(const std::string& dir, const std::string& ca) {
  Shell(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
      "-nodes -days 2 -subj /CN=" +
      ca + " -keyout " + dir + "/" + ca + ".key -out " + dir + "/" + ca +
      ".pem");
}
inline void MakeCert(const std::string& dir, const std::string& ca,
                     const std::string& name) {
  const std::string base = dir + "/" + name;
  Shell(
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-subj /CN=" +
      name + " -keyout " + base + ".key -out " + base + ".csr");
  std::ofstream(base + ".ext") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
  Shell("openssl x509 -req -days 2 -in " + base + ".csr -CA " + dir + "/" + ca +
        ".pem -CAkey " + dir + "/" + ca + ".key -CAcreateserial " +
        "-extfile " + base + ".ext -out " + base + ".pem");
}

inline v1::ModelSpec MlpSpec(int64_t in, int64_t hidden, int64_t out,
                             uint64_t seed = 1) {
  v1::ModelSpec s;
  s.set_name("mlp");
  s.add_input_shape(in);
  s.add_layers()->mutable_dense()->set_units(hidden);
  s.add_layers()->mutable_relu();
  s.add_layers()->mutable_dense()->set_units(out);
  s.set_loss(v1::LOSS_SOFTMAX_CROSS_ENTROPY);
  s.set_init(v1::INIT_HE);
  s.set_seed(seed);
  return s;
}

// Two Gaussian blobs in 2-D (class 0 around (-1,-1), class 1 around
// (1, 1)): inputs [n, 2] then labels [n], as an upload payload.
struct Blobs {
  std::vector<float> x, y;
};
inline Blobs MakeBlobs(int n, uint64_t seed = 7) {
  std::mt19937 gen(static_cast<uint32_t>(seed));
  std::normal_distribution<float> noise(0.0f, 0.5f);
  Blobs b;
  for (int i = 0; i < n; ++i) {
    const int c = i % 2;
    const float m = c == 0 ? -1.0f : 1.0f;
    b.x.push_back(m + noise(gen));
    b.x.push_back(m + noise(gen));
    b.y.push_back(float(c));
  }
  return b;
}

// Uploads blobs as a data set (test_samples of them held out); returns its id.
inline std::string UploadBlobs(Client& c, int n, int test_samples,
                               int chunk = 1000) {
  Blobs b = MakeBlobs(n);
  std::string payload(reinterpret_cast<const char*>(b.x.data()),
                      b.x.size() * 4);
  payload.append(reinterpret_cast<const char*>(b.y.data()), b.y.size() * 4);
  auto ctx = Ctx();
  v1::DatasetInfo info;
  auto writer = c.training->UploadDataset(ctx.get(), &info);
  v1::UploadDatasetRequest req;
  v1::DatasetHeader* h = req.mutable_header();
  h->set_name("blobs");
  h->add_sample_shape(2);
  h->set_num_classes(2);
  h->set_num_samples(n);
  h->set_test_samples(test_samples);
  h->set_crc32c(server::Crc32c(payload));
  EXPECT_TRUE(writer->Write(req));
  for (size_t off = 0; off < payload.size(); off += chunk) {
    v1::UploadDatasetRequest part;
    part.set_chunk(payload.substr(off, chunk));
    EXPECT_TRUE(writer->Write(part));
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  EXPECT_TRUE(s.ok()) << s.error_message();
  return info.dataset_id();
}

inline v1::Model CreateModel(Client& c, const v1::ModelSpec& spec,
                             const std::string& id = "") {
  v1::CreateModelRequest req;
  req.set_model_id(id);
  *req.mutable_spec() = spec;
  v1::Model m;
  auto ctx = Ctx();
  grpc::Status s = c.models->CreateModel(ctx.get(), req, &m);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return m;
}

inline v1::Job StartJob(Client& c, const v1::JobSpec& spec) {
  v1::StartJobRequest req;
  *req.mutable_spec() = spec;
  v1::Job job;
  auto ctx = Ctx();
  grpc::Status s = c.training->StartJob(ctx.get(), req, &job);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return job;
}

inline v1::Job GetJob(Client& c, const std::string& id) {
  v1::GetJobRequest req;
  req.set_job_id(id);
  v1::Job job;
  auto ctx = Ctx();
  grpc::Status s = c.training->GetJob(ctx.get(), req, &job);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return job;
}

// PauseJob and ResumeJob; the job as the call returns it.
inline v1::Job Pause(Client& c, const std::string& id) {
  v1::PauseJobRequest req;
  req.set_job_id(id);
  v1::Job job;
  auto ctx = Ctx();
  grpc::Status s = c.training->PauseJob(ctx.get(), req, &job);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return job;
}
inline v1::Job Resume(Client& c, const std::string& id) {
  v1::ResumeJobRequest req;
  req.set_job_id(id);
  v1::Job job;
  auto ctx = Ctx();
  grpc::Status s = c.training->ResumeJob(ctx.get(), req, &job);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return job;
}

// Polls GetJob until the job is paused or has ended.
inline v1::Job WaitForJob(Client& c, const std::string& id,
                          int timeout_seconds = 120) {
  v1::Job job;
  const auto end = Deadline(timeout_seconds);
  while (std::chrono::system_clock::now() < end) {
    job = GetJob(c, id);
    if (job.state() == v1::JOB_STATE_COMPLETED ||
        job.state() == v1::JOB_STATE_CANCELLED ||
        job.state() == v1::JOB_STATE_FAILED ||
        job.state() == v1::JOB_STATE_PAUSED) {
      return job;
    }
    usleep(20000);
  }
  ADD_FAILURE() << "job " << id << " did not finish";
  return job;
}

// Polls GetJob until `reached(job)` holds and returns that job. Fails the
// test if the job stops first (paused or ended) or after the timeout. Tests
// that pause or cancel a job mid-run give it far more steps than they let
// it take, so it is still running whenever the pause or cancel lands.
template <typename Pred>
v1::Job WaitUntil(Client& c, const std::string& id, Pred reached,
                  int timeout_seconds = 120) {
  v1::Job job;
  const auto end = Deadline(timeout_seconds);
  while (std::chrono::system_clock::now() < end) {
    job = GetJob(c, id);
    if (reached(job)) return job;
    if (job.state() != v1::JOB_STATE_QUEUED &&
        job.state() != v1::JOB_STATE_RUNNING) {
      ADD_FAILURE() << "job " << id << " stopped before the test expected: "
                    << job.DebugString();
      return job;
    }
    usleep(1000);
  }
  ADD_FAILURE() << "job " << id << " timed out: " << job.DebugString();
  return job;
}

// Waits until job `id` has trained past `step`.
inline v1::Job WaitForStep(Client& c, const std::string& id, int64_t step) {
  return WaitUntil(c, id,
                   [step](const v1::Job& j) { return j.step() >= step; });
}

// CancelJob, then waits for the job to end; expects it CANCELLED.
inline v1::Job Cancel(Client& c, const std::string& id) {
  v1::CancelJobRequest req;
  req.set_job_id(id);
  v1::Job job;
  auto ctx = Ctx();
  grpc::Status s = c.training->CancelJob(ctx.get(), req, &job);
  EXPECT_TRUE(s.ok()) << s.error_message();
  job = WaitForJob(c, id);
  EXPECT_EQ(job.state(), v1::JOB_STATE_CANCELLED) << job.DebugString();
  return job;
}

// Reads a job's whole metric stream.
inline std::vector<v1::MetricEvent> ReadStream(
    Client& c, const v1::StreamMetricsRequest& req, grpc::Status* status,
    int delay_us = 0) {
  std::vector<v1::MetricEvent> events;
  auto ctx = Ctx(300);
  auto reader = c.training->StreamMetrics(ctx.get(), req);
  v1::MetricEvent e;
  while (reader->Read(&e)) {
    events.push_back(e);
    if (delay_us > 0) usleep(delay_us);
  }
  *status = reader->Finish();
  return events;
}

}  // namespace nnlab::testing

#endif  // NNLAB_TESTS_SERVER_SERVER_TEST_UTIL_H_
