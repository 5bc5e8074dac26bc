// HTTP/2 keepalive of nnlabd: a watcher whose stream stays quiet (its job
// is paused) survives its client's keepalive pings, while a
// client pinging far faster than the server permits is sent GOAWAY
// ENHANCE_YOUR_CALM, which ends its calls with UNAVAILABLE. Timings are
// scaled down from the defaults (30 s / 10 s) to fractions of a second.
#include <atomic>
#include <chrono>
#include <thread>

#include "gtest/gtest.h"
#include "tests/server/server_test_util.h"

namespace nnlab::testing {
namespace {

using ::grpc::StatusCode;

// A server with short keepalive timings and a paused job to watch.
class KeepaliveTest : public ::testing::Test {
 protected:
  void StartServer(absl::Duration min_client_ping_interval,
                   absl::Duration keepalive_time = absl::Milliseconds(300)) {
    server::ServerOptions o;
    o.keepalive_time = keepalive_time;
    o.keepalive_timeout = absl::Seconds(1);
    o.min_client_ping_interval = min_client_ping_interval;
    o.max_ping_strikes = 2;
    server_ = std::make_unique<TestServer>(o);
    Client c = server_->MakeClient();
    const std::string ds = UploadBlobs(c, 256, 0);
    CreateModel(c, MlpSpec(2, 8, 2), "m");
    v1::JobSpec spec;
    spec.set_model_id("m");
    spec.set_dataset(ds);
    spec.set_epochs(10000);
    spec.set_batch_size(16);
    job_ = StartJob(c, spec).job_id();
    v1::PauseJobRequest p;
    p.set_job_id(job_);
    v1::Job j;
    auto ctx = Ctx(10);
    ASSERT_TRUE(c.training->PauseJob(ctx.get(), p, &j).ok());
    ASSERT_EQ(WaitForJob(c, job_).state(), v1::JOB_STATE_PAUSED);
  }

  std::shared_ptr<grpc::Channel> Channel(grpc::ChannelArguments args) {
    return grpc::CreateCustomChannel(server_->address(),
                                     grpc::InsecureChannelCredentials(), args);
  }

  // Watches the paused job for `watch`; returns the stream's status (OK
  // if it was still open when the watch ended) and counts events.
  grpc::Status Watch(const std::shared_ptr<grpc::Channel>& ch,
                     absl::Duration watch, int* events) {
    Client c(ch);
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(60));
    v1::StreamMetricsRequest req;
    req.set_job_id(job_);
    auto reader = c.training->StreamMetrics(&ctx, req);
    std::atomic<bool> done{false};
    std::thread stopper([&] {
      const absl::Time end = absl::Now() + watch;
      while (!done.load() && absl::Now() < end)
        absl::SleepFor(absl::Milliseconds(20));
      if (!done.load()) ctx.TryCancel();
    });
    v1::MetricEvent e;
    *events = 0;
    while (reader->Read(&e)) ++*events;
    done = true;
    stopper.join();
    grpc::Status s = reader->Finish();
    // Cancelled by us at the end of the watch: the stream had survived.
    if (s.error_code() == StatusCode::CANCELLED) return grpc::Status::OK;
    return s;
  }

  std::unique_ptr<TestServer> server_;
  std::string job_;
};

TEST_F(KeepaliveTest, QuietWatcherSurvivesKeepaliveRounds) {
  // The server's own pings would stand in for the client's (any frame
  // received defers a keepalive ping), so they are made rare here.
  StartServer(absl::Seconds(1), /*keepalive_time=*/absl::Seconds(20));
  // The client pings too, within the interval the server permits.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 1500);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 1000);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  auto ch = Channel(args);
  int events = 0;
  const absl::Time t0 = absl::Now();
  grpc::Status s = Watch(ch, absl::Seconds(6), &events);
  EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  EXPECT_GE(absl::Now() - t0, absl::Seconds(6));
  // The replayed history (state changes) arrived; then the stream was
  // quiet through 4 client pings (3 of them strikes under gRPC's default
  // 5-minute policy, which would have closed the connection).
  EXPECT_GE(events, 2);
  // The connection is still usable.
  Client c(ch);
  v1::GetJobRequest g;
  g.set_job_id(job_);
  v1::Job j;
  auto ctx = Ctx(5);
  EXPECT_TRUE(c.training->GetJob(ctx.get(), g, &j).ok());
}

TEST_F(KeepaliveTest, AbusivePingerGetsGoaway) {
  StartServer(absl::Seconds(5));
  // Asks for a ping every 10 ms with no data (gRPC's client sends one per
  // second at most), far more often than the 5 s the server permits.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_HTTP2_MIN_SENT_PING_INTERVAL_WITHOUT_DATA_MS, 10);
  auto ch = Channel(args);
  int events = 0;
  const absl::Time t0 = absl::Now();
  grpc::Status s = Watch(ch, absl::Seconds(8), &events);
  EXPECT_EQ(s.error_code(), StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_LT(absl::Now() - t0, absl::Seconds(8));
  // A well-behaved client on its own connection is unaffected.
  Client c = server_->MakeClient();
  v1::GetJobRequest g;
  g.set_job_id(job_);
  v1::Job j;
  auto ctx = Ctx(5);
  EXPECT_TRUE(c.training->GetJob(ctx.get(), g, &j).ok());
}

}  // namespace
}  // namespace nnlab::testing
