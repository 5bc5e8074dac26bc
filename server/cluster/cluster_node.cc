#include "server/cluster/cluster_node.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "core/status_macros.h"
#include "server/cluster/distributed.h"
#include "server/cluster/gloo_collective.h"
#include "server/cluster/remote_job.h"
#include "server/log.h"

namespace nnlab::server {
namespace {

v1::Member Self(const ClusterOptions& o) {
  v1::Member m;
  m.set_member_id("coordinator");
  m.set_collective_address(o.collective_listen);
  return m;
}

absl::Status FromGrpc(const grpc::Status& s, absl::string_view what) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, ": ", s.error_message()));
}

}  // namespace

ClusterNode::ClusterNode(const ClusterOptions& options, ServiceContext* context,
                         int max_concurrent_jobs)
    : options_(options),
      context_(context),
      max_concurrent_jobs_(max_concurrent_jobs),
      membership_(Self(options), options.heartbeat_interval),
      service_(context, &membership_, &store_) {
  service_.set_replica_runner([this](const v1::RunReplicaRequest& req,
                                     const std::function<bool()>& cancelled) {
    ++running_replicas_;
    absl::StatusOr<int64_t> step =
        RunReplica(req, this, context_->datasets, context_->limits, cancelled);
    --running_replicas_;
    return step;
  });
  service_.set_job_runner(
      [this](const v1::RunJobRequest& req,
             const std::function<bool(const v1::RunJobResponse&)>& write,
             const std::function<bool()>& cancelled) {
        ++running_replicas_;
        absl::Status s = ServeRunJob(req, context_->datasets, context_->limits,
                                     write, cancelled);
        --running_replicas_;
        return s;
      });
}

absl::StatusOr<std::unique_ptr<ClusterNode>> ClusterNode::Create(
    const ClusterOptions& options, ServiceContext* context,
    int max_concurrent_jobs) {
  absl::Status addr = CheckCollectiveAddress(options.collective_listen,
                                             options.allow_wildcard_collective);
  if (!addr.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--collective_listen: ", addr.message()));
  }
  if (options.heartbeat_interval <= absl::ZeroDuration() ||
      options.collective_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "heartbeat interval and collective timeout must be > 0");
  }
  return std::unique_ptr<ClusterNode>(
      new ClusterNode(options, context, max_concurrent_jobs));
}

ClusterNode::~ClusterNode() { Shutdown(); }

absl::Status ClusterNode::Start(const std::string& listen, int port) {
  advertise_ = options_.advertise;
  if (advertise_.empty()) {
    const size_t colon = listen.rfind(':');
    advertise_ = absl::StrCat(listen.substr(0, colon), ":", port);
  }
  if (options_.join.empty()) return absl::OkStatus();
  coordinator_channel_ =
      grpc::CreateChannel(options_.join, MemberCredentials());
  coordinator_ = v1::ClusterService::NewStub(coordinator_channel_);
  // A worker restarted at once finds its old entry (same address) still
  // alive until the coordinator has missed kMissedBeats of its beats: it
  // keeps asking that long. A second live process keeps the entry alive
  // and is still refused.
  absl::Status joined = Join();
  const absl::Time give_up = absl::Now() + (Membership::kMissedBeats + 1) *
                                               options_.heartbeat_interval;
  while (absl::IsAlreadyExists(joined) && absl::Now() < give_up) {
    absl::SleepFor(options_.heartbeat_interval / 4);
    joined = Join();
  }
  NNLAB_RETURN_IF_ERROR(joined);
  heartbeat_ = std::thread([this] { HeartbeatLoop(); });
  return absl::OkStatus();
}

absl::Status ClusterNode::Join() {
  grpc::ClientContext ctx;
  if (!context_->token.empty()) {
    ctx.AddMetadata("authorization", "Bearer " + context_->token);
  }
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::JoinRequest req;
  req.set_address(advertise_);
  req.set_collective_address(options_.collective_listen);
  req.set_max_concurrent_jobs(max_concurrent_jobs_);
  v1::JoinResponse resp;
  const grpc::Status s = coordinator_->Join(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc(s, absl::StrCat("joining ", options_.join));
  absl::MutexLock lock(&mu_);
  member_id_ = resp.member_id();
  LogInfo(absl::StrCat("cluster: joined ", options_.join, " as ", member_id_));
  return absl::OkStatus();
}

void ClusterNode::HeartbeatLoop() {
  while (!stop_.WaitForNotificationWithTimeout(options_.heartbeat_interval)) {
    grpc::ClientContext ctx;
    if (!context_->token.empty()) {
      ctx.AddMetadata("authorization", "Bearer " + context_->token);
    }
    // A beat may be slow on a loaded machine; it only fails once the
    // coordinator would have given up on this member anyway.
    ctx.set_deadline(absl::ToChronoTime(
        absl::Now() + Membership::kMissedBeats * options_.heartbeat_interval));
    v1::HeartbeatRequest req;
    {
      absl::MutexLock lock(&mu_);
      req.set_member_id(member_id_);
    }
    req.set_running_jobs(running_replicas_.load());
    v1::HeartbeatResponse resp;
    const grpc::Status s = coordinator_->Heartbeat(&ctx, req, &resp);
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
      // The coordinator restarted or gave up on us: join again.
      absl::Status j = Join();
      if (!j.ok()) LogError(absl::StrCat("cluster: ", j.message()));
    } else if (!s.ok()) {
      LogError(absl::StrCat("cluster: heartbeat to ", options_.join, ": ",
                            s.error_message()));
    }
  }
}

std::shared_ptr<grpc::ChannelCredentials> ClusterNode::MemberCredentials()
    const {
  if (options_.tls_ca_pem.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = options_.tls_ca_pem;
  ssl.pem_cert_chain = options_.tls_cert_pem;
  ssl.pem_private_key = options_.tls_key_pem;
  return grpc::SslCredentials(ssl);
}

std::shared_ptr<grpc::Channel> ClusterNode::MemberChannel(
    const std::string& address) {
  return grpc::CreateChannel(address, MemberCredentials());
}

void ClusterNode::Shutdown() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (heartbeat_.joinable()) heartbeat_.join();
}

}  // namespace nnlab::server
