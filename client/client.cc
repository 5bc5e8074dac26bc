#include "client/client.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"
#include "nnlab/v1/dataset.grpc.pb.h"

namespace nnlab {
namespace {

// gRPC and absl status codes are the same numbers with the same names.
absl::Status ToAbsl(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      s.error_message());
}

absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", what, " ", path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Unary call through a generated stub method: context with token and
// deadline, status converted.
template <typename Stub, typename Req, typename Resp>
absl::StatusOr<Resp> Unary(const Client& client, Stub* stub,
                           grpc::Status (Stub::*method)(grpc::ClientContext*,
                                                        const Req&, Resp*),
                           const Req& req) {
  grpc::ClientContext ctx;
  client.PrepareContext(&ctx, /*deadline=*/true);
  Resp resp;
  grpc::Status s = (stub->*method)(&ctx, req, &resp);
  if (!s.ok()) return ToAbsl(s);
  return resp;
}

bool Retryable(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::CANCELLED:
      return true;
    default:
      return false;
  }
}

}  // namespace

const char* HealthStatusName(HealthStatus s) {
  switch (s) {
    case HealthStatus::kServing:
      return "SERVING";
    case HealthStatus::kNotServing:
      return "NOT_SERVING";
    case HealthStatus::kServiceUnknown:
      return "SERVICE_UNKNOWN";
    case HealthStatus::kUnknown:
      break;
  }
  return "UNKNOWN";
}

absl::StatusOr<std::unique_ptr<Client>> Client::Create(ClientOptions options) {
  if (options.server.empty()) {
    return absl::InvalidArgumentError("server address is empty");
  }
  std::shared_ptr<grpc::ChannelCredentials> creds;
  grpc::ChannelArguments args;
  // Model files and large batches exceed gRPC's 4 MiB default.
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(256 << 20);
  // Keepalive within nnlabd's policy (clients may ping every 10 s): a
  // quiet metrics stream notices a dead server or a dropped connection
  // within 40 s instead of hanging until its deadline.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  if (options.tls) {
    grpc::SslCredentialsOptions ssl;
    if (!options.tls_ca_file.empty()) {
      auto ca = ReadFile(options.tls_ca_file, "TLS CA file");
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = *std::move(ca);
    }
    if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
      return absl::InvalidArgumentError(
          "TLS client certificate and key must be given together");
    }
    if (!options.tls_cert_file.empty()) {
      auto cert = ReadFile(options.tls_cert_file, "TLS certificate");
      if (!cert.ok()) return cert.status();
      auto key = ReadFile(options.tls_key_file, "TLS key");
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *std::move(cert);
      ssl.pem_private_key = *std::move(key);
    }
    if (!options.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls_server_name);
    }
    creds = grpc::SslCredentials(ssl);
  } else {
    if (!options.tls_ca_file.empty() || !options.tls_cert_file.empty() ||
        !options.tls_key_file.empty() || !options.tls_server_name.empty()) {
      return absl::InvalidArgumentError("TLS files given without --tls");
    }
    creds = grpc::InsecureChannelCredentials();
  }
  auto channel = grpc::CreateCustomChannel(options.server, creds, args);
  return std::unique_ptr<Client>(new Client(std::move(options), channel));
}

Client::Client(ClientOptions options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      models_(v1::ModelService::NewStub(channel_)),
      training_(v1::TrainingService::NewStub(channel_)),
      inference_(v1::InferenceService::NewStub(channel_)) {}

Client::~Client() = default;

void Client::PrepareContext(grpc::ClientContext* ctx, bool deadline) const {
  if (!options_.token.empty()) {
    ctx->AddMetadata("authorization", "Bearer " + options_.token);
  }
  if (deadline) {
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + options_.deadline));
  }
}

absl::StatusOr<HealthStatus> Client::Health(const std::string& service) {
  // grpc.health.v1 ships no C++ stubs in Debian: the two one-field messages
  // are encoded with protobuf's wire-format streams and sent generically.
  std::string req_bytes;
  {
    google::protobuf::io::StringOutputStream raw(&req_bytes);
    google::protobuf::io::CodedOutputStream out(&raw);
    if (!service.empty()) {
      out.WriteTag(10);  // field 1, length-delimited
      out.WriteVarint32(static_cast<uint32_t>(service.size()));
      out.WriteString(service);
    }
  }
  grpc::Slice slice(req_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;

  grpc::ClientContext ctx;
  PrepareContext(&ctx, /*deadline=*/true);
  grpc::CompletionQueue cq;
  grpc::GenericStub stub(channel_);
  auto call =
      stub.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check", request, &cq);
  call->StartCall();
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (!status.ok()) return ToAbsl(status);

  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) {
    return absl::InternalError("health: unreadable response");
  }
  std::string resp_bytes;
  for (const auto& s : slices) {
    resp_bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(resp_bytes.data()),
      static_cast<int>(resp_bytes.size()));
  uint32_t value = 0;  // proto3 default: UNKNOWN
  while (uint32_t tag_num = in.ReadTag()) {
    if (tag_num == 8) {  // field 1, varint
      if (!in.ReadVarint32(&value)) break;
    } else if (!google::protobuf::internal::WireFormatLite::SkipField(
                   &in, tag_num)) {
      return absl::InternalError("health: malformed response");
    }
  }
  switch (value) {
    case 1:
      return HealthStatus::kServing;
    case 2:
      return HealthStatus::kNotServing;
    case 3:
      return HealthStatus::kServiceUnknown;
    default:
      return HealthStatus::kUnknown;
  }
}

