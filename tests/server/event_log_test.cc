// The per-job event log: the writer appends framed records, the reader
// returns every whole record and stops at a torn or corrupt one.
#include "server/event_log.h"

#include <unistd.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/storage.h"
#include "tests/server/scratch_dir.h"

namespace nnlab::server {
namespace {

v1::MetricEvent Event(int64_t step, double loss) {
  v1::MetricEvent e;
  e.set_phase(v1::PHASE_TRAIN);
  e.set_sequence(step);
  e.set_step(step);
  e.set_loss(loss);
  return e;
}

std::vector<int64_t> Steps(const std::vector<v1::MetricEvent>& events) {
  std::vector<int64_t> steps;
  for (const auto& e : events) steps.push_back(e.step());
  return steps;
}

// A log of `n` events written through the writer; the file's size after
// each record goes to `ends` (ends[i]: the size holding records 0..i).
std::string WriteLog(const testing::ScratchDir& dir, int n,
                     std::vector<size_t>* ends) {
  const std::string path = dir.File("j.events");
  EXPECT_TRUE(WriteEventLog(path, {}).ok());
  auto w = EventLogWriter::Open(path);
  EXPECT_TRUE(w.ok()) << w.status();
  for (int i = 0; i < n; ++i) {
    EXPECT_TRUE((*w)->Append(Event(i + 1, 0.5 * i)).ok());
    EXPECT_TRUE((*w)->Flush().ok());
    ends->push_back(ReadFile(path)->size());
  }
  EXPECT_TRUE((*w)->Sync().ok());
  return path;
}

TEST(EventLogTest, WriterAppendsWhatTheReaderReturns) {
  testing::ScratchDir dir;
  std::vector<size_t> ends;
  const std::string path = WriteLog(dir, 5, &ends);
  const std::vector<v1::MetricEvent> events = ReadEventLog(path);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(Steps(events), (std::vector<int64_t>{1, 2, 3, 4, 5}));
  EXPECT_DOUBLE_EQ(events[3].loss(), 1.5);
  EXPECT_EQ(events[3].phase(), v1::PHASE_TRAIN);
}

TEST(EventLogTest, TornTailIsRecoveredUpToTheLastWholeRecord) {
  testing::ScratchDir dir;
  std::vector<size_t> ends;
  const std::string path = WriteLog(dir, 3, &ends);
  const std::string data = *ReadFile(path);
  ASSERT_EQ(data.size(), ends[2]);
  // Every cut inside the third record leaves the first two; a cut inside
  // the second leaves one; inside the first, none.
  for (size_t cut = 0; cut <= data.size(); ++cut) {
    const size_t whole = cut >= ends[2]   ? 3
                         : cut >= ends[1] ? 2
                         : cut >= ends[0] ? 1
                                          : 0;
    EXPECT_EQ(ParseEventLog(absl::string_view(data).substr(0, cut)).size(),
              whole)
        << "cut at " << cut;
  }
  // The same through a file a crash truncated.
  ASSERT_EQ(truncate(path.c_str(), ends[1] + 7), 0);
  EXPECT_EQ(Steps(ReadEventLog(path)), (std::vector<int64_t>{1, 2}));
}

TEST(EventLogTest, ReadingStopsAtACorruptRecord) {
  testing::ScratchDir dir;
  std::vector<size_t> ends;
  const std::string path = WriteLog(dir, 3, &ends);
  std::string data = *ReadFile(path);
  // A flipped bit in the second record's payload: its checksum fails, and
  // the intact third record behind it is not trusted either.
  data[ends[1] - 2] ^= 0x04;
  EXPECT_EQ(Steps(ParseEventLog(data)), (std::vector<int64_t>{1}));
  // A length that runs past the end reads as a torn tail.
  data = *ReadFile(path);
  data[ends[0] + 8 + 3] = '\x7f';
  EXPECT_EQ(Steps(ParseEventLog(data)), (std::vector<int64_t>{1}));
}

TEST(EventLogTest, WriteEventLogReplacesTheWholeLog) {
  testing::ScratchDir dir;
  std::vector<size_t> ends;
  const std::string path = WriteLog(dir, 4, &ends);
  ASSERT_TRUE(WriteEventLog(path, {Event(7, 1), Event(8, 2)}).ok());
  EXPECT_EQ(Steps(ReadEventLog(path)), (std::vector<int64_t>{7, 8}));
  // An appender opened afterwards continues the new log.
  auto w = EventLogWriter::Open(path);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append(Event(9, 3)).ok());
  ASSERT_TRUE((*w)->Flush().ok());
  EXPECT_EQ(Steps(ReadEventLog(path)), (std::vector<int64_t>{7, 8, 9}));
  // Empty list: an empty log.
  ASSERT_TRUE(WriteEventLog(path, {}).ok());
  EXPECT_EQ(ReadFile(path)->size(), 0u);
}

TEST(EventLogTest, MissingLogsAndFailedAppendsAreReported) {
  testing::ScratchDir dir;
  // The writer does not create logs: a job's log is created with its job.
  EXPECT_FALSE(EventLogWriter::Open(dir.File("none.events")).ok());
  EXPECT_TRUE(ReadEventLog(dir.File("none.events")).empty());
  // A full disk: /dev/full fails every write with ENOSPC. The failure
  // shows when the buffer is written, and sticks: nothing is written after
  // a record that may be torn.
  auto w = EventLogWriter::Open("/dev/full");
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE((*w)->Append(Event(1, 0)).ok());
  absl::Status s = (*w)->Flush();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("/dev/full"), absl::string_view::npos) << s;
  EXPECT_EQ((*w)->Append(Event(2, 0)), s);
  EXPECT_EQ((*w)->Flush(), s);
}

TEST(EventLogTest, RecordsAreBufferedUntilFlushFullOrClosed) {
  testing::ScratchDir dir;
  const std::string path = dir.File("j.events");
  ASSERT_TRUE(WriteEventLog(path, {}).ok());
  auto w = EventLogWriter::Open(path);
  ASSERT_TRUE(w.ok()) << w.status();
  // Records of one size: step 1 and a nonzero loss each.
  int n = 0;
  auto append = [&] { return (*w)->Append(Event(1, ++n)); };
  ASSERT_TRUE(append().ok());
  EXPECT_EQ(ReadFile(path)->size(), 0u);
  ASSERT_TRUE((*w)->Flush().ok());
  EXPECT_EQ(ReadEventLog(path).size(), 1u);
  // The Append that fills the buffer writes it: whole records only.
  const size_t record = ReadFile(path)->size();
  const int fill =
      static_cast<int>((EventLogWriter::kBufferBytes + record - 1) / record);
  for (int i = 0; i < fill - 1; ++i) ASSERT_TRUE(append().ok());
  EXPECT_EQ(ReadEventLog(path).size(), 1u);
  ASSERT_TRUE(append().ok());
  EXPECT_EQ(ReadEventLog(path).size(), 1u + fill);
  // Closing writes the rest.
  ASSERT_TRUE(append().ok());
  EXPECT_EQ(ReadEventLog(path).size(), 1u + fill);
  w->reset();
  const std::vector<v1::MetricEvent> all = ReadEventLog(path);
  ASSERT_EQ(all.size(), 2u + fill);
  EXPECT_EQ(all.back().loss(), n);
}

}  // namespace
}  // namespace nnlab::server
