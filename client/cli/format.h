// Human-readable text for the CLI's results (the --json output is
// protobuf's JSON mapping instead, see ToJsonLine).
#ifndef NNLAB_CLIENT_CLI_FORMAT_H_
#define NNLAB_CLIENT_CLI_FORMAT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "google/protobuf/message.h"
#include "google/protobuf/repeated_field.h"
#include "nnlab/v1/dataset.pb.h"
#include "nnlab/v1/model.pb.h"
#include "nnlab/v1/training.pb.h"

namespace nnlab::cli {

// "[100, 784]".
std::string ShapeString(const google::protobuf::RepeatedField<int64_t>& s);

// A model: id, name, parameter count, shapes, then one line per layer.
std::string FormatModel(const v1::Model& m);
// A one-line job summary: id, model, dataset, state, progress, evaluation.
std::string FormatJob(const v1::Job& j);
// Aligned tables with a header row.
std::string ModelsTable(const std::vector<v1::Model>& models);
std::string JobsTable(const std::vector<v1::Job>& jobs);
std::string DatasetsTable(const std::vector<v1::DatasetInfo>& datasets);

// The message as protobuf JSON on one line (no trailing newline).
std::string ToJsonLine(const google::protobuf::Message& m);

// The exit code of the CLI for a failed call (see `nnlab --help`):
// 3 = server unreachable, unauthenticated or not answering in time;
// 2 = the request was wrong (bad argument or file, unknown id);
// 1 = anything else.
int ExitCodeFor(const absl::Status& s);
// "CODE_NAME: message" on one line.
std::string OneLineError(const absl::Status& s);

}  // namespace nnlab::cli

#endif  // NNLAB_CLIENT_CLI_FORMAT_H_
