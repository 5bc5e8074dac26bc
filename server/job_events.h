// A job's event history and its watchers: the metric bus StreamMetrics
// reads. The training thread appends events (a short critical section) and
// wakes waiters; each Watcher reads at its own pace through a cursor,
// replaying the retained history from a step on, then following live
// events until the job ends.
//
// A watcher that falls more than its buffer (`capacity`) behind the live
// edge skips ahead, and one the history limit overtakes loses the events
// that left the history; either way the next event it gets says how many
// events it missed (MetricEvent.dropped_events). Only events the watcher
// would have received count: those its from_step and every_n filter out
// are not "missed".
//
// Memory: once the job has ended, its log is complete and no watcher is
// attached, the history leaves memory; a new watcher reads it back from the
// event log (event_log.h).
//
// Thread-safe (one mutex per history; wake-ups run under it).
#ifndef NNLAB_SERVER_JOB_EVENTS_H_
#define NNLAB_SERVER_JOB_EVENTS_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nnlab/v1/training.pb.h"
#include "server/event_log.h"

namespace nnlab::server {

class JobHistory;

// True for COMPLETED, CANCELLED and FAILED.
bool IsTerminalState(v1::JobState state);

// A watcher's position in one job's event stream.
class Watcher {
 public:
  struct Options {
    // Events of earlier steps are skipped (state changes included), except
    // the terminal state event.
    int64_t from_step = 0;
    int64_t every_n = 1;
    bool omit_layer_stats = false;
  };
  enum class Result { kEvent, kTimeout, kEnded };

  // InvalidArgument for a negative from_step or every_n.
  static absl::Status CheckOptions(const Options& options);
  // A watcher of `history` from the start of what it retains, lagging at
  // most `capacity` events behind the live edge once the replay is done.
  // CheckOptions' errors; DataLoss if an ended job's history has to be read
  // back from a damaged event log.
  static absl::StatusOr<std::unique_ptr<Watcher>> Create(
      std::shared_ptr<JobHistory> history, const Options& options,
      int64_t capacity);
  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // Waits up to `timeout` for the next event; fills `event` (with
  // dropped_events set) on kEvent. kEnded once the job has ended and every
  // event was delivered. Thread-compatible (one reader per watcher).
  Result Next(absl::Duration timeout, v1::MetricEvent* event);

  // Registers `wake`, called each time Next may have more to return (an
  // event was appended, the job ended), so a reader need not block in Next:
  // it can poll with a zero timeout and wait for `wake`. `wake` runs on the
  // appending thread with the history's lock held: it must be quick, must
  // not block, and must not call into this Watcher, the history or the
  // JobManager. An empty function unregisters; once SetWakeup returns, the
  // previous `wake` is not running and is never called again. Destroying
  // the Watcher unregisters too, but a call already under way may still
  // finish, so `wake` should own (or weakly reference) whatever it touches.
  void SetWakeup(std::function<void()> wake);

 private:
  friend class JobHistory;
  Watcher(std::shared_ptr<JobHistory> history, const Options& options,
          int64_t capacity)
      : history_(std::move(history)), options_(options), capacity_(capacity) {}
  // Whether this watcher's filter lets `e` through.
  bool Wants(const v1::MetricEvent& e) const;

  const std::shared_ptr<JobHistory> history_;
  const Options options_;
  const int64_t capacity_;
  std::shared_ptr<const std::function<void()>> wake_;
  // Guarded by the history's mutex (the history's trimming moves them).
  // Next sequence number to look at; -1 until Create has placed it.
  int64_t cursor_ = -1;
  int64_t replay_end_ = 0;  // Sequence where history replay ends.
  int64_t dropped_ = 0;     // Missed, to report with the next event.
};

// One job's events, in memory (the newest `limit`) and in its event log.
class JobHistory {
 public:
  // `log_path`: the job's event log, for reading an evicted history back.
  JobHistory(std::string job_id, std::string log_path, int64_t limit);
  JobHistory(const JobHistory&) = delete;
  JobHistory& operator=(const JobHistory&) = delete;

  // Replaces the history and the log file with `events` (renumbered from
  // the current sequence on; the newest `limit` stay in memory) and, with
  // `append`, opens the log for the events to come. The log is complete
  // only if that all worked; on failure it is logged, and the history
  // stays in memory for good. Returns the status of writing the log.
  // REQUIRES: no events appended yet.
  absl::Status Restore(std::vector<v1::MetricEvent> events, bool append);

  // Appends an event (sequence and, if unset, time are set here) to memory
  // and the log, and wakes watchers. A log that cannot be written is
  // dropped (logged): the history then lives only in memory.
  void Append(v1::MetricEvent e);
  // Appends events so that watchers see all of them or none.
  void AppendAll(std::vector<v1::MetricEvent> events);
  // Appends the job's last event (its terminal state), writes the buffered
  // events to the log and marks the job ended: watchers that delivered
  // everything then get kEnded.
  void End(v1::MetricEvent last);
  // Marks a job loaded as already ended (its log is final) and lets its
  // history leave memory.
  void MarkEnded();

  // Writes the buffered events and makes the event log durable up to now
  // (before a checkpoint and on state changes, so the history of everything
  // a checkpoint or a job record acknowledges survives a crash; per-event
  // syncs would cost a disk flush per training step). The sync runs
  // outside the lock, so watchers are not held up by the disk.
  void SyncLog();
  // Closes the log of an ended job (nothing is appended after the terminal
  // state); the history leaves memory once its last watcher is done.
  void CloseLog();

  // Wakes every waiting Next (shutdown), without adding an event.
  void Notify();

  // Events held in memory.
  int64_t InMemory() const;

 private:
  friend class Watcher;
  void AppendLocked(v1::MetricEvent e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After a failed log write: logs it and stops writing the log (the
  // history then lives only in memory).
  void CheckLogLocked(const absl::Status& written)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Calls the wake-ups of watchers that registered one, dropping those
  // whose watcher is gone.
  void WakeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the history of an ended job nobody watches when the log can
  // serve it again: finished jobs otherwise hold every event forever.
  void MaybeEvictLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reads an evicted history back from the log; DataLoss if the log no
  // longer holds all of it. REQUIRES: a watcher is registered (so the
  // history is not evicted meanwhile).
  absl::Status Reload();

  const std::string job_id_;
  const std::string log_path_;
  const int64_t limit_;

  mutable absl::Mutex mu_;
  absl::CondVar cv_;  // Signalled on every event and when the job ends.
  std::deque<std::shared_ptr<const v1::MetricEvent>> events_
      ABSL_GUARDED_BY(mu_);
  int64_t first_seq_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  // Shared so SyncLog can sync outside the lock while Append goes on.
  std::shared_ptr<EventLogWriter> log_ ABSL_GUARDED_BY(mu_);
  // The log holds every event of [first_seq_, next_seq_) under the same
  // sequence numbers (false after a failed write or rewrite).
  bool log_complete_ ABSL_GUARDED_BY(mu_) = false;
  // The history has left memory; a watcher reloads it from the log.
  bool evicted_ ABSL_GUARDED_BY(mu_) = false;
  // Every live watcher: trimming the oldest event moves the cursors of
  // those still before it (and counts what they missed).
  std::vector<Watcher*> watchers_ ABSL_GUARDED_BY(mu_);
  // Watchers that asked to be woken on new events (Watcher::SetWakeup).
  std::vector<std::weak_ptr<const std::function<void()>>> wakeups_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_JOB_EVENTS_H_
