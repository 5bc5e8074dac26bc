#include "server/sweep_service.h"

#include <string>

namespace nnlab::server {

namespace {

// Copies a StatusOr's value into `resp`, or returns its error.
absl::Status Fill(absl::StatusOr<v1::Sweep> s, v1::Sweep* resp) {
  if (!s.ok()) return s.status();
  *resp = std::move(*s);
  return absl::OkStatus();
}

}  // namespace

grpc::Status SweepServiceImpl::StartSweep(grpc::ServerContext* ctx,
                                          const v1::StartSweepRequest* req,
                                          v1::Sweep* resp) {
  std::string id;
  return c_->Serve(ctx, "StartSweep", id, [&] {
    absl::Status s = Fill(sweeps_->StartSweep(req->spec()), resp);
    id = resp->sweep_id();
    return s;
  });
}

grpc::Status SweepServiceImpl::GetSweep(grpc::ServerContext* ctx,
                                        const v1::GetSweepRequest* req,
                                        v1::Sweep* resp) {
  return c_->Serve(ctx, "GetSweep", req->sweep_id(),
                   [&] { return Fill(sweeps_->Get(req->sweep_id()), resp); });
}

grpc::Status SweepServiceImpl::ListSweeps(grpc::ServerContext* ctx,
                                          const v1::ListSweepsRequest*,
                                          v1::ListSweepsResponse* resp) {
  return c_->Serve(ctx, "ListSweeps", "", [&] {
    for (v1::Sweep& s : sweeps_->List()) *resp->add_sweeps() = std::move(s);
    return absl::OkStatus();
  });
}

grpc::Status SweepServiceImpl::CancelSweep(grpc::ServerContext* ctx,
                                           const v1::CancelSweepRequest* req,
                                           v1::Sweep* resp) {
  return c_->Serve(ctx, "CancelSweep", req->sweep_id(), [&] {
    return Fill(sweeps_->Cancel(req->sweep_id()), resp);
  });
}

grpc::Status SweepServiceImpl::PauseSweep(grpc::ServerContext* ctx,
                                          const v1::PauseSweepRequest* req,
                                          v1::Sweep* resp) {
  return c_->Serve(ctx, "PauseSweep", req->sweep_id(),
                   [&] { return Fill(sweeps_->Pause(req->sweep_id()), resp); });
}

grpc::Status SweepServiceImpl::ResumeSweep(grpc::ServerContext* ctx,
                                           const v1::ResumeSweepRequest* req,
                                           v1::Sweep* resp) {
  return c_->Serve(ctx, "ResumeSweep", req->sweep_id(), [&] {
    return Fill(sweeps_->Resume(req->sweep_id()), resp);
  });
}

}  // namespace nnlab::server
