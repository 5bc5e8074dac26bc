// SweepService (sweep.proto) over the sweep manager: thin handlers in
// ServiceContext::Serve's frame (auth, status conversion). Thread-safe.
#ifndef NNLAB_SERVER_SWEEP_SERVICE_H_
#define NNLAB_SERVER_SWEEP_SERVICE_H_

#include "grpcpp/grpcpp.h"
#include "nnlab/v1/sweep.grpc.pb.h"
#include "server/services.h"
#include "server/sweeps.h"

namespace nnlab::server {

class SweepServiceImpl final : public v1::SweepService::Service {
 public:
  // `c` and `sweeps` must outlive the service.
  SweepServiceImpl(ServiceContext* c, SweepManager* sweeps)
      : c_(c), sweeps_(sweeps) {}
  grpc::Status StartSweep(grpc::ServerContext* ctx,
                          const v1::StartSweepRequest* req,
                          v1::Sweep* resp) override;
  grpc::Status GetSweep(grpc::ServerContext* ctx,
                        const v1::GetSweepRequest* req,
                        v1::Sweep* resp) override;
  grpc::Status ListSweeps(grpc::ServerContext* ctx,
                          const v1::ListSweepsRequest* req,
                          v1::ListSweepsResponse* resp) override;
  grpc::Status CancelSweep(grpc::ServerContext* ctx,
                           const v1::CancelSweepRequest* req,
                           v1::Sweep* resp) override;
  grpc::Status PauseSweep(grpc::ServerContext* ctx,
                          const v1::PauseSweepRequest* req,
                          v1::Sweep* resp) override;
  grpc::Status ResumeSweep(grpc::ServerContext* ctx,
                           const v1::ResumeSweepRequest* req,
                           v1::Sweep* resp) override;

 private:
  ServiceContext* const c_;
  SweepManager* const sweeps_;
};

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_SWEEP_SERVICE_H_