absl::StatusOr<v1::Model> Client::CreateModel(
    const v1::CreateModelRequest& req) {
  return Unary(*this, models_.get(), &v1::ModelService::Stub::CreateModel, req);
}

absl::StatusOr<v1::Model> Client::GetModel(const std::string& model_id) {
  v1::GetModelRequest req;
  req.set_model_id(model_id);
  return Unary(*this, models_.get(), &v1::ModelService::Stub::GetModel, req);
}

absl::StatusOr<std::vector<v1::Model>> Client::ListModels() {
  std::vector<v1::Model> models;
  v1::ListModelsRequest req;
  do {
    auto page =
        Unary(*this, models_.get(), &v1::ModelService::Stub::ListModels, req);
    if (!page.ok()) return page.status();
    for (auto& m : *page->mutable_models()) models.push_back(std::move(m));
    req.set_page_token(page->next_page_token());
  } while (!req.page_token().empty());
  return models;
}

absl::Status Client::DeleteModel(const std::string& model_id) {
  v1::DeleteModelRequest req;
  req.set_model_id(model_id);
  return Unary(*this, models_.get(), &v1::ModelService::Stub::DeleteModel, req)
      .status();
}

absl::StatusOr<v1::ModelFile> Client::ExportModel(const std::string& model_id) {
  v1::ExportModelRequest req;
  req.set_model_id(model_id);
  auto resp =
      Unary(*this, models_.get(), &v1::ModelService::Stub::ExportModel, req);
  if (!resp.ok()) return resp.status();
  return std::move(*resp->mutable_file());
}

absl::StatusOr<std::string> Client::ExportOnnx(const std::string& model_id) {
  v1::ExportModelRequest req;
  req.set_model_id(model_id);
  req.set_format(v1::EXPORT_FORMAT_ONNX);
  auto resp =
      Unary(*this, models_.get(), &v1::ModelService::Stub::ExportModel, req);
  if (!resp.ok()) return resp.status();
  return std::move(*resp->mutable_onnx_model());
}

absl::StatusOr<v1::Model> Client::ImportModel(const std::string& model_id,
                                              const v1::ModelFile& file) {
  v1::ImportModelRequest req;
  req.set_model_id(model_id);
  *req.mutable_file() = file;
  return Unary(*this, models_.get(), &v1::ModelService::Stub::ImportModel, req);
}

absl::StatusOr<v1::Job> Client::StartJob(const v1::JobSpec& spec) {
  v1::StartJobRequest req;
  *req.mutable_spec() = spec;
  return Unary(*this, training_.get(), &v1::TrainingService::Stub::StartJob,
               req);
}

absl::StatusOr<v1::Job> Client::GetJob(const std::string& job_id) {
  v1::GetJobRequest req;
  req.set_job_id(job_id);
  return Unary(*this, training_.get(), &v1::TrainingService::Stub::GetJob, req);
}

absl::StatusOr<std::vector<v1::Job>> Client::ListJobs(
    const v1::ListJobsRequest& req) {
  auto resp =
      Unary(*this, training_.get(), &v1::TrainingService::Stub::ListJobs, req);
  if (!resp.ok()) return resp.status();
  return std::vector<v1::Job>(resp->jobs().begin(), resp->jobs().end());
}

absl::StatusOr<v1::Job> Client::CancelJob(const std::string& job_id) {
  v1::CancelJobRequest req;
  req.set_job_id(job_id);
  return Unary(*this, training_.get(), &v1::TrainingService::Stub::CancelJob,
               req);
}

absl::StatusOr<v1::Job> Client::PauseJob(const std::string& job_id) {
  v1::PauseJobRequest req;
  req.set_job_id(job_id);
  return Unary(*this, training_.get(), &v1::TrainingService::Stub::PauseJob,
               req);
}

absl::StatusOr<v1::Job> Client::ResumeJob(const std::string& job_id) {
  v1::ResumeJobRequest req;
  req.set_job_id(job_id);
  return Unary(*this, training_.get(), &v1::TrainingService::Stub::ResumeJob,
               req);
}

