// nnlabd: the nnlab training server. With no flags it serves plaintext on
// 127.0.0.1:50051 with its data under ./nnlab-data and the built-in data
// sets; SIGTERM or SIGINT stop it gracefully (exit 0).
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/data/dataset.h"
#include "server/log.h"
#include "server/server.h"
#include "server/storage.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "HOST:PORT to serve on (port 0 picks a free port)");
ABSL_FLAG(std::string, data_dir, "./nnlab-data",
          "Directory for models, jobs, checkpoints and uploads");
ABSL_FLAG(std::string, datasets_dir, "",
          "Directory with the built-in data sets (default: $NNLAB_DATASETS_DIR "
          "or the build's data/)");
ABSL_FLAG(int, max_jobs, 1, "Training jobs running at once");
ABSL_FLAG(int, max_queued_jobs, 16, "Queued jobs beyond which StartJob fails");
ABSL_FLAG(int, worker_threads, 64, "gRPC handler threads");
ABSL_FLAG(
    int, blas_threads, 0,
    "OpenBLAS threads (0: cores / max_jobs, so jobs do not oversubscribe)");
ABSL_FLAG(int64_t, max_params, 50000000, "Parameters per model");
ABSL_FLAG(int, max_models, 1000, "Models the server holds");
ABSL_FLAG(int64_t, max_upload_bytes, int64_t{256} << 20, "Bytes per upload");
ABSL_FLAG(int64_t, max_message_bytes, int64_t{64} << 20,
          "Largest gRPC message either way");
ABSL_FLAG(std::string, token_file, "",
          "File holding the bearer token every RPC but health must carry");
ABSL_FLAG(std::string, tls_cert, "", "Server certificate chain (PEM file)");
ABSL_FLAG(std::string, tls_key, "", "Server private key (PEM file)");
ABSL_FLAG(std::string, tls_client_ca, "",
          "CA bundle (PEM file) for mutual TLS: clients must present a "
          "certificate it signed");
ABSL_FLAG(std::string, http_listen, "",
          "HOST:PORT for the dashboard, /metrics and /healthz (off when "
          "empty; TLS and the token as for gRPC)");
ABSL_FLAG(std::string, join, "",
          "Join the cluster of the nnlabd at HOST:PORT as a worker (with "
          "--token_file's token; TLS with --cluster_tls_ca)");
ABSL_FLAG(std::string, cluster_tls_ca, "",
          "CA (PEM file) of the cluster members' server certificates: calls "
          "to other members (joining, replicas) go over TLS, presenting "
          "--tls_cert/--tls_key as the client certificate (mutual TLS)");
ABSL_FLAG(std::string, join_tls_ca, "", "Old name of --cluster_tls_ca");
ABSL_FLAG(std::string, advertise, "",
          "gRPC HOST:PORT other members reach this one at (default: the "
          "--listen host with the bound port)");
ABSL_FLAG(std::string, collective_listen, "127.0.0.1",
          "Numeric interface address Gloo's TCP transport binds to: a "
          "private interface (the data plane is unauthenticated and "
          "unencrypted)");
ABSL_FLAG(bool, allow_wildcard_collective, false,
          "Allow --collective_listen to be a wildcard (0.0.0.0, ::)");
ABSL_FLAG(int64_t, collective_timeout_ms, 30000,
          "Bound on every Gloo connect and receive: a dead or cut-off "
          "replica fails the job within it");
ABSL_FLAG(int64_t, heartbeat_ms, 1000,
          "Worker heartbeat interval; 3 missed beats and a member is gone");
ABSL_FLAG(bool, reflection, false,
          "Enable gRPC server reflection (unauthenticated, so refused "
          "together with --token_file)");

