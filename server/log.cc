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

void LogInfo(absl::string_view message) {
  if (!quiet.load(std::memory_order_relaxed)) Write("INFO", message);
}
void LogError(absl::string_view message) { Write("ERROR", message); }
void SetQuietLogs(bool q) { quiet.store(q); }

}  // namespace nnlab::server
