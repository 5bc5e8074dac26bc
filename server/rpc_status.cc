#include "server/rpc_status.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "server/log.h"

namespace nnlab::server {

namespace {

// Client-chosen ids reach the log: keep them on one line and short, so a
// request cannot forge log lines or flood the log.
std::string Printable(absl::string_view s, size_t max = 80) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
    }
  }
  if (s.size() > max) absl::StrAppend(&out, "...(", s.size(), " bytes)");
  return out;
}

}  // namespace

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
