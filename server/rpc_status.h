// The one place absl::Status becomes grpc::Status (the codes map
// one-to-one), logging every error with the RPC and its ids.
#ifndef NNLAB_SERVER_RPC_STATUS_H_
#define NNLAB_SERVER_RPC_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace nnlab::server {

// Converts `status`; a non-OK one is logged as "<rpc> <context>: <code>:
// <message>" (one line per RPC error).
grpc::Status ToGrpcStatus(const absl::Status& status, absl::string_view rpc,
                          absl::string_view context = "");

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_RPC_STATUS_H_
