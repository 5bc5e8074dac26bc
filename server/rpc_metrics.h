// A gRPC server interceptor that records every handled RPC (method, status
// code, latency from the call's start to its status) into an RpcStats
// (telemetry.h). It sees every service the server hosts, health included,
// synchronous and callback alike, so no handler has to remember to count.
#ifndef NNLAB_SERVER_RPC_METRICS_H_
#define NNLAB_SERVER_RPC_METRICS_H_

#include <memory>

#include "grpcpp/support/server_interceptor.h"
#include "server/telemetry.h"

namespace nnlab::server {

// `stats` must outlive every server built with the factory.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeRpcMetricsInterceptorFactory(RpcStats* stats);

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_RPC_METRICS_H_
