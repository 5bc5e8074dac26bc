#include "server/job_events.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/status_macros.h"
#include "server/log.h"
#include "server/models.h"  // SetTimestampNow
#include "server/telemetry.h"

namespace nnlab::server {

bool IsTerminalState(v1::JobState s) {
  return s == v1::JOB_STATE_COMPLETED || s == v1::JOB_STATE_CANCELLED ||
         s == v1::JOB_STATE_FAILED;
}

// --- Watcher ---------------------------------------------------------------

absl::Status Watcher::CheckOptions(const Options& options) {
  if (options.from_step < 0) {
    return absl::InvalidArgumentError("from_step must be >= 0");
  }
  if (options.every_n < 0) {
    return absl::InvalidArgumentError("every_n must be >= 0");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Watcher>> Watcher::Create(
    std::shared_ptr<JobHistory> history, const Options& options,
    int64_t capacity) {
  NNLAB_RETURN_IF_ERROR(CheckOptions(options));
  JobHistory* h = history.get();
  auto w = std::unique_ptr<Watcher>(
      new Watcher(std::move(history), options, capacity));
  {
    // Registered first, so the history cannot leave memory while it is
    // read back. The cursor stays -1 (never trimmed over) until placed.
    absl::MutexLock lock(&h->mu_);
    h->watchers_.push_back(w.get());
  }
  NNLAB_RETURN_IF_ERROR(h->Reload());  // The destructor unregisters.
  absl::MutexLock lock(&h->mu_);
  w->cursor_ = h->first_seq_;
  w->replay_end_ = h->next_seq_;
  return w;
}

Watcher::~Watcher() {
  JobHistory* h = history_.get();
  absl::MutexLock lock(&h->mu_);
  h->watchers_.erase(std::find(h->watchers_.begin(), h->watchers_.end(), this));
  h->MaybeEvictLocked();
}

bool Watcher::Wants(const v1::MetricEvent& e) const {
  // Everything before from_step is skipped, state changes included; the
  // state that ends the job is always delivered, so every stream learns how
  // the job ended.
  if (e.step() < options_.from_step &&
      !(e.phase() == v1::PHASE_STATE && IsTerminalState(e.job_state()))) {
    return false;
  }
  return !(e.phase() == v1::PHASE_TRAIN && options_.every_n > 1 &&
           e.step() % options_.every_n != 0);
}

Watcher::Result Watcher::Next(absl::Duration timeout, v1::MetricEvent* event) {
  JobHistory* h = history_.get();
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&h->mu_);
  while (true) {
    // Trimming keeps cursor_ >= first_seq_ (JobHistory::AppendLocked).
    if (cursor_ >= replay_end_ && h->next_seq_ - cursor_ > capacity_) {
      // Skipped to `capacity_` behind the live edge; only the events this
      // watcher would have received count as missed.
      const int64_t end = h->next_seq_ - capacity_;
      for (; cursor_ < end; ++cursor_) {
        if (Wants(*h->events_[cursor_ - h->first_seq_])) {
          ++dropped_;
          Telemetry().watcher_events_dropped.fetch_add(1);
        }
      }
    }
    while (cursor_ < h->next_seq_) {
      const v1::MetricEvent& e = *h->events_[cursor_ - h->first_seq_];
      ++cursor_;
      if (!Wants(e)) continue;
      *event = e;
      if (options_.omit_layer_stats) event->clear_layers();
      event->set_dropped_events(dropped_);
      dropped_ = 0;
      return Result::kEvent;
    }
    if (h->ended_) return Result::kEnded;
    if (h->cv_.WaitWithDeadline(&h->mu_, deadline)) return Result::kTimeout;
  }
}

void Watcher::SetWakeup(std::function<void()> wake) {
  JobHistory* h = history_.get();
  absl::MutexLock lock(&h->mu_);
  if (wake_ != nullptr) {
    auto& w = h->wakeups_;
    w.erase(std::remove_if(w.begin(), w.end(),
                           [&](const auto& weak) {
                             return weak.expired() || weak.lock() == wake_;
                           }),
            w.end());
    wake_.reset();
  }
  if (wake) {
    wake_ = std::make_shared<const std::function<void()>>(std::move(wake));
    h->wakeups_.push_back(wake_);
  }
}

// --- JobHistory ------------------------------------------------------------

JobHistory::JobHistory(std::string job_id, std::string log_path, int64_t limit)
    : job_id_(std::move(job_id)),
      log_path_(std::move(log_path)),
      limit_(limit) {}

absl::Status JobHistory::Restore(std::vector<v1::MetricEvent> events,
                                 bool append) {
  {
    absl::MutexLock lock(&mu_);
    for (v1::MetricEvent& e : events) {
      e.set_sequence(next_seq_++);
      events_.push_back(std::make_shared<const v1::MetricEvent>(e));
    }
    while (static_cast<int64_t>(events_.size()) > limit_) {
      events_.pop_front();
      ++first_seq_;
    }
  }
  // The file is rewritten so that it matches the history exactly.
  absl::Status s = WriteEventLog(log_path_, events);
  if (!s.ok()) LogError(absl::StrCat("job ", job_id_, ": ", s.ToString()));
  std::unique_ptr<EventLogWriter> log;
  if (s.ok() && append) {
    absl::StatusOr<std::unique_ptr<EventLogWriter>> w =
        EventLogWriter::Open(log_path_);
    if (w.ok()) {
      log = *std::move(w);
    } else {
      LogError(absl::StrCat("job ", job_id_, ": ", w.status().ToString()));
    }
  }
  absl::MutexLock lock(&mu_);
  log_complete_ = s.ok() && (!append || log != nullptr);
  log_ = std::move(log);
  return s;
}

void JobHistory::Append(v1::MetricEvent e) {
  absl::MutexLock lock(&mu_);
  AppendLocked(std::move(e));
  cv_.SignalAll();
  WakeLocked();
}

void JobHistory::AppendAll(std::vector<v1::MetricEvent> events) {
  absl::MutexLock lock(&mu_);
  for (v1::MetricEvent& e : events) AppendLocked(std::move(e));
  cv_.SignalAll();
  WakeLocked();
}

void JobHistory::End(v1::MetricEvent last) {
  absl::MutexLock lock(&mu_);
  AppendLocked(std::move(last));
  // The history may leave memory as soon as its watchers are done: the log
  // has to hold all of it by then.
  if (log_ != nullptr) CheckLogLocked(log_->Flush());
  ended_ = true;
  cv_.SignalAll();
  WakeLocked();
}

void JobHistory::MarkEnded() {
  absl::MutexLock lock(&mu_);
  ended_ = true;
  MaybeEvictLocked();
}

void JobHistory::AppendLocked(v1::MetricEvent e) {
  e.set_sequence(next_seq_++);
  if (!e.has_time()) SetTimestampNow(e.mutable_time());
  if (log_ != nullptr) {
    // The tail since the last SyncLog may be lost (or torn) by a crash; a
    // torn tail is dropped on load and the job redoes those steps.
    CheckLogLocked(log_->Append(e));
  }
  events_.push_back(std::make_shared<const v1::MetricEvent>(std::move(e)));
  while (static_cast<int64_t>(events_.size()) > limit_) {
    // A watcher still before the oldest event misses it: it moves on, and
    // counts it if it would have received it.
    for (Watcher* w : watchers_) {
      if (w->cursor_ == first_seq_) {
        if (w->Wants(*events_.front())) {
          ++w->dropped_;
          Telemetry().watcher_events_dropped.fetch_add(1);
        }
        ++w->cursor_;
      }
    }
    events_.pop_front();
    ++first_seq_;
  }
}

void JobHistory::CheckLogLocked(const absl::Status& written) {
  if (written.ok()) return;
  LogError(absl::StrCat("job ", job_id_, ": event log write failed (",
                        written.message(),
                        "); history will not survive a restart"));
  log_.reset();
  log_complete_ = false;
}

void JobHistory::WakeLocked() {
  size_t live = 0;
  for (size_t i = 0; i < wakeups_.size(); ++i) {
    if (std::shared_ptr<const std::function<void()>> wake =
            wakeups_[i].lock()) {
      (*wake)();
      // Not a self-move: libstdc++'s weak_ptr move assignment empties a
      // weak_ptr moved onto itself, which would drop the wake-up.
      if (live != i) wakeups_[live] = std::move(wakeups_[i]);
      ++live;
    }
  }
  wakeups_.resize(live);
}

void JobHistory::MaybeEvictLocked() {
  if (!ended_ || !watchers_.empty() || !log_complete_ || evicted_) return;
  std::deque<std::shared_ptr<const v1::MetricEvent>>().swap(events_);
  evicted_ = true;
}

void JobHistory::SyncLog() {
  std::shared_ptr<EventLogWriter> log;
  {
    absl::MutexLock lock(&mu_);
    if (log_ != nullptr) CheckLogLocked(log_->Flush());
    log = log_;
  }
  if (log == nullptr) return;
  absl::Status s = log->Sync();
  if (!s.ok()) LogError(absl::StrCat("job ", job_id_, ": ", s.message()));
}

void JobHistory::CloseLog() {
  std::shared_ptr<EventLogWriter> log;
  absl::MutexLock lock(&mu_);
  log_.swap(log);
  MaybeEvictLocked();
  // `log` closes here, or after a SyncLog still syncing it.
}

void JobHistory::Notify() {
  absl::MutexLock lock(&mu_);
  cv_.SignalAll();
}

int64_t JobHistory::InMemory() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(events_.size());
}

absl::Status JobHistory::Reload() {
  int64_t first, next;
  {
    absl::MutexLock lock(&mu_);
    if (!evicted_) return absl::OkStatus();
    first = first_seq_;
    next = next_seq_;
  }
  // An ended job appends nothing, so [first, next) is stable. Read outside
  // the lock; concurrent watchers may each read, the first one installs.
  std::vector<v1::MetricEvent> events = ReadEventLog(log_path_);
  std::deque<std::shared_ptr<const v1::MetricEvent>> history;
  for (v1::MetricEvent& e : events) {
    if (e.sequence() < first) continue;  // Beyond the history limit.
    if (e.sequence() != first + static_cast<int64_t>(history.size())) break;
    history.push_back(std::make_shared<const v1::MetricEvent>(std::move(e)));
  }
  if (first + static_cast<int64_t>(history.size()) != next) {
    LogError(absl::StrCat("job ", job_id_, ": event log ", log_path_, " holds ",
                          history.size(), " of events ", first, "..",
                          next - 1));
    return absl::DataLossError(absl::StrCat(
        "the event history of job ", job_id_, " is damaged (", log_path_,
        " holds ", history.size(), " of its ", next - first, " events)"));
  }
  absl::MutexLock lock(&mu_);
  if (evicted_) {
    events_.swap(history);
    evicted_ = false;
  }
  return absl::OkStatus();
}

}  // namespace nnlab::server
