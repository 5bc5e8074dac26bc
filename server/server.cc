#include "server/server.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/data/dataset.h"
#include "core/kernels/blas.h"
#include "core/status_macros.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/impl/server_builder_option.h"
#include "grpcpp/impl/server_builder_plugin.h"
#include "grpcpp/security/server_credentials.h"
#include "server/cluster/cluster_node.h"
#include "server/datasets.h"
#include "server/http/http_server.h"
#include "server/jobs.h"
#include "server/log.h"
#include "server/models.h"
#include "server/rpc_metrics.h"
#include "server/services.h"
#include "server/storage.h"
#include "server/sweep_service.h"
#include "server/sweeps.h"

namespace nnlab::server {
namespace {

// Reflection is a process-wide ServerBuilder plugin in gRPC: once
// registered, every server built afterwards would get it. This option
// takes it out again for the servers that must not serve it.
class WithoutReflection : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>*
                         plugins) override {
    plugins->erase(
        std::remove_if(plugins->begin(), plugins->end(),
                       [](const std::unique_ptr<grpc::ServerBuilderPlugin>& p) {
                         return p->name() == "proto_server_reflection";
                       }),
        plugins->end());
  }
};

int Millis(absl::Duration d) {
  return static_cast<int>(
      std::min<int64_t>(absl::ToInt64Milliseconds(d), INT32_MAX));
}

// Threads for Infer calls that do not run on gRPC's own (services.h): one
// per hardware thread, within the handler-thread budget.
int InferWorkers(const ServerOptions& o) {
  const int hw = static_cast<int>(std::thread::hardware_concurrency());
  return std::clamp(hw, 2, std::max(2, o.worker_threads));
}

}  // namespace

struct NnlabServer::Impl {
  ServerOptions options;
  std::unique_ptr<ModelRegistry> models;
  std::unique_ptr<DatasetRegistry> datasets;
  std::unique_ptr<JobManager> jobs;
  ServiceContext context;
  std::unique_ptr<ModelServiceImpl> model_service;
  std::unique_ptr<TrainingServiceImpl> training_service;
  std::unique_ptr<InferenceServiceImpl> inference_service;
  std::unique_ptr<DatasetServiceImpl> dataset_service;
  std::unique_ptr<ClusterNode> cluster;  // Outlives `server`.
  // Before `jobs` in destruction order: its scheduler calls into `jobs`.
  std::unique_ptr<SweepManager> sweeps;
  std::unique_ptr<SweepServiceImpl> sweep_service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  RpcStats rpc_stats;  // Every gRPC call (rpc_metrics.h), for /metrics.
  std::unique_ptr<HttpServer> http;
  absl::Mutex mu;
  bool shut_down ABSL_GUARDED_BY(mu) = false;
};

NnlabServer::NnlabServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

NnlabServer::~NnlabServer() { Shutdown(absl::Seconds(1)); }

int NnlabServer::port() const { return impl_->port; }

int NnlabServer::http_port() const {
  return impl_->http != nullptr ? impl_->http->port() : 0;
}

