#include "server/event_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/storage.h"

namespace nnlab::server {
namespace {

// storage.h's frame header: magic (4), version (4), length (8), CRC (4).
constexpr size_t kHeaderSize = 20;

absl::Status ErrnoError(absl::string_view what, const std::string& path,
                        int err) {
  return absl::InternalError(
      absl::StrCat(what, " ", path, ": ", std::strerror(err)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<EventLogWriter>> EventLogWriter::Open(
    const std::string& path) {
  const int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open event log", path, errno);
  return std::unique_ptr<EventLogWriter>(new EventLogWriter(path, fd));
}

EventLogWriter::~EventLogWriter() {
  Flush().IgnoreError();  // Whoever needs the status has flushed already.
  close(fd_);
}

absl::Status EventLogWriter::Append(const v1::MetricEvent& event) {
  if (!failed_.ok()) return failed_;
  if (!AppendFramed(event, &buffer_)) {
    return absl::InternalError(
        absl::StrCat("cannot serialize an event for ", path_));
  }
  return buffer_.size() >= kBufferBytes ? Flush() : absl::OkStatus();
}

absl::Status EventLogWriter::Flush() {
  if (!failed_.ok() || buffer_.empty()) return failed_;
  const ssize_t n = write(fd_, buffer_.data(), buffer_.size());
  if (n < 0) {
    failed_ = ErrnoError("cannot append to", path_, errno);
  } else if (n != static_cast<ssize_t>(buffer_.size())) {
    failed_ = absl::ResourceExhaustedError(absl::StrCat(
        "short write to ", path_, ": ", n, " of ", buffer_.size(), " bytes"));
  }
  buffer_.clear();
  return failed_;
}

absl::Status EventLogWriter::Sync() {
  if (fdatasync(fd_) != 0) return ErrnoError("cannot sync", path_, errno);
  return absl::OkStatus();
}

absl::Status WriteEventLog(const std::string& path,
                           const std::vector<v1::MetricEvent>& events) {
  std::string log;
  for (const v1::MetricEvent& e : events) {
    if (!AppendFramed(e, &log)) {
      return absl::InternalError(absl::StrCat("cannot serialize ", path));
    }
  }
  return WriteFileAtomic(path, log);
}

std::vector<v1::MetricEvent> ParseEventLog(absl::string_view data) {
  std::vector<v1::MetricEvent> events;
  absl::string_view rest = data;
  while (rest.size() >= kHeaderSize) {
    uint64_t len = 0;
    for (int i = 0; i < 8; ++i) {
      len |= uint64_t(static_cast<unsigned char>(rest[8 + i])) << (8 * i);
    }
    if (len > rest.size() - kHeaderSize) break;  // Torn: the tail is short.
    absl::StatusOr<std::string> payload =
        Unframe(rest.substr(0, kHeaderSize + len));
    if (!payload.ok()) break;
    v1::MetricEvent e;
    if (!e.ParseFromString(*payload)) break;
    events.push_back(std::move(e));
    rest.remove_prefix(kHeaderSize + len);
  }
  return events;
}

std::vector<v1::MetricEvent> ReadEventLog(const std::string& path) {
  absl::StatusOr<std::string> data = ReadFile(path);
  if (!data.ok()) return {};
  return ParseEventLog(*data);
}

}  // namespace nnlab::server
