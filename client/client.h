// nnlab::Client: the C++ client of an nnlabd server. One typed method per
// RPC of nnlab.v1 (ModelService, TrainingService, InferenceService) plus the
// standard grpc.health.v1 check, each returning absl::Status(Or) with the
// server's status code and message carried over unchanged.
//
// Every unary call gets the default deadline (ClientOptions::deadline);
// streams have none but can be stopped by their callbacks. A token, when
// set, travels as `authorization: Bearer <token>` metadata on every call
// (plaintext and TLS alike).
//
// Thread safety: a Client is thread-safe; calls may run concurrently from
// many threads (the underlying grpc::Channel is).
#ifndef NNLAB_CLIENT_CLIENT_H_
#define NNLAB_CLIENT_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nnlab/v1/dataset.pb.h"
#include "nnlab/v1/inference.grpc.pb.h"
#include "nnlab/v1/model.grpc.pb.h"
#include "nnlab/v1/training.grpc.pb.h"

namespace grpc {
class Channel;
class ClientContext;
}  // namespace grpc

namespace nnlab {

struct ClientOptions {
  // HOST:PORT (or any gRPC target, e.g. "unix:/path").
  std::string server = "127.0.0.1:50051";
  // Bearer token; empty sends none.
  std::string token;
  // TLS: use a secure channel. With no CA file the system roots verify the
  // server.
  bool tls = false;
  // PEM file with the root certificates that verify the server.
  std::string tls_ca_file;
  // PEM client certificate and key (mutual TLS); both or neither.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Overrides the name the server certificate is checked against.
  std::string tls_server_name;
  // Deadline of every unary call (and of each upload).
  absl::Duration deadline = absl::Seconds(30);
  // Metric streams: reconnect attempts after a broken stream before giving
  // up (reset whenever an event arrives), and the wait before the first
  // retry (doubling up to 5 s).
  int max_reconnects = 8;
  absl::Duration reconnect_backoff = absl::Milliseconds(200);
};

// Serving status of a grpc.health.v1 check.
enum class HealthStatus { kUnknown, kServing, kNotServing, kServiceUnknown };
const char* HealthStatusName(HealthStatus s);

// Per-event callback of WatchMetrics: return false to stop watching (the
// watch then ends with an OK status).
using MetricCallback = std::function<bool(const v1::MetricEvent&)>;
// Called before each reconnect attempt with the broken stream's status and
// the step the stream resumes from.
using ReconnectCallback =
    std::function<void(const absl::Status& why, int64_t from_step)>;

class Client {
 public:
  // Builds the channel (no connection is made until the first call).
  // InvalidArgument for unreadable TLS files or a half-given client key pair.
  static absl::StatusOr<std::unique_ptr<Client>> Create(ClientOptions options);

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client();

  const ClientOptions& options() const { return options_; }

  // grpc.health.v1.Health/Check of `service` ("" = the whole server).
  absl::StatusOr<HealthStatus> Health(const std::string& service = "");

  // ModelService.
  absl::StatusOr<v1::Model> CreateModel(const v1::CreateModelRequest& req);
  absl::StatusOr<v1::Model> GetModel(const std::string& model_id);
  // All models, following page tokens until the last page.
  absl::StatusOr<std::vector<v1::Model>> ListModels();
  absl::Status DeleteModel(const std::string& model_id);
  absl::StatusOr<v1::ModelFile> ExportModel(const std::string& model_id);
  // The model as a serialized ONNX ModelProto (ExportFormat ONNX).
  absl::StatusOr<std::string> ExportOnnx(const std::string& model_id);
  absl::StatusOr<v1::Model> ImportModel(const std::string& model_id,
                                        const v1::ModelFile& file);

  // TrainingService: jobs.
  absl::StatusOr<v1::Job> StartJob(const v1::JobSpec& spec);
  absl::StatusOr<v1::Job> GetJob(const std::string& job_id);
  absl::StatusOr<std::vector<v1::Job>> ListJobs(const v1::ListJobsRequest& req);
  absl::StatusOr<v1::Job> CancelJob(const std::string& job_id);
  absl::StatusOr<v1::Job> PauseJob(const std::string& job_id);
  absl::StatusOr<v1::Job> ResumeJob(const std::string& job_id);

  // Follows a job's metric stream, calling `on_event` for each event in
  // order, until the job ends (OK), the callback returns false (OK), or the
  // stream fails for good. A stream that breaks (UNAVAILABLE, INTERNAL,
  // UNKNOWN, ABORTED, or CANCELLED by the server) is reopened from the
  // last step seen; replayed events already delivered (sequence number and
  // step at or before the last seen) are not delivered again. A stream
  // whose first attempt fails is not retried. `on_reconnect` may be null.
  // REQUIRES: on_event is not null. Blocks the calling thread.
  absl::Status WatchMetrics(const v1::StreamMetricsRequest& req,
                            const MetricCallback& on_event,
                            const ReconnectCallback& on_reconnect = nullptr);

  // TrainingService: client-driven training and data sets.
  absl::StatusOr<v1::TrainStepResponse> TrainStep(
      const v1::TrainStepRequest& req);
  // Uploads `payload` (layout in DatasetHeader's comment) in chunks of
  // `chunk_bytes`; fills header.crc32c if it is 0.
  absl::StatusOr<v1::DatasetInfo> UploadDataset(v1::DatasetHeader header,
                                                const std::string& payload,
                                                size_t chunk_bytes = 1 << 20);
  absl::StatusOr<std::vector<v1::DatasetInfo>> ListDatasets();
  absl::Status DeleteDataset(const std::string& dataset_id);
  // The model's loss and accuracy over (part of) a split of a data set the
  // server holds, computed there as a job evaluates on its test split.
  absl::StatusOr<v1::EvaluateResponse> Evaluate(const v1::EvaluateRequest& req);

  // InferenceService.
  absl::StatusOr<v1::InferResponse> Infer(const v1::InferRequest& req);
  absl::StatusOr<v1::SampleResponse> Sample(const v1::SampleRequest& req);
  absl::StatusOr<v1::SampleTextResponse> SampleText(
      const v1::SampleTextRequest& req);

  // The channel, for callers that need a stub of their own (e.g. the
  // TrainStream bidirectional stream). Use PrepareContext on each call.
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  // Adds the token metadata and, if `deadline` is true, the default
  // deadline to a fresh context.
  void PrepareContext(grpc::ClientContext* ctx, bool deadline) const;

 private:
  Client(ClientOptions options, std::shared_ptr<grpc::Channel> channel);

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ModelService::Stub> models_;
  std::unique_ptr<v1::TrainingService::Stub> training_;
  std::unique_ptr<v1::InferenceService::Stub> inference_;
};

// CRC-32C (Castagnoli), as DatasetHeader.crc32c wants it.
uint32_t Crc32c(const void* data, size_t n, uint32_t crc = 0);

}  // namespace nnlab

#endif  // NNLAB_CLIENT_CLIENT_H_
