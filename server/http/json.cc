#include "server/http/json.h"

#include <cstdio>

#include "google/protobuf/util/json_util.h"

namespace nnlab::server {

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string ProtoToJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  std::string out;
  // Printing a valid message cannot fail; an empty object would do if it did.
  if (!google::protobuf::util::MessageToJsonString(m, &out, o).ok()) out = "{}";
  return out;
}

}  // namespace nnlab::server
