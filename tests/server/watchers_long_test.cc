// Two jobs at once, ten watchers (one deliberately slow) and concurrent
// inference: training never waits for a watcher, every stream is
// consistent (gap-free, or gaps reported exactly), and inference always
// sees a consistent set of weights. What watchers cost in throughput is a
// timing question, measured in bench/service_bench.cc, not asserted here.
#include <atomic>
#include <cstdio>
#include <map>
#include <thread>

#include "gtest/gtest.h"
#include "tests/server/server_test_util.h"

namespace nnlab::testing {
namespace {

v1::JobSpec MnistJob(const std::string& model) {
  v1::JobSpec spec;
  spec.set_model_id(model);
  spec.set_dataset("mnist");
  spec.mutable_optimizer()->set_kind(v1::OPTIMIZER_SGD);
  spec.mutable_optimizer()->set_learning_rate(0.1f);
  spec.set_batch_size(32);
  spec.set_epochs(2);                  // 500 steps.
  spec.set_eval_every_steps(1000000);  // Evaluate at the epochs' ends only.
  return spec;
}

struct StreamCheck {
  int64_t received = 0, dropped = 0, train = 0;
  bool ordered = true;
  grpc::Status status;
};

TEST(WatchersTest, SlowWatcherDoesNotHoldTrainingAndStreamsAreConsistent) {
  server::ServerOptions o;
  o.max_jobs = 2;
  o.blas_threads = 1;
  o.watcher_buffer = 64;  // Small, so the slow watcher overflows it.
  TestServer server(o);
  Client c = server.MakeClient();
  v1::ModelSpec spec = MlpSpec(784, 100, 10);
  for (const char* m : {"b1", "b2"}) CreateModel(c, spec, m);

  // Two jobs with 10 watchers (5 each, one slow) and a client running
  // inference on b1 throughout.
  std::string b[2] = {StartJob(c, MnistJob("b1")).job_id(),
                      StartJob(c, MnistJob("b2")).job_id()};
  std::vector<StreamCheck> checks(10);
  std::vector<std::thread> watchers;
  for (int w = 0; w < 10; ++w) {
    watchers.emplace_back([&, w] {
      // The slow watcher's channel buffers little (small HTTP/2 window, no
      // window growth), so its lag reaches the server instead of vanishing
      // into transport buffers.
      grpc::ChannelArguments args;
      if (w == 0) {
        args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
        args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
      }
      Client wc(grpc::CreateCustomChannel(
          server.address(), grpc::InsecureChannelCredentials(), args));
      v1::StreamMetricsRequest req;
      req.set_job_id(b[w % 2]);
      auto ctx = Ctx(600);
      auto reader = wc.training->StreamMetrics(ctx.get(), req);
      v1::MetricEvent e;
      int64_t last_seq = -1;
      StreamCheck& ck = checks[w];
      while (reader->Read(&e)) {
        ++ck.received;
        ck.dropped += e.dropped_events();
        // Sequence numbers advance by exactly 1 + the events reported missed.
        if (e.sequence() != last_seq + 1 + e.dropped_events())
          ck.ordered = false;
        last_seq = e.sequence();
        if (e.phase() == v1::PHASE_TRAIN) ++ck.train;
        if (w == 0) usleep(40000);  // The slow one: 25 events per second.
      }
      ck.status = reader->Finish();
    });
  }
  std::atomic<bool> done{false};
  int64_t infers = 0, inconsistent = 0, went_back = 0;
  std::thread inferrer([&] {
    Client ic = server.MakeClient();
    std::map<int64_t, std::vector<float>> seen;
    int64_t last_step = -1;
    v1::InferRequest req;
    req.set_model_id("b1");
    v1::Tensor* t = req.mutable_inputs();
    t->add_shape(4);
    t->add_shape(784);
    for (int i = 0; i < 4 * 784; ++i)
      t->add_data(float((i * 37) % 255) / 255.0f);
    while (!done.load()) {
      v1::InferResponse resp;
      auto ctx = Ctx();
      ASSERT_TRUE(ic.inference->Infer(ctx.get(), req, &resp).ok());
      ++infers;
      std::vector<float> out(resp.outputs().data().begin(),
                             resp.outputs().data().end());
      auto [it, fresh] = seen.emplace(resp.weights_step(), out);
      if (!fresh && it->second != out) ++inconsistent;
      if (resp.weights_step() < last_step) ++went_back;
      last_step = resp.weights_step();
      usleep(2000);
    }
  });
  v1::Job j1 = WaitForJob(c, b[0], 600), j2 = WaitForJob(c, b[1], 600);
  done = true;
  inferrer.join();
  for (auto& t : watchers) t.join();
  ASSERT_EQ(j1.state(), v1::JOB_STATE_COMPLETED);
  ASSERT_EQ(j2.state(), v1::JOB_STATE_COMPLETED);
  // History length of each job = every event a watcher could see.
  int64_t total[2];
  for (int k = 0; k < 2; ++k) {
    v1::StreamMetricsRequest req;
    req.set_job_id(b[k]);
    grpc::Status st;
    total[k] = static_cast<int64_t>(ReadStream(c, req, &st).size());
  }
  for (int w = 0; w < 10; ++w) {
    const StreamCheck& ck = checks[w];
    EXPECT_TRUE(ck.status.ok()) << w << ": " << ck.status.error_message();
    EXPECT_TRUE(ck.ordered) << "watcher " << w;
    // Every event was either delivered or reported missed.
    EXPECT_EQ(ck.received + ck.dropped, total[w % 2]) << "watcher " << w;
    if (w != 0) {
      EXPECT_EQ(ck.dropped, 0) << "watcher " << w;
      EXPECT_EQ(ck.train, 500) << "watcher " << w;
    }
  }
  // The slow watcher reads 25 events a second and each job emits over 500:
  // had training waited for it, it would have missed nothing.
  EXPECT_GT(checks[0].dropped, 0) << "the slow watcher kept up";
  EXPECT_GT(infers, 10);
  EXPECT_EQ(inconsistent, 0);
  EXPECT_EQ(went_back, 0);
  std::printf("slow watcher got %lld events, missed %lld; %lld inferences\n",
              static_cast<long long>(checks[0].received),
              static_cast<long long>(checks[0].dropped),
              static_cast<long long>(infers));
}

}  // namespace
}  // namespace nnlab::testing