absl::StatusOr<std::unique_ptr<NnlabServer>> NnlabServer::Start(
    const ServerOptions& o) {
  auto impl = std::make_unique<Impl>();
  impl->options = o;
  if (o.max_jobs < 1 || o.worker_threads < 4 || o.blas_threads < 1) {
    return absl::InvalidArgumentError(
        "max_jobs and blas_threads must be >= 1, worker_threads >= 4");
  }
  if (o.reflection && !o.token.empty()) {
    // Reflection is served by gRPC itself, outside the token check: it
    // would describe the whole API to anyone who connects.
    return absl::InvalidArgumentError(
        "server reflection cannot be combined with a token (it would answer "
        "unauthenticated); drop one of them and use the .proto files");
  }
  if (o.keepalive_time <= absl::ZeroDuration() ||
      o.keepalive_timeout <= absl::ZeroDuration() ||
      o.min_client_ping_interval < absl::ZeroDuration() ||
      o.max_ping_strikes < 0) {
    return absl::InvalidArgumentError(
        "keepalive time and timeout must be > 0, the ping interval and "
        "strikes >= 0");
  }
  SetBlasThreads(o.blas_threads);
  NNLAB_RETURN_IF_ERROR(MakeDirs(o.data_dir));
  impl->models = std::make_unique<ModelRegistry>(
      absl::StrCat(o.data_dir, "/models"), o.limits, o.max_models);
  NNLAB_RETURN_IF_ERROR(impl->models->Load());
  impl->datasets = std::make_unique<DatasetRegistry>(
      o.datasets_dir.empty() ? DefaultDatasetsDir() : o.datasets_dir,
      absl::StrCat(o.data_dir, "/datasets"), o.max_upload_bytes, o.limits);
  NNLAB_RETURN_IF_ERROR(impl->datasets->Load());
  NNLAB_ASSIGN_OR_RETURN(
      impl->cluster,
      ClusterNode::Create(o.cluster, &impl->context, o.max_jobs));
  JobManagerOptions jo;
  jo.dir = absl::StrCat(o.data_dir, "/jobs");
  jo.max_running = o.max_jobs;
  jo.max_queued = o.max_queued_jobs;
  jo.limits = o.limits;
  jo.publish_interval = o.publish_interval;
  jo.watcher_buffer = o.watcher_buffer;
  jo.cluster = impl->cluster.get();
  impl->jobs = std::make_unique<JobManager>(jo, impl->models.get(),
                                            impl->datasets.get());
  NNLAB_RETURN_IF_ERROR(impl->jobs->Start());

  impl->context.models = impl->models.get();
  impl->context.datasets = impl->datasets.get();
  impl->context.jobs = impl->jobs.get();
  impl->context.limits = o.limits;
  impl->context.token = o.token;
  impl->context.train_persist_interval = o.train_persist_interval;
  impl->model_service = std::make_unique<ModelServiceImpl>(&impl->context);
  impl->training_service =
      std::make_unique<TrainingServiceImpl>(&impl->context);
  impl->inference_service =
      std::make_unique<InferenceServiceImpl>(&impl->context, InferWorkers(o));
  impl->dataset_service = std::make_unique<DatasetServiceImpl>(&impl->context);
  impl->sweeps = std::make_unique<SweepManager>(
      SweepManagerOptions{absl::StrCat(o.data_dir, "/sweeps")},
      impl->models.get(), impl->jobs.get());
  NNLAB_RETURN_IF_ERROR(impl->sweeps->Start());
  impl->sweep_service =
      std::make_unique<SweepServiceImpl>(&impl->context, impl->sweeps.get());

  grpc::EnableDefaultHealthCheckService(true);
  // Registered before the builder exists (it collects plugins when
  // constructed); servers without reflection remove it again.
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  if (!o.reflection) {
    builder.SetOption(std::make_unique<WithoutReflection>());
  }
  // Keepalive: see ServerOptions. Pings without data are not capped, so
  // the server keeps probing a watcher whose stream is quiet (a paused or
  // queued job); a permitted client pinging at the agreed interval is never
  // punished, one pinging faster is sent GOAWAY.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             Millis(o.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             Millis(o.keepalive_timeout));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      Millis(o.min_client_ping_interval));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES,
                             o.max_ping_strikes);
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (!o.tls_cert_pem.empty() || !o.tls_key_pem.empty()) {
    if (o.tls_cert_pem.empty() || o.tls_key_pem.empty()) {
      return absl::InvalidArgumentError(
          "TLS needs both a certificate and a key");
    }
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({o.tls_key_pem, o.tls_cert_pem});
    if (!o.tls_client_ca_pem.empty()) {
      ssl.pem_root_certs = o.tls_client_ca_pem;
      ssl.client_certificate_request =
          GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    creds = grpc::SslServerCredentials(ssl);
  } else if (!o.tls_client_ca_pem.empty()) {
    return absl::InvalidArgumentError(
        "a client CA needs a TLS certificate and key");
  } else {
    creds = grpc::InsecureServerCredentials();
  }
  builder.AddListeningPort(o.listen, creds, &impl->port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(o.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(o.max_message_bytes));
  grpc::ResourceQuota quota("nnlabd");
  quota.SetMaxThreads(o.worker_threads);
  builder.SetResourceQuota(quota);
  {
    std::vector<
        std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(MakeRpcMetricsInterceptorFactory(&impl->rpc_stats));
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  builder.RegisterService(impl->model_service.get());
  builder.RegisterService(impl->training_service.get());
  builder.RegisterService(impl->inference_service.get());
  builder.RegisterService(impl->dataset_service.get());
  builder.RegisterService(impl->cluster->service());
  builder.RegisterService(impl->sweep_service.get());
  impl->server = builder.BuildAndStart();
  if (impl->server == nullptr || impl->port == 0) {
    impl->jobs->Shutdown();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", o.listen,
                     " (address in use, bad address, or bad TLS material)"));
  }
  if (absl::Status joined = impl->cluster->Start(o.listen, impl->port);
      !joined.ok()) {
    impl->jobs->Shutdown();
    impl->server->Shutdown(std::chrono::system_clock::now());
    return joined;
  }
  grpc::HealthCheckServiceInterface* health =
      impl->server->GetHealthCheckService();
  if (health != nullptr) {
    health->SetServingStatus(true);
    for (const char* name :
         {"nnlab.v1.ModelService", "nnlab.v1.TrainingService",
          "nnlab.v1.InferenceService", "nnlab.v1.DatasetService",
          "nnlab.v1.SweepService"}) {
      health->SetServingStatus(name, true);
    }
  }
  if (!o.http_listen.empty()) {
    HttpOptions ho;
    ho.listen = o.http_listen;
    ho.threads = o.http_threads;
    ho.max_streams = std::max(1, o.http_threads - 16);
    ho.tls_cert_pem = o.tls_cert_pem;
    ho.tls_key_pem = o.tls_key_pem;
    HttpServer::Sources sources;
    sources.rpc = &impl->rpc_stats;
    TrainingServiceImpl* training = impl->training_service.get();
    sources.grpc_streams = [training] { return training->open_streams(); };
    sources.sweeps = impl->sweeps.get();
    absl::StatusOr<std::unique_ptr<HttpServer>> http =
        HttpServer::Start(ho, &impl->context, std::move(sources));
    if (!http.ok()) {
      impl->server->Shutdown();
      impl->jobs->Shutdown();
      return http.status();
    }
    impl->http = std::move(*http);
  }
  LogInfo(absl::StrCat("nnlabd serving on port ", impl->port, " (",
                       o.tls_cert_pem.empty()        ? "plaintext"
                       : o.tls_client_ca_pem.empty() ? "TLS"
                                                     : "mutual TLS",
                       o.token.empty() ? ", no auth" : ", token auth",
                       "), data in ", o.data_dir));
  return std::unique_ptr<NnlabServer>(new NnlabServer(std::move(impl)));
}

void NnlabServer::Shutdown(absl::Duration grace) {
  {
    absl::MutexLock lock(&impl_->mu);
    if (impl_->shut_down) return;
    impl_->shut_down = true;
  }
  LogInfo("shutting down: health NOT_SERVING, checkpointing running jobs");
  if (auto* health = impl_->server->GetHealthCheckService()) health->Shutdown();
  impl_->context.shutting_down.store(true);
  // Its event streams end and /healthz stops answering before the jobs stop.
  if (impl_->http != nullptr) impl_->http->Shutdown();
  impl_->cluster->Shutdown();
  // Metric streams hold no handler thread, so nothing else would end them
  // before the grace period runs out.
  impl_->training_service->EndStreams();
  impl_->sweeps->Shutdown();  // First: it must not see jobs interrupted.
  impl_->jobs->Shutdown();
  impl_->server->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  impl_->models->FlushAll();
  LogInfo("shutdown complete");
}

int NnlabServer::open_metric_streams() const {
  return impl_->training_service->open_streams();
}

void NnlabServer::Wait() { impl_->server->Wait(); }

}  // namespace nnlab::server
