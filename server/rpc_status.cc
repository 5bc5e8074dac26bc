#include "server/rpc_status.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "server/log.h"

namespace nnlab::server {

grpc::Status ToGrpcStatus(const absl::Status& status, absl::string_view rpc,
                          absl::string_view context) {
  if (status.ok()) return grpc::Status::OK;
  LogError(absl::StrCat("rpc ", rpc, context.empty() ? "" : " ",
                        Printable(context), ": ",
                        absl::StatusCodeToString(status.code()), ": ",
                        Printable(status.message(), 1000)));
  // absl::StatusCode and grpc::StatusCode share their numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace nnlab::server
