// One-line logs of nnlabd to stderr: "<UTC time> <LEVEL> <message>".
// Thread-safe (one write per line).
#ifndef NNLAB_SERVER_LOG_H_
#define NNLAB_SERVER_LOG_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace nnlab::server {

// `s` made safe to echo in a log line or an error message: printable ASCII
// stays, every other byte (NUL, newline, escape, '\') becomes "\xHH",
// and past `max` bytes it is cut, noting the full length. Client-chosen ids
// go through it so a request can neither forge log lines nor send control
// bytes back to a client.
std::string Printable(absl::string_view s, size_t max = 80);

void LogInfo(absl::string_view message);
void LogError(absl::string_view message);
// Silences LogInfo (tests); errors are always printed.
void SetQuietLogs(bool quiet);

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_LOG_H_
