#include "server/checkpoint_store.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/log.h"
#include "server/storage.h"
#include "server/telemetry.h"

namespace nnlab::server {

std::string CheckpointStore::PathFor(const std::string& id,
                                     absl::string_view ext) const {
  return absl::StrCat(dir_, "/", id, ext);
}

absl::Status CheckpointStore::Write(const std::string& id,
                                    const StoredCheckpoint& ckpt) {
  const std::string path = PathFor(id, ".ckpt");
  const std::string prev = PathFor(id, ".ckpt.prev");
  const bool had = rename(path.c_str(), prev.c_str()) == 0;
  const absl::Time start = absl::Now();
  absl::Status s = WriteRecord(path, ckpt);
  Telemetry().checkpoint_write_seconds.Observe(
      absl::ToDoubleSeconds(absl::Now() - start));
  if (!s.ok() && had && rename(prev.c_str(), path.c_str()) != 0) {
    LogError(absl::StrCat("job ", id, ": cannot restore ", prev, ": ",
                          std::strerror(errno)));
  }
  return s;
}

absl::Status CheckpointStore::Read(const std::string& id,
                                   StoredCheckpoint* out) const {
  std::string problems;
  for (absl::string_view ext : {".ckpt", ".ckpt.prev"}) {
    const std::string path = PathFor(id, ext);
    StoredCheckpoint ckpt;
    absl::Status s = ReadRecord(path, &ckpt);
    if (s.ok() && ckpt.job_id() != id) {
      s = absl::DataLossError(absl::StrCat(path, ": belongs to job \"",
                                           ckpt.job_id().substr(0, 64), "\""));
    }
    if (s.ok()) {
      if (!problems.empty()) {
        LogError(absl::StrCat("job ", id, ": using the previous checkpoint (",
                              path, ", step ", ckpt.trainer().step(), "); ",
                              problems));
      }
      *out = std::move(ckpt);
      return absl::OkStatus();
    }
    if (absl::IsNotFound(s)) continue;
    LogError(absl::StrCat("job ", id, ": unusable checkpoint: ", s.ToString()));
    absl::StrAppend(&problems, problems.empty() ? "" : "; ", s.message());
  }
  if (problems.empty()) {
    return absl::NotFoundError(absl::StrCat("job ", id, " has no checkpoint"));
  }
  return absl::DataLossError(
      absl::StrCat("no readable checkpoint of job ", id, ": ", problems));
}

absl::Status CheckpointStore::RemovePrevious(const std::string& id) {
  return RemoveFile(PathFor(id, ".ckpt.prev"));
}

CheckpointWriter::CheckpointWriter(Commit commit)
    : commit_(std::move(commit)), thread_([this] { Loop(); }) {}

CheckpointWriter::~CheckpointWriter() {
  // A run that ends normally has flushed and reported the result already;
  // one that returns early has failed for another reason.
  Flush().IgnoreError();
  {
    absl::MutexLock lock(&mu_);
    done_ = true;
  }
  thread_.join();
}

absl::Status CheckpointWriter::Submit(Build build) {
  absl::MutexLock lock(&mu_);
  pending_ = std::move(build);
  return error_;
}

absl::Status CheckpointWriter::Submit(std::unique_ptr<StoredCheckpoint> ckpt) {
  // Shared: a Build is copyable. It runs once, so it can move the record.
  std::shared_ptr<StoredCheckpoint> made = std::move(ckpt);
  return Submit([made] { return std::move(*made); });
}

absl::Status CheckpointWriter::Flush() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(this, &CheckpointWriter::Idle));
  return error_;
}

void CheckpointWriter::Loop() {
  absl::MutexLock lock(&mu_);
  while (true) {
    mu_.Await(absl::Condition(this, &CheckpointWriter::HasWork));
    if (pending_ == nullptr) return;  // Done, and nothing waits.
    Build build = std::move(pending_);
    pending_ = nullptr;
    writing_ = true;
    mu_.Unlock();
    absl::Status s = commit_(build());
    build = nullptr;
    mu_.Lock();
    writing_ = false;
    if (error_.ok()) error_ = s;
  }
}

}  // namespace nnlab::server