namespace {

// SIGTERM and SIGINT write their number here; main() waits on the read end.
// A handler rather than sigwait with the signals blocked: threads that
// libraries start before main() (OpenBLAS's pool) do not block them, and
// the kernel may deliver a process's signal to any such thread, where the
// default action would kill the server without its graceful shutdown.
int g_signal_pipe[2] = {-1, -1};

void OnStopSignal(int sig) {
  const int saved = errno;
  const char byte = static_cast<char>(sig);
  (void)!write(g_signal_pipe[1], &byte, 1);  // Async-signal-safe.
  errno = saved;
}

// Blocks until a stop signal arrives; returns its number.
int AwaitStopSignal() {
  char byte = 0;
  while (read(g_signal_pipe[0], &byte, 1) != 1) {
    if (errno != EINTR) return 0;
  }
  return byte;
}

std::string ReadOrDie(const std::string& path, const char* what) {
  if (path.empty()) return "";
  absl::StatusOr<std::string> s = nnlab::server::ReadFile(path);
  if (!s.ok()) {
    std::fprintf(stderr, "nnlabd: cannot read %s: %s\n", what,
                 s.status().ToString().c_str());
    std::exit(2);
  }
  return *s;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("nnlab training server");
  absl::ParseCommandLine(argc, argv);
  // Debian's Abseil checks every Mutex acquisition for lock-order cycles
  // (a graph update per lock, gRPC's own locks included): a debugging aid
  // the tests keep, which the server's hot paths do not need.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  if (pipe(g_signal_pipe) != 0) {
    std::perror("nnlabd: pipe");
    return 1;
  }
  struct sigaction stop = {};
  stop.sa_handler = OnStopSignal;
  sigemptyset(&stop.sa_mask);
  stop.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &stop, nullptr);
  sigaction(SIGINT, &stop, nullptr);
  signal(SIGPIPE, SIG_IGN);

  nnlab::server::ServerOptions o;
  o.listen = absl::GetFlag(FLAGS_listen);
  o.data_dir = absl::GetFlag(FLAGS_data_dir);
  o.datasets_dir = absl::GetFlag(FLAGS_datasets_dir);
  o.max_jobs = absl::GetFlag(FLAGS_max_jobs);
  o.max_queued_jobs = absl::GetFlag(FLAGS_max_queued_jobs);
  o.worker_threads = absl::GetFlag(FLAGS_worker_threads);
  o.blas_threads = absl::GetFlag(FLAGS_blas_threads);
  if (o.blas_threads <= 0) {
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    o.blas_threads = std::max(1, cores / std::max(1, o.max_jobs));
  }
  o.limits.max_params = absl::GetFlag(FLAGS_max_params);
  o.max_models = absl::GetFlag(FLAGS_max_models);
  o.max_upload_bytes = absl::GetFlag(FLAGS_max_upload_bytes);
  o.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  o.token = std::string(absl::StripAsciiWhitespace(
      ReadOrDie(absl::GetFlag(FLAGS_token_file), "--token_file")));
  if (!absl::GetFlag(FLAGS_token_file).empty() && o.token.empty()) {
    std::fprintf(stderr, "nnlabd: --token_file is empty\n");
    return 2;
  }
  o.tls_cert_pem = ReadOrDie(absl::GetFlag(FLAGS_tls_cert), "--tls_cert");
  o.tls_key_pem = ReadOrDie(absl::GetFlag(FLAGS_tls_key), "--tls_key");
  o.tls_client_ca_pem =
      ReadOrDie(absl::GetFlag(FLAGS_tls_client_ca), "--tls_client_ca");
  o.reflection = absl::GetFlag(FLAGS_reflection);
  o.http_listen = absl::GetFlag(FLAGS_http_listen);
  o.cluster.join = absl::GetFlag(FLAGS_join);
  o.cluster.tls_ca_pem =
      absl::GetFlag(FLAGS_cluster_tls_ca).empty()
          ? ReadOrDie(absl::GetFlag(FLAGS_join_tls_ca), "--join_tls_ca")
          : ReadOrDie(absl::GetFlag(FLAGS_cluster_tls_ca), "--cluster_tls_ca");
  o.cluster.tls_cert_pem = o.tls_cert_pem;
  o.cluster.tls_key_pem = o.tls_key_pem;
  o.cluster.advertise = absl::GetFlag(FLAGS_advertise);
  o.cluster.collective_listen = absl::GetFlag(FLAGS_collective_listen);
  o.cluster.allow_wildcard_collective =
      absl::GetFlag(FLAGS_allow_wildcard_collective);
  o.cluster.collective_timeout =
      absl::Milliseconds(absl::GetFlag(FLAGS_collective_timeout_ms));
  o.cluster.heartbeat_interval =
      absl::Milliseconds(absl::GetFlag(FLAGS_heartbeat_ms));

  auto server = nnlab::server::NnlabServer::Start(o);
  if (!server.ok()) {
    std::fprintf(stderr, "nnlabd: %s\n", server.status().ToString().c_str());
    return 1;
  }
  // Scripts read the bound port from this line.
  std::printf("nnlabd listening on port %d\n", (*server)->port());
  if ((*server)->http_port() != 0) {
    std::printf("nnlabd http on port %d\n", (*server)->http_port());
  }
  std::fflush(stdout);

  const int sig = AwaitStopSignal();
  nnlab::server::LogInfo(absl::StrCat("received signal ", sig));
  (*server)->Shutdown(absl::Seconds(5));
  return 0;
}
