// JSON text for the HTTP routes (http_server.cc, sweep_routes.cc): the few
// pieces they build by hand, written once.
#ifndef NNLAB_SERVER_HTTP_JSON_H_
#define NNLAB_SERVER_HTTP_JSON_H_

#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace nnlab::server {

// `s` as a JSON string literal, quotes included: `"` and `\` escaped,
// control characters as \u00XX; other bytes (UTF-8 included) pass through.
std::string JsonString(absl::string_view s);

// `m` as JSON with the .proto field names and every primitive field printed
// (defaults too), as the dashboard reads it.
std::string ProtoToJson(const google::protobuf::Message& m);

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_HTTP_JSON_H_
