#include "server/log.h"

#include <unistd.h>

#include <atomic>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace nnlab::server {
namespace {

std::atomic<bool> quiet{false};

void Write(absl::string_view level, absl::string_view message) {
  const std::string line =
      absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                    absl::UTCTimeZone()),
                   " ", level, " ", message, "\n");
  // A single write keeps concurrent lines whole.
  const ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace

std::string Printable(absl::string_view s, size_t max) {
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

void LogInfo(absl::string_view message) {
  if (!quiet.load(std::memory_order_relaxed)) Write("INFO", message);
}
void LogError(absl::string_view message) { Write("ERROR", message); }
void SetQuietLogs(bool q) { quiet.store(q); }

}  // namespace nnlab::server
