#include "server/cluster/cluster_service.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace nnlab::server {

grpc::Status ClusterServiceImpl::Join(grpc::ServerContext* ctx,
                                      const v1::JoinRequest* req,
                                      v1::JoinResponse* resp) {
  return c_->Serve(ctx, "Join", req->address(), [&]() -> absl::Status {
    NNLAB_ASSIGN_OR_RETURN(*resp, members_->Join(*req));
    return absl::OkStatus();
  });
}

grpc::Status ClusterServiceImpl::Heartbeat(grpc::ServerContext* ctx,
                                           const v1::HeartbeatRequest* req,
                                           v1::HeartbeatResponse* resp) {
  return c_->Serve(ctx, "Heartbeat", req->member_id(),
                   [&] { return members_->Heartbeat(*req); });
}

grpc::Status ClusterServiceImpl::ListMembers(grpc::ServerContext* ctx,
                                             const v1::ListMembersRequest* req,
                                             v1::ListMembersResponse* resp) {
  return c_->Serve(ctx, "ListMembers", "", [&] {
    for (v1::Member& m : members_->List()) *resp->add_members() = std::move(m);
    return absl::OkStatus();
  });
}

grpc::Status ClusterServiceImpl::StoreSet(grpc::ServerContext* ctx,
                                          const v1::StoreSetRequest* req,
                                          v1::StoreSetResponse* resp) {
  return c_->Serve(ctx, "StoreSet", req->key(),
                   [&] { return store_->Set(req->key(), req->value()); });
}

grpc::Status ClusterServiceImpl::StoreGet(grpc::ServerContext* ctx,
                                          const v1::StoreGetRequest* req,
                                          v1::StoreGetResponse* resp) {
  return c_->Serve(ctx, "StoreGet", req->key(), [&]() -> absl::Status {
    if (req->wait_ms() < 0 || req->wait_ms() > kMaxWaitMs) {
      return absl::InvalidArgumentError(absl::StrCat(
          "wait_ms must be in [0, ", kMaxWaitMs, "], got ", req->wait_ms()));
    }
    // Never wait past the caller's deadline.
    absl::Duration wait = absl::Milliseconds(req->wait_ms());
    wait = std::min(wait, absl::FromChrono(ctx->deadline()) - absl::Now());
    NNLAB_ASSIGN_OR_RETURN(*resp->mutable_value(),
                           store_->Get(req->key(), wait));
    return absl::OkStatus();
  });
}

grpc::Status ClusterServiceImpl::RunReplica(grpc::ServerContext* ctx,
                                            const v1::RunReplicaRequest* req,
                                            v1::RunReplicaResponse* resp) {
  return c_->Serve(ctx, "RunReplica", req->job_id(), [&]() -> absl::Status {
    if (!run_replica_) {
      return absl::UnimplementedError("this server runs no replicas");
    }
    NNLAB_ASSIGN_OR_RETURN(const int64_t step, run_replica_(*req, [ctx] {
                             return ctx->IsCancelled();
                           }));
    resp->set_final_step(step);
    return absl::OkStatus();
  });
}

grpc::Status ClusterServiceImpl::RunJob(
    grpc::ServerContext* ctx, const v1::RunJobRequest* req,
    grpc::ServerWriter<v1::RunJobResponse>* writer) {
  return c_->Serve(ctx, "RunJob", req->job_id(), [&]() -> absl::Status {
    if (!run_job_) return absl::UnimplementedError("this server runs no jobs");
    return run_job_(
        *req,
        [writer](const v1::RunJobResponse& m) { return writer->Write(m); },
        [ctx] { return ctx->IsCancelled(); });
  });
}

}  // namespace nnlab::server
