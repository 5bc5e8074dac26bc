// Job history and watchers, driven directly (no gRPC, no training): replay
// then live, the from_step and every_n filters, what a slow watcher is told
// it missed, wake-ups, eviction and reloading from the event log.
#include "server/job_events.h"

#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/event_log.h"
#include "server/storage.h"
#include "tests/server/scratch_dir.h"

namespace nnlab::server {
namespace {

v1::MetricEvent Train(int64_t step) {
  v1::MetricEvent e;
  e.set_phase(v1::PHASE_TRAIN);
  e.set_step(step);
  return e;
}

v1::MetricEvent Eval(int64_t step) {
  v1::MetricEvent e;
  e.set_phase(v1::PHASE_EVAL);
  e.set_step(step);
  return e;
}

v1::MetricEvent State(int64_t step, v1::JobState state) {
  v1::MetricEvent e;
  e.set_phase(v1::PHASE_STATE);
  e.set_step(step);
  e.set_job_state(state);
  return e;
}

std::shared_ptr<JobHistory> NewHistory(int64_t limit,
                                       const std::string& log = "") {
  return std::make_shared<JobHistory>("j-test", log, limit);
}

std::unique_ptr<Watcher> Watch(const std::shared_ptr<JobHistory>& h,
                               int64_t capacity, int64_t from_step = 0,
                               int64_t every_n = 1) {
  Watcher::Options o;
  o.from_step = from_step;
  o.every_n = every_n;
  auto w = Watcher::Create(h, o, capacity);
  EXPECT_TRUE(w.ok()) << w.status();
  return w.ok() ? *std::move(w) : nullptr;
}

// What one Next returned.
struct Got {
  Watcher::Result result;
  v1::MetricEvent event;
};
Got Next(Watcher& w) {
  Got g;
  g.result = w.Next(absl::ZeroDuration(), &g.event);
  return g;
}

TEST(JobEventsTest, ReplaysFromAStepThenFollowsLiveEventsToTheEnd) {
  auto h = NewHistory(1000);
  for (int s = 1; s <= 5; ++s) h->Append(Train(s));
  auto w = Watch(h, 100, /*from_step=*/3);
  for (int s = 3; s <= 5; ++s) {
    Got g = Next(*w);
    ASSERT_EQ(g.result, Watcher::Result::kEvent);
    EXPECT_EQ(g.event.step(), s);
    EXPECT_EQ(g.event.sequence(), s - 1);  // Numbered from 0 on append.
    EXPECT_EQ(g.event.dropped_events(), 0);
    EXPECT_TRUE(g.event.has_time());
  }
  EXPECT_EQ(Next(*w).result, Watcher::Result::kTimeout);
  h->Append(Train(6));
  EXPECT_EQ(Next(*w).event.step(), 6);
  h->End(State(6, v1::JOB_STATE_COMPLETED));
  Got last = Next(*w);
  ASSERT_EQ(last.result, Watcher::Result::kEvent);
  EXPECT_EQ(last.event.job_state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(Next(*w).result, Watcher::Result::kEnded);
  // A watcher from past the end still learns how the job ended.
  auto late = Watch(h, 100, /*from_step=*/1000);
  EXPECT_EQ(Next(*late).event.job_state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(Next(*late).result, Watcher::Result::kEnded);
}

TEST(JobEventsTest, EveryNThinsTrainEventsOnly) {
  auto h = NewHistory(1000);
  for (int s = 1; s <= 20; ++s) h->Append(Train(s));
  h->Append(Eval(20));
  auto w = Watch(h, 1000, 0, /*every_n=*/10);
  Got a = Next(*w), b = Next(*w), c = Next(*w);
  EXPECT_EQ(a.event.step(), 10);
  EXPECT_EQ(b.event.step(), 20);
  EXPECT_EQ(c.event.phase(), v1::PHASE_EVAL);
  // Down-sampling is not dropping.
  EXPECT_EQ(a.event.dropped_events() + b.event.dropped_events() +
                c.event.dropped_events(),
            0);
  EXPECT_EQ(Next(*w).result, Watcher::Result::kTimeout);
}

// A live watcher at every_n = 10 and a buffer of 100 that does not read
// while 1000 train events arrive skips the oldest 900 (steps 1..900), of
// which it would have received 90. Before the fix it was told 900.
TEST(JobEventsTest, SlowWatcherCountsOnlyEventsItWouldHaveReceived) {
  auto h = NewHistory(100000);
  auto w = Watch(h, /*capacity=*/100, 0, /*every_n=*/10);
  for (int s = 1; s <= 1000; ++s) h->Append(Train(s));
  Got g = Next(*w);
  ASSERT_EQ(g.result, Watcher::Result::kEvent);
  EXPECT_EQ(g.event.step(), 910);
  EXPECT_EQ(g.event.dropped_events(), 90);
  // The rest arrive without further losses: 920, 930, ..., 1000.
  for (int s = 920; s <= 1000; s += 10) {
    Got n = Next(*w);
    EXPECT_EQ(n.event.step(), s);
    EXPECT_EQ(n.event.dropped_events(), 0);
  }
  EXPECT_EQ(Next(*w).result, Watcher::Result::kTimeout);
}

// Events every_n never filters (eval, state) count when skipped; at
// every_n = 1 every skipped event counts.
TEST(JobEventsTest, SkippedEvalAndStateEventsCount) {
  auto h = NewHistory(100000);
  auto thin = Watch(h, /*capacity=*/3, 0, /*every_n=*/10);
  auto all = Watch(h, /*capacity=*/3);
  h->Append(State(0, v1::JOB_STATE_RUNNING));  // Wanted by both.
  for (int s = 1; s <= 12; ++s) {
    h->Append(Train(s));             // Step 10 wanted by `thin`.
    if (s == 5) h->Append(Eval(5));  // Wanted by both.
  }
  // 14 events; a buffer of 3 skips the oldest 11: the state, steps 1..5,
  // the eval and steps 6..9. Of those `thin` wanted the state and the eval.
  Got t = Next(*thin);
  EXPECT_EQ(t.event.step(), 10);
  EXPECT_EQ(t.event.dropped_events(), 2);
  EXPECT_EQ(Next(*thin).result, Watcher::Result::kTimeout);  // 11, 12.
  Got a = Next(*all);
  EXPECT_EQ(a.event.step(), 10);
  EXPECT_EQ(a.event.dropped_events(), 11);
  EXPECT_EQ(Next(*all).event.step(), 11);
}

// The history limit overtaking a watcher that replays slowly: the events
// that leave memory before it reads them are missed, and counted only if
// it would have received them.
TEST(JobEventsTest, HistoryLimitOvertakingCountsOnlyWantedEvents) {
  auto h = NewHistory(/*limit=*/50);
  auto thin = Watch(h, /*capacity=*/1000, 0, /*every_n=*/10);
  auto late = Watch(h, /*capacity=*/1000, /*from_step=*/100);
  for (int s = 1; s <= 200; ++s) h->Append(Train(s));
  EXPECT_EQ(h->InMemory(), 50);
  // Steps 1..150 left memory: 15 multiples of 10; 51 at or after step 100.
  Got t = Next(*thin);
  EXPECT_EQ(t.event.step(), 160);
  EXPECT_EQ(t.event.dropped_events(), 15);
  Got l = Next(*late);
  EXPECT_EQ(l.event.step(), 151);
  EXPECT_EQ(l.event.dropped_events(), 51);
  EXPECT_EQ(Next(*late).event.dropped_events(), 0);
}

TEST(JobEventsTest, WakeupsRunOnAppendUntilUnregistered) {
  auto h = NewHistory(1000);
  auto w = Watch(h, 100);
  auto calls = std::make_shared<std::atomic<int>>(0);
  w->SetWakeup([calls] { ++*calls; });
  h->Append(Train(1));
  h->AppendAll({Train(2), Train(3)});  // One wake-up for both.
  EXPECT_EQ(calls->load(), 2);
  w->SetWakeup(nullptr);
  h->Append(Train(4));
  EXPECT_EQ(calls->load(), 2);
  w->SetWakeup([calls] { ++*calls; });
  w.reset();  // Destroying the watcher unregisters too.
  h->End(State(4, v1::JOB_STATE_COMPLETED));
  EXPECT_EQ(calls->load(), 2);
}

TEST(JobEventsTest, EndedHistoryLeavesMemoryAndIsReadBackFromTheLog) {
  testing::ScratchDir dir;
  const std::string log = dir.File("j.events");
  auto h = NewHistory(1000, log);
  ASSERT_TRUE(h->Restore({Train(1), Train(2)}, /*append=*/true).ok());
  auto w = Watch(h, 100);
  h->Append(Train(3));
  h->End(State(3, v1::JOB_STATE_COMPLETED));
  h->SyncLog();
  h->CloseLog();
  EXPECT_EQ(h->InMemory(), 4);  // Watched: stays.
  w.reset();
  EXPECT_EQ(h->InMemory(), 0);  // Ended, unwatched, on disk: evicted.
  auto again = Watch(h, 100);
  EXPECT_EQ(h->InMemory(), 4);
  std::vector<int64_t> seqs;
  Got g;
  while ((g = Next(*again)).result == Watcher::Result::kEvent) {
    seqs.push_back(g.event.sequence());
  }
  EXPECT_EQ(g.result, Watcher::Result::kEnded);
  EXPECT_EQ(seqs, (std::vector<int64_t>{0, 1, 2, 3}));
  again.reset();
  EXPECT_EQ(h->InMemory(), 0);
  // A log damaged after eviction (cut inside its second record): DataLoss
  // naming how much is missing.
  const std::string data = *ReadFile(log);
  const size_t first = 20 + static_cast<unsigned char>(data[8]);
  ASSERT_EQ(truncate(log.c_str(), first + 5), 0);
  Watcher::Options o;
  auto bad = Watcher::Create(h, o, 100);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find("1 of its 4 events"),
            absl::string_view::npos)
      << bad.status();
  EXPECT_EQ(h->InMemory(), 0);
}

TEST(JobEventsTest, SyncAndEndWriteTheBufferedEvents) {
  testing::ScratchDir dir;
  const std::string log = dir.File("j.events");
  auto h = NewHistory(1000, log);
  ASSERT_TRUE(h->Restore({Train(1), Train(2)}, /*append=*/true).ok());
  h->Append(Train(3));
  EXPECT_EQ(ReadEventLog(log).size(), 2u);  // Buffered.
  h->SyncLog();
  EXPECT_EQ(ReadEventLog(log).size(), 3u);
  h->Append(Train(4));
  // Ended and unwatched, the history may leave memory at once: the log
  // holds all of it before the log is closed.
  h->End(State(4, v1::JOB_STATE_COMPLETED));
  const std::vector<v1::MetricEvent> events = ReadEventLog(log);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[3].step(), 4);
  EXPECT_EQ(events[4].job_state(), v1::JOB_STATE_COMPLETED);
  h->CloseLog();
  EXPECT_EQ(h->InMemory(), 0);  // Complete on disk: evicted.
}

TEST(JobEventsTest, HistoryWithoutAWorkingLogStaysInMemory) {
  testing::ScratchDir dir;
  // The log cannot be created (no such directory): Restore reports it and
  // the history never leaves memory, since nothing could read it back.
  auto h = NewHistory(1000, dir.File("missing/j.events"));
  EXPECT_FALSE(h->Restore({Train(1)}, /*append=*/true).ok());
  h->End(State(1, v1::JOB_STATE_FAILED));
  h->CloseLog();
  EXPECT_EQ(h->InMemory(), 2);
  auto w = Watch(h, 100);
  EXPECT_EQ(Next(*w).event.step(), 1);
}

TEST(JobEventsTest, NegativeOptionsAreInvalid) {
  auto h = NewHistory(10);
  Watcher::Options o;
  o.from_step = -1;
  EXPECT_EQ(Watcher::Create(h, o, 10).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.from_step = 0;
  o.every_n = -1;
  absl::Status s = Watcher::Create(h, o, 10).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("every_n"), absl::string_view::npos);
}

}  // namespace
}  // namespace nnlab::server
