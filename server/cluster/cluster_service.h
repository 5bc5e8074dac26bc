// ClusterService (proto/nnlab/v1/cluster.proto): thin handlers over the
// coordinator's Membership and RendezvousStore, behind the same token check
// as every other service. Thread-safe.
#ifndef NNLAB_SERVER_CLUSTER_CLUSTER_SERVICE_H_
#define NNLAB_SERVER_CLUSTER_CLUSTER_SERVICE_H_

#include <functional>

#include "absl/status/statusor.h"
#include "nnlab/v1/cluster.grpc.pb.h"
#include "server/cluster/membership.h"
#include "server/cluster/rendezvous_store.h"
#include "server/services.h"

namespace nnlab::server {

class ClusterServiceImpl final : public v1::ClusterService::Service {
 public:
  // The longest StoreGet wait a caller may ask for.
  static constexpr int64_t kMaxWaitMs = 600000;

  ClusterServiceImpl(ServiceContext* c, Membership* members,
                     RendezvousStore* store)
      : c_(c), members_(members), store_(store) {}

  grpc::Status Join(grpc::ServerContext* ctx, const v1::JoinRequest* req,
                    v1::JoinResponse* resp) override;
  grpc::Status Heartbeat(grpc::ServerContext* ctx,
                         const v1::HeartbeatRequest* req,
                         v1::HeartbeatResponse* resp) override;
  grpc::Status ListMembers(grpc::ServerContext* ctx,
                           const v1::ListMembersRequest* req,
                           v1::ListMembersResponse* resp) override;
  grpc::Status StoreSet(grpc::ServerContext* ctx,
                        const v1::StoreSetRequest* req,
                        v1::StoreSetResponse* resp) override;
  grpc::Status StoreGet(grpc::ServerContext* ctx,
                        const v1::StoreGetRequest* req,
                        v1::StoreGetResponse* resp) override;
  grpc::Status RunReplica(grpc::ServerContext* ctx,
                          const v1::RunReplicaRequest* req,
                          v1::RunReplicaResponse* resp) override;
  grpc::Status RunJob(grpc::ServerContext* ctx, const v1::RunJobRequest* req,
                      grpc::ServerWriter<v1::RunJobResponse>* writer) override;

  // Runs a replica until it ends, polling `cancelled`; returns its final
  // step. Unset: RunReplica answers UNIMPLEMENTED. Set before serving.
  using ReplicaRunner = std::function<absl::StatusOr<int64_t>(
      const v1::RunReplicaRequest&, const std::function<bool()>& cancelled)>;
  void set_replica_runner(ReplicaRunner runner) {
    run_replica_ = std::move(runner);
  }

  // Runs a whole one-replica job, handing each stream message to `write`
  // (false: the caller went away) and polling `cancelled`. Unset: RunJob
  // answers UNIMPLEMENTED. Set before serving.
  using JobRunner = std::function<absl::Status(
      const v1::RunJobRequest&,
      const std::function<bool(const v1::RunJobResponse&)>& write,
      const std::function<bool()>& cancelled)>;
  void set_job_runner(JobRunner runner) { run_job_ = std::move(runner); }

 private:
  ServiceContext* c_;
  Membership* members_;
  RendezvousStore* store_;
  ReplicaRunner run_replica_;
  JobRunner run_job_;
};

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_CLUSTER_CLUSTER_SERVICE_H_
