// nnlabd as a library: builds the registries, the job manager and the gRPC
// server from options, and shuts them down gracefully. main.cc maps flags
// onto ServerOptions; tests start servers in-process on port 0.
#ifndef NNLAB_SERVER_SERVER_H_
#define NNLAB_SERVER_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/cluster/cluster_node.h"
#include "server/convert.h"

namespace nnlab::server {

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";  // Port 0 picks a free port.
  std::string data_dir = "./nnlab-data";
  std::string datasets_dir;  // Built-in data sets; empty: core default.
  int max_jobs = 1;          // Concurrent training jobs.
  int max_queued_jobs = 16;
  int worker_threads = 64;  // gRPC handler threads.
  int blas_threads = 1;     // OpenBLAS threads (per process).
  int max_models = 1000;
  int64_t max_upload_bytes = int64_t{256} << 20;
  int64_t max_message_bytes = int64_t{64} << 20;
  Limits limits;
  std::string token;         // Bearer token; empty disables auth.
  std::string tls_cert_pem;  // Server certificate chain (PEM); empty: plain.
  std::string tls_key_pem;
  std::string tls_client_ca_pem;  // Set: require client certificates.
  // gRPC server reflection; refused together with a token (reflection
  // would answer without one).
  bool reflection = false;
  // HTTP/2 keepalive. The server pings a quiet connection every
  // keepalive_time and closes it if no ack comes within keepalive_timeout
  // (dead peers behind idle streams). Clients may ping, with or without
  // calls, at most every min_client_ping_interval; after max_ping_strikes
  // pings that come sooner the connection gets GOAWAY ENHANCE_YOUR_CALM.
  absl::Duration keepalive_time = absl::Seconds(30);
  absl::Duration keepalive_timeout = absl::Seconds(10);
  absl::Duration min_client_ping_interval = absl::Seconds(10);
  int max_ping_strikes = 2;
  absl::Duration publish_interval = absl::Milliseconds(100);
  // Steps of TrainStep / TrainStream reach the model file at most this long
  // after they were acknowledged (server/train_session.h).
  absl::Duration train_persist_interval = absl::Seconds(2);
  int64_t watcher_buffer = 1024;
  // HTTP port for the dashboard, /metrics and /healthz (server/http/
  // http_server.h), "HOST:PORT"; empty: none. TLS and the token as for gRPC.
  std::string http_listen;
  int http_threads = 96;
  // Cluster membership and the Gloo transport (server/cluster/).
  ClusterOptions cluster;
};

class NnlabServer {
 public:
  // Loads the data directory (cleaning temp files, re-queueing interrupted
  // jobs) and starts serving. Errors: the directory or the port.
  static absl::StatusOr<std::unique_ptr<NnlabServer>> Start(
      const ServerOptions& options);
  ~NnlabServer();

  // The port actually bound.
  int port() const;
  // The HTTP port actually bound; 0 without one.
  int http_port() const;
  // Graceful stop: health NOT_SERVING, running jobs checkpoint and stop,
  // streams end with UNAVAILABLE, in-flight calls get `grace` to finish.
  // Idempotent.
  void Shutdown(absl::Duration grace = absl::Seconds(5));
  // Blocks until Shutdown completes.
  void Wait();
  // StreamMetrics calls open right now, each holding a watcher on its job
  // (for tests and monitoring).
  int open_metric_streams() const;

 private:
  struct Impl;
  explicit NnlabServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_SERVER_H_
