// Training checkpoints on disk, <dir>/<id>.ckpt and the one before it,
// <id>.ckpt.prev, and the thread a run writes them on.
//
// A checkpoint file is a storage.h record (atomic, checksummed). Writing a
// new one keeps the last as .prev until the next replaces it: if the newest
// turns out unreadable (a disk that lied, a flipped bit) the job falls back
// to the one before instead of failing.
#ifndef NNLAB_SERVER_CHECKPOINT_STORE_H_
#define NNLAB_SERVER_CHECKPOINT_STORE_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/storage.pb.h"

namespace nnlab::server {

// The checkpoint files of the jobs in one directory. Thread-safe for
// different jobs; one writer per job at a time.
class CheckpointStore {
 public:
  explicit CheckpointStore(std::string dir) : dir_(std::move(dir)) {}

  // Writes job `id`'s checkpoint atomically and durably, keeping the
  // previous one as <id>.ckpt.prev. On failure (disk full, I/O error) the
  // error names the file, and the previous checkpoint stays the newest.
  absl::Status Write(const std::string& id, const StoredCheckpoint& ckpt);
  // The newest readable checkpoint of job `id`, falling back to the
  // previous one (with a log line naming what was wrong with the newest).
  // NotFound if there is none; DataLoss if every one there is corrupt or
  // belongs to another job.
  absl::Status Read(const std::string& id, StoredCheckpoint* out) const;
  // Removes <id>.ckpt.prev (a finished job never falls back); OK if absent.
  absl::Status RemovePrevious(const std::string& id);

 private:
  std::string PathFor(const std::string& id, absl::string_view ext) const;
  const std::string dir_;
};

// Writes one run's checkpoints on a thread of its own, so training does not
// wait for the disk (each checkpoint syncs the event log, the checkpoint
// file and the job record) nor for the record to be built (copying every
// tensor of a captured RunState into it takes longer than the capture).
// Only the newest checkpoint matters: one still waiting when the next
// arrives is dropped, so at most two are held. A crash loses at most the
// one being written; the job then resumes from the one before, which its
// record still names.
//
// Thread-safe.
class CheckpointWriter {
 public:
  // Makes a checkpoint the job's durable resume point; runs on the writer's
  // thread, one call at a time.
  using Commit = std::function<absl::Status(const StoredCheckpoint&)>;
  explicit CheckpointWriter(Commit commit);
  // Writes what is waiting, then stops.
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // Makes a checkpoint, once, on the writer's thread: it must own what it
  // uses.
  using Build = std::function<StoredCheckpoint()>;

  // Queues a checkpoint for writing, replacing one still waiting. Returns
  // the first failure of an earlier write, if any: the run should stop, its
  // checkpoints are not kept.
  absl::Status Submit(Build build);
  absl::Status Submit(std::unique_ptr<StoredCheckpoint> ckpt);
  // Waits until every submitted checkpoint is written; the first failure.
  absl::Status Flush();

 private:
  bool Idle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return pending_ == nullptr && !writing_;
  }
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return pending_ != nullptr || done_;
  }
  void Loop();

  const Commit commit_;
  absl::Mutex mu_;
  Build pending_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;  // Last: starts once the members above exist.
};

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_CHECKPOINT_STORE_H_