absl::Status Client::WatchMetrics(const v1::StreamMetricsRequest& request,
                                  const MetricCallback& on_event,
                                  const ReconnectCallback& on_reconnect) {
  v1::StreamMetricsRequest req = request;
  int64_t last_sequence = -1;
  int failures = 0;
  absl::Duration backoff = options_.reconnect_backoff;
  for (;;) {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, /*deadline=*/false);
    auto reader = training_->StreamMetrics(&ctx, req);
    v1::MetricEvent event;
    bool stopped = false;
    while (reader->Read(&event)) {
      failures = 0;
      backoff = options_.reconnect_backoff;
      // A replay after a reconnect repeats what was already delivered: the
      // events of the last step seen and the job's state changes (the
      // server replays every state change, whatever from_step says). Skip
      // them; new events have a larger sequence number or a later step (a
      // server that restarted from an older checkpoint numbers events
      // anew, and the steps past the last one seen still come through).
      if (event.sequence() <= last_sequence &&
          event.step() <= req.from_step()) {
        continue;
      }
      last_sequence = std::max(last_sequence, event.sequence());
      if (event.step() > req.from_step()) req.set_from_step(event.step());
      if (!on_event(event)) {
        stopped = true;
        ctx.TryCancel();
        break;
      }
    }
    grpc::Status s = reader->Finish();
    if (stopped) return absl::OkStatus();
    if (s.ok()) return absl::OkStatus();
    // Only a stream that delivered events before is "broken"; a first
    // attempt that fails (no server, no such job) is reported at once.
    if (last_sequence < 0 || !Retryable(s) ||
        ++failures > options_.max_reconnects) {
      return ToAbsl(s);
    }
    if (on_reconnect) on_reconnect(ToAbsl(s), req.from_step());
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff));
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

absl::StatusOr<v1::TrainStepResponse> Client::TrainStep(
    const v1::TrainStepRequest& req) {
  return Unary(*this, training_.get(), &v1::TrainingService::Stub::TrainStep,
               req);
}

absl::StatusOr<v1::DatasetInfo> Client::UploadDataset(
    v1::DatasetHeader header, const std::string& payload, size_t chunk_bytes) {
  if (chunk_bytes == 0) chunk_bytes = 1 << 20;
  if (header.crc32c() == 0) {
    header.set_crc32c(Crc32c(payload.data(), payload.size()));
  }
  grpc::ClientContext ctx;
  PrepareContext(&ctx, /*deadline=*/true);
  v1::DatasetInfo info;
  // DatasetService; TrainingService's copy is deprecated. (A stub is cheap:
  // it shares the channel.)
  auto datasets = v1::DatasetService::NewStub(channel_);
  auto writer = datasets->UploadDataset(&ctx, &info);
  v1::UploadDatasetRequest msg;
  *msg.mutable_header() = header;
  bool ok = writer->Write(msg);
  for (size_t pos = 0; ok && pos < payload.size(); pos += chunk_bytes) {
    msg.set_chunk(payload.substr(pos, chunk_bytes));
    ok = writer->Write(msg);
  }
  // A failed write means the server already ended the call; Finish says why.
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  if (!s.ok()) return ToAbsl(s);
  return info;
}

absl::StatusOr<std::vector<v1::DatasetInfo>> Client::ListDatasets() {
  auto datasets = v1::DatasetService::NewStub(channel_);
  auto resp =
      Unary(*this, datasets.get(), &v1::DatasetService::Stub::ListDatasets,
            v1::ListDatasetsRequest());
  if (!resp.ok()) return resp.status();
  return std::vector<v1::DatasetInfo>(resp->datasets().begin(),
                                      resp->datasets().end());
}

absl::Status Client::DeleteDataset(const std::string& dataset_id) {
  v1::DeleteDatasetRequest req;
  req.set_dataset_id(dataset_id);
  auto datasets = v1::DatasetService::NewStub(channel_);
  return Unary(*this, datasets.get(), &v1::DatasetService::Stub::DeleteDataset,
               req)
      .status();
}

absl::StatusOr<v1::EvaluateResponse> Client::Evaluate(
    const v1::EvaluateRequest& req) {
  return Unary(*this, training_.get(), &v1::TrainingService::Stub::Evaluate,
               req);
}

absl::StatusOr<v1::InferResponse> Client::Infer(const v1::InferRequest& req) {
  return Unary(*this, inference_.get(), &v1::InferenceService::Stub::Infer,
               req);
}

absl::StatusOr<v1::SampleResponse> Client::Sample(
    const v1::SampleRequest& req) {
  return Unary(*this, inference_.get(), &v1::InferenceService::Stub::Sample,
               req);
}

absl::StatusOr<v1::SampleTextResponse> Client::SampleText(
    const v1::SampleTextRequest& req) {
  return Unary(*this, inference_.get(), &v1::InferenceService::Stub::SampleText,
               req);
}

uint32_t Crc32c(const void* data, size_t n, uint32_t crc) {
  // Reflected CRC-32C, polynomial 0x82F63B78, one table lookup per byte.
  static const auto* table = [] {
    auto* t = new uint32_t[256];
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ ((c & 1) ? 0x82F63B78u : 0);
      t[i] = c;
    }
    return t;
  }();
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

}  // namespace nnlab
