// A job's event log, <data_dir>/jobs/<id>.events: MetricEvents appended one
// frame each (storage.h's framing: magic, version, length, CRC-32C,
// payload), in the manner of leveldb's db/log_writer.h and log_reader.h.
//
// The writer buffers records and writes them in batches (a write per
// training step cost as much as a few percent of a small model's step);
// Flush writes the batch, Sync makes what was written durable. A crash may
// therefore lose what was buffered, or lose or tear the tail since the last
// Sync: the reader returns every whole, intact record and stops at the
// first torn, corrupt or unparsable one, so a torn tail costs exactly the
// events in it. A job flushes and syncs before each checkpoint commits, so
// what a crash loses are events of steps the job redoes on resume.
#ifndef NNLAB_SERVER_EVENT_LOG_H_
#define NNLAB_SERVER_EVENT_LOG_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nnlab/v1/training.pb.h"

namespace nnlab::server {

// Appends events to an existing log file.
//
// Thread safety: one Append or Flush at a time; Sync may run concurrently
// with them (it only uses the descriptor, which stays open until the writer
// is destroyed), so a caller can sync outside the lock it appends under.
class EventLogWriter {
 public:
  // Records are written once this many bytes are buffered (about 250
  // events with per-layer statistics of a small model).
  static constexpr size_t kBufferBytes = 64 << 10;

  // Opens the log at `path` for appending; the file must exist (a log is
  // created, empty or with a recovered history, by WriteEventLog).
  static absl::StatusOr<std::unique_ptr<EventLogWriter>> Open(
      const std::string& path);
  // Writes what is still buffered (unless a write failed), then closes.
  ~EventLogWriter();
  EventLogWriter(const EventLogWriter&) = delete;
  EventLogWriter& operator=(const EventLogWriter&) = delete;

  // Buffers one record, writing the buffer when it is full. On a failed
  // write (disk full, I/O error) the file may end in a partial record,
  // which readers drop; records written behind that torn one would be
  // lost to every reader, so after a failure this writer writes nothing
  // more and every call returns the failure.
  absl::Status Append(const v1::MetricEvent& event);
  // Writes the buffered records to the file (not durably: see Sync).
  absl::Status Flush();
  // Makes every record flushed so far durable (fdatasync).
  absl::Status Sync();

  const std::string& path() const { return path_; }

 private:
  EventLogWriter(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  const std::string path_;
  const int fd_;
  std::string buffer_;  // Whole frames not yet written.
  absl::Status failed_;
};

// Replaces the log at `path` atomically and durably with `events`, in
// order (storage.h's WriteFileAtomic); an empty list creates an empty log.
absl::Status WriteEventLog(const std::string& path,
                           const std::vector<v1::MetricEvent>& events);

// The events of a log's contents: every record up to the first torn,
// corrupt or unparsable one.
std::vector<v1::MetricEvent> ParseEventLog(absl::string_view data);
// ParseEventLog of the file at `path`; no events if it cannot be read
// (missing included).
std::vector<v1::MetricEvent> ReadEventLog(const std::string& path);

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_EVENT_LOG_H_
