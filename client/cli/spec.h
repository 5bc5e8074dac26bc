// Model definitions from files: a ModelSpec or a GanSpec written in
// protobuf text format (.textproto, .txtpb, .pbtxt, anything not .json) or
// in protobuf's JSON mapping (.json).
//
// Parse errors are InvalidArgument "FILE:LINE:COLUMN: message" (1-based
// line and column), so editors and terminals can jump to them.
#ifndef NNLAB_CLIENT_CLI_SPEC_H_
#define NNLAB_CLIENT_CLI_SPEC_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "nnlab/v1/model.pb.h"

namespace nnlab::cli {

// Parses protobuf text format into `msg` (cleared first).
absl::Status ParseTextProto(const std::string& text,
                            const std::string& file_name,
                            google::protobuf::Message* msg);

// Parses protobuf's JSON mapping into `msg` (cleared first). Errors point at
// the offending token: the syntax error's position, the unknown key, or the
// value that does not fit its field.
absl::Status ParseJson(const std::string& text, const std::string& file_name,
                       google::protobuf::Message* msg);

// Parses `text` as the model definition of a CreateModelRequest: a GanSpec
// when the text declares "# proto-message: nnlab.v1.GanSpec" (text format)
// or when it parses as a GanSpec and not as a ModelSpec; a ModelSpec
// otherwise. When neither parses, the ModelSpec's error is reported unless
// the text uses GanSpec-only fields (generator, discriminator).
absl::Status ParseModelDefinition(const std::string& text,
                                  const std::string& file_name, bool json,
                                  v1::CreateModelRequest* req);

// Reads `path` (JSON if it ends in .json) into `req`'s definition.
// NotFound if the file cannot be read.
absl::Status LoadModelDefinition(const std::string& path,
                                 v1::CreateModelRequest* req);

// Whole file contents; NotFound naming the path if unreadable.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace nnlab::cli

#endif  // NNLAB_CLIENT_CLI_SPEC_H_
