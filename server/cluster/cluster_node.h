// This nnlabd's place in a cluster. Every nnlabd serves ClusterService
// and can coordinate (members join it); one started with `join` is also a
// worker: it joins that coordinator at start (with the cluster's token,
// over TLS when tls_ca_pem is set) and heartbeats in the background,
// joining again if the coordinator forgot it (it restarted, or this
// worker was silent too long).
//
// The Gloo transport of every member listens on collective_listen: a
// numeric interface address, never a wildcard unless allowed explicitly
// (Gloo's TCP data plane is unauthenticated and unencrypted).
#ifndef NNLAB_SERVER_CLUSTER_CLUSTER_NODE_H_
#define NNLAB_SERVER_CLUSTER_CLUSTER_NODE_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/cluster/cluster_service.h"
#include "server/cluster/membership.h"
#include "server/cluster/rendezvous_store.h"

namespace nnlab::server {

struct ClusterOptions {
  std::string join;  // Coordinator HOST:PORT; empty: not a worker.
  // TLS between members. tls_ca_pem set: every call to another member
  // (join, heartbeats, rendezvous, replicas) is TLS, trusting this CA for
  // the member's server certificate. tls_cert_pem / tls_key_pem (this
  // node's own server certificate) are then presented as the client
  // certificate, for members that require mutual TLS (--tls_client_ca).
  std::string tls_ca_pem;
  std::string tls_cert_pem;
  std::string tls_key_pem;
  // The gRPC address other members reach this one at; empty: the listen
  // address's host with the bound port.
  std::string advertise;
  std::string collective_listen = "127.0.0.1";
  bool allow_wildcard_collective = false;
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // Bound on every Gloo connect and receive (a dead or cut-off peer).
  absl::Duration collective_timeout = absl::Seconds(30);
};

class ClusterNode {
 public:
  // InvalidArgument for a bad collective address or intervals.
  static absl::StatusOr<std::unique_ptr<ClusterNode>> Create(
      const ClusterOptions& options, ServiceContext* context,
      int max_concurrent_jobs);
  ~ClusterNode();

  ClusterServiceImpl* service() { return &service_; }
  Membership* membership() { return &membership_; }
  RendezvousStore* store() { return &store_; }
  const ClusterOptions& options() const { return options_; }

  // Called once the gRPC server is bound: records this node's own address
  // and, for a worker, joins (synchronously: the coordinator's status
  // code, e.g. UNAUTHENTICATED or ALREADY_EXISTS, is returned as is) and
  // starts heartbeating.
  absl::Status Start(const std::string& listen, int port);
  // The cluster's bearer token (empty: none).
  const std::string& token() const { return context_->token; }
  // A worker's channel to its coordinator (null on the coordinator).
  std::shared_ptr<grpc::Channel> coordinator_channel() const {
    return coordinator_channel_;
  }
  // A channel to member `address`, with the cluster's TLS settings.
  std::shared_ptr<grpc::Channel> MemberChannel(const std::string& address);
  // Stops heartbeating. Idempotent.
  void Shutdown();

 private:
  ClusterNode(const ClusterOptions& options, ServiceContext* context,
              int max_concurrent_jobs);
  std::shared_ptr<grpc::ChannelCredentials> MemberCredentials() const;
  absl::Status Join();
  void HeartbeatLoop();

  const ClusterOptions options_;
  ServiceContext* context_;
  const int max_concurrent_jobs_;
  RendezvousStore store_;
  Membership membership_;
  ClusterServiceImpl service_;
  std::string advertise_;
  std::shared_ptr<grpc::Channel> coordinator_channel_;
  std::unique_ptr<v1::ClusterService::Stub> coordinator_;
  absl::Mutex mu_;
  std::string member_id_ ABSL_GUARDED_BY(mu_);
  // Replicas and whole jobs (RunJob) running here; reported in heartbeats.
  std::atomic<int> running_replicas_{0};
  absl::Notification stop_;
  std::thread heartbeat_;
};

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_CLUSTER_CLUSTER_NODE_H_
