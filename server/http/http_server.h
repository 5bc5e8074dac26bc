// nnlabd's HTTP port (optional, --http_listen): the dashboard (static files
// compiled into the binary, server/http/web/), a JSON and Server-Sent
// Events API the dashboard reads, Prometheus /metrics and /healthz. It runs
// on cpp-httplib's own thread pool and reuses the gRPC services' objects in
// process: the same JobManager (jobs, pause / resume / cancel), the same
// watchers StreamMetrics reads (a slow browser lags in its watcher exactly
// as a slow gRPC client does, and never slows training), the same token.
//
// Routes (every one but /healthz and POST /login needs the token when one is
// configured: "Authorization: Bearer <token>", or the HttpOnly session
// cookie that POST /login sets in exchange for the token):
//   GET  /healthz                   "ok" (200), 503 while shutting down
//   GET  /metrics                   Prometheus text format 0.0.4
//   GET  /  /static/<file>          the dashboard (compiled-in files only)
//   POST /login  /logout            form field "token"; cookie set / cleared
//   GET  /api/jobs                  {"jobs": [Job...]} (proto3 JSON)
//   GET  /api/jobs/<id>/events      text/event-stream of MetricEvent JSON,
//                                   id = step; resumes at Last-Event-ID (or
//                                   ?from_step=); "event: end" when it ends
//   POST /api/jobs/<id>/{pause,resume,cancel}   the Job afterwards
//   GET  /api/sweeps  /api/sweeps/<id>  /api/sweeps/<id>/curves?layer=NAME
//                                   sweeps, ranked trials and their curves
//                                   for overlays (sweep_routes.h)
// Cookie-authenticated POSTs must carry "X-Nnlab-Request: 1" (a cross-site
// page cannot set it without a CORS preflight, which is never granted).
//
// Errors are JSON {"error": ...} with the status the gRPC side would give,
// mapped to HTTP (400, 401, 404, 409, 413, 414, 429, 503). Thread-safe.
#ifndef NNLAB_SERVER_HTTP_HTTP_SERVER_H_
#define NNLAB_SERVER_HTTP_HTTP_SERVER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/services.h"
#include "server/sweeps.h"
#include "server/telemetry.h"

namespace nnlab::server {

struct HttpOptions {
  std::string listen;    // HOST:PORT; port 0 picks a free port.
  int threads = 96;      // Connections served at once (each SSE holds one).
  int max_streams = 80;  // Event streams at once; more get 503.
  size_t max_body_bytes = 64 << 10;  // Larger request bodies get 413.
  std::string tls_cert_pem;          // Both set: HTTPS, like the gRPC port.
  std::string tls_key_pem;
};

class HttpServer {
 public:
  // What /metrics reads besides the job manager.
  struct Sources {
    const RpcStats* rpc = nullptr;
    std::function<int()> grpc_streams;  // Open StreamMetrics calls.
    // The sweep routes' source; null: they answer 404.
    const SweepManager* sweeps = nullptr;
  };

  // Binds and starts serving. `context` (jobs, token, shutting_down) must
  // outlive the server. InvalidArgument for a bad address or TLS material,
  // Unavailable if the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const HttpOptions& options, const ServiceContext* context,
      Sources sources);
  ~HttpServer();  // Shutdown().

  int port() const;
  bool tls() const;
  // Ends event streams, stops listening and joins the threads. Idempotent.
  void Shutdown();

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_HTTP_HTTP_SERVER_H_
