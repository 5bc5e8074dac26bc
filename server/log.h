// One-line logs of nnlabd to stderr: "<UTC time> <LEVEL> <message>".
// Thread-safe (one write per line).
#ifndef NNLAB_SERVER_LOG_H_
#define NNLAB_SERVER_LOG_H_

#include "absl/strings/string_view.h"

namespace nnlab::server {

void LogInfo(absl::string_view message);
void LogError(absl::string_view message);
// Silences LogInfo (tests); errors are always printed.
void SetQuietLogs(bool quiet);

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_LOG_H_
