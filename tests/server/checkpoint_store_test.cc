// Checkpoint files (newest and previous, fallback, failures) and the
// writer thread (order, coalescing, failures), without gRPC or training.
#include "server/checkpoint_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/storage.h"
#include "tests/server/scratch_dir.h"

namespace nnlab::server {
namespace {

StoredCheckpoint Ckpt(const std::string& id, int64_t step) {
  StoredCheckpoint c;
  c.set_job_id(id);
  c.mutable_trainer()->set_step(step);
  c.set_optimizer_step(step);
  return c;
}

void FlipByte(const std::string& path, size_t at) {
  std::string data = *ReadFile(path);
  data[at] ^= 0x20;
  ASSERT_TRUE(WriteFileAtomic(path, data).ok());
}

TEST(CheckpointStoreTest, NewestIsReadAndThePreviousIsKept) {
  testing::ScratchDir dir;
  CheckpointStore store(dir.path());
  StoredCheckpoint out;
  EXPECT_EQ(store.Read("j-1", &out).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store.Write("j-1", Ckpt("j-1", 10)).ok());
  ASSERT_TRUE(store.Write("j-1", Ckpt("j-1", 20)).ok());
  ASSERT_TRUE(store.Read("j-1", &out).ok());
  EXPECT_EQ(out.trainer().step(), 20);
  StoredCheckpoint prev;
  ASSERT_TRUE(ReadRecord(dir.File("j-1.ckpt.prev"), &prev).ok());
  EXPECT_EQ(prev.trainer().step(), 10);
  // A third write moves 20 to .prev; 10 is gone.
  ASSERT_TRUE(store.Write("j-1", Ckpt("j-1", 30)).ok());
  ASSERT_TRUE(ReadRecord(dir.File("j-1.ckpt.prev"), &prev).ok());
  EXPECT_EQ(prev.trainer().step(), 20);
  // A finished job drops the previous one.
  ASSERT_TRUE(store.RemovePrevious("j-1").ok());
  EXPECT_FALSE(ReadFile(dir.File("j-1.ckpt.prev")).ok());
  EXPECT_TRUE(store.RemovePrevious("j-1").ok());  // Absent is fine.
  ASSERT_TRUE(store.Read("j-1", &out).ok());
  EXPECT_EQ(out.trainer().step(), 30);
}

TEST(CheckpointStoreTest, CorruptNewestFallsBackToThePrevious) {
  testing::ScratchDir dir;
  CheckpointStore store(dir.path());
  ASSERT_TRUE(store.Write("j-1", Ckpt("j-1", 10)).ok());
  ASSERT_TRUE(store.Write("j-1", Ckpt("j-1", 20)).ok());
  FlipByte(dir.File("j-1.ckpt"), 25);
  StoredCheckpoint out;
  ASSERT_TRUE(store.Read("j-1", &out).ok());
  EXPECT_EQ(out.trainer().step(), 10);
  // Both unreadable: DataLoss saying why.
  FlipByte(dir.File("j-1.ckpt.prev"), 25);
  absl::Status s = store.Read("j-1", &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("no readable checkpoint of job j-1"),
            absl::string_view::npos)
      << s;
}

TEST(CheckpointStoreTest, AnotherJobsCheckpointIsNotUsed) {
  testing::ScratchDir dir;
  CheckpointStore store(dir.path());
  ASSERT_TRUE(store.Write("j-1", Ckpt("j-2", 10)).ok());
  StoredCheckpoint out;
  absl::Status s = store.Read("j-1", &out);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("belongs to job \"j-2\""), absl::string_view::npos)
      << s;
}

TEST(CheckpointStoreTest, FailedWriteIsReportedAndThePreviousStaysNewest) {
  testing::ScratchDir dir;
  CheckpointStore store(dir.path());
  ASSERT_TRUE(store.Write("j-1", Ckpt("j-1", 10)).ok());
  // Make the next write fail after the newest has moved aside: storage.h
  // writes "<path>.<pid>.<n>.tmp" first, so directories under those names
  // (n counts this process's atomic writes) make creating it fail.
  for (int n = 0; n < 200; ++n) {
    const std::string tmp =
        absl::StrCat(dir.File("j-1.ckpt"), ".", getpid(), ".", n, ".tmp");
    ASSERT_EQ(mkdir(tmp.c_str(), 0755), 0) << tmp;
  }
  absl::Status s = store.Write("j-1", Ckpt("j-1", 20));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("j-1.ckpt"), absl::string_view::npos) << s;
  // Step 10 is back in place as the newest checkpoint.
  StoredCheckpoint out;
  ASSERT_TRUE(ReadRecord(dir.File("j-1.ckpt"), &out).ok());
  EXPECT_EQ(out.trainer().step(), 10);
  ASSERT_TRUE(store.Read("j-1", &out).ok());
  EXPECT_EQ(out.trainer().step(), 10);
  // A directory that does not exist fails too, naming the file.
  CheckpointStore nowhere(dir.File("missing"));
  s = nowhere.Write("j-1", Ckpt("j-1", 10));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("missing/j-1.ckpt"), absl::string_view::npos) << s;
}

