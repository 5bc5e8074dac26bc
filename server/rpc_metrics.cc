#include "server/rpc_metrics.h"

#include <string>

#include "absl/time/clock.h"

namespace nnlab::server {
namespace {

namespace gx = grpc::experimental;

class RpcMetricsInterceptor : public gx::Interceptor {
 public:
  RpcMetricsInterceptor(gx::ServerRpcInfo* info, RpcStats* stats)
      : stats_(stats),
        method_(info->method() != nullptr ? info->method() : "unknown"),
        start_(absl::Now()) {}

  void Intercept(gx::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            gx::InterceptionHookPoints::PRE_SEND_STATUS)) {
      stats_->Record(method_, methods->GetSendStatus().error_code(),
                     absl::Now() - start_);
    }
    methods->Proceed();
  }

 private:
  RpcStats* const stats_;
  const std::string method_;
  const absl::Time start_;
};

class Factory : public gx::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(RpcStats* stats) : stats_(stats) {}
  gx::Interceptor* CreateServerInterceptor(gx::ServerRpcInfo* info) override {
    return new RpcMetricsInterceptor(info, stats_);  // gRPC owns it.
  }

 private:
  RpcStats* const stats_;
};

}  // namespace

std::unique_ptr<gx::ServerInterceptorFactoryInterface>
MakeRpcMetricsInterceptorFactory(RpcStats* stats) {
  return std::make_unique<Factory>(stats);
}

}  // namespace nnlab::server