TEST(CheckpointWriterTest, WritesInOrderAndFlushWaits) {
  std::vector<int64_t> written;  // Only the writer thread appends.
  {
    CheckpointWriter writer([&](const StoredCheckpoint& c) {
      written.push_back(c.trainer().step());
      return absl::OkStatus();
    });
    for (int64_t step : {1, 2, 3}) {
      ASSERT_TRUE(
          writer.Submit(std::make_unique<StoredCheckpoint>(Ckpt("j", step)))
              .ok());
      ASSERT_TRUE(writer.Flush().ok());
      EXPECT_EQ(written.back(), step);
    }
    ASSERT_TRUE(
        writer.Submit(std::make_unique<StoredCheckpoint>(Ckpt("j", 4))).ok());
  }  // The destructor writes what waits.
  EXPECT_EQ(written, (std::vector<int64_t>{1, 2, 3, 4}));
}

TEST(CheckpointWriterTest, OnlyTheNewestWaitingCheckpointIsWritten) {
  absl::Notification started, release;
  std::vector<int64_t> written;
  CheckpointWriter writer([&](const StoredCheckpoint& c) {
    written.push_back(c.trainer().step());
    if (c.trainer().step() == 1) {
      started.Notify();
      release.WaitForNotification();
    }
    return absl::OkStatus();
  });
  ASSERT_TRUE(
      writer.Submit(std::make_unique<StoredCheckpoint>(Ckpt("j", 1))).ok());
  started.WaitForNotification();  // 1 is being written.
  for (int64_t step : {2, 3, 4}) {
    ASSERT_TRUE(
        writer.Submit(std::make_unique<StoredCheckpoint>(Ckpt("j", step)))
            .ok());
  }
  release.Notify();
  ASSERT_TRUE(writer.Flush().ok());
  EXPECT_EQ(written, (std::vector<int64_t>{1, 4}));
}

TEST(CheckpointWriterTest, ARecordToBuildIsBuiltOnTheWritersThread) {
  const std::thread::id submitter = std::this_thread::get_id();
  std::thread::id built_on, committed_on;
  std::vector<int64_t> written;
  CheckpointWriter writer([&](const StoredCheckpoint& c) {
    committed_on = std::this_thread::get_id();
    written.push_back(c.trainer().step());
    return absl::OkStatus();
  });
  ASSERT_TRUE(writer
                  .Submit([&] {
                    built_on = std::this_thread::get_id();
                    return Ckpt("j", 7);
                  })
                  .ok());
  ASSERT_TRUE(writer.Flush().ok());
  EXPECT_EQ(written, (std::vector<int64_t>{7}));
  EXPECT_NE(built_on, submitter);
  EXPECT_EQ(built_on, committed_on);
}

TEST(CheckpointWriterTest, AFailedWriteIsReportedBySubmitAndFlush) {
  int calls = 0;
  CheckpointWriter writer([&](const StoredCheckpoint& c) {
    ++calls;
    if (c.trainer().step() == 2) {
      return absl::ResourceExhaustedError("disk full at step 2");
    }
    return absl::OkStatus();
  });
  ASSERT_TRUE(
      writer.Submit(std::make_unique<StoredCheckpoint>(Ckpt("j", 1))).ok());
  ASSERT_TRUE(writer.Flush().ok());
  ASSERT_TRUE(
      writer.Submit(std::make_unique<StoredCheckpoint>(Ckpt("j", 2))).ok());
  absl::Status f = writer.Flush();
  EXPECT_EQ(f.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(f.message(), "disk full at step 2");
  // The first failure sticks, although later writes succeed.
  absl::Status s =
      writer.Submit(std::make_unique<StoredCheckpoint>(Ckpt("j", 3)));
  EXPECT_EQ(s.message(), "disk full at step 2");
  EXPECT_EQ(writer.Flush().message(), "disk full at step 2");
  EXPECT_EQ(calls, 3);
}

}  // namespace
}  // namespace nnlab::server
