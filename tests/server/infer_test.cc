// InferenceService.Infer on a real server over loopback: the callback path
// (inline on gRPC's thread once a model's forward pass is measured short,
// on a worker otherwise) and the per-model pool of inference copies. Infer
// must always answer from one whole, current weight snapshot.
#include <algorithm>
#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "tests/server/server_test_util.h"

namespace nnlab::testing {
namespace {

v1::Tensor MakeTensor(std::vector<int64_t> shape, std::vector<float> data) {
  v1::Tensor t;
  for (int64_t d : shape) t.add_shape(d);
  for (float f : data) t.add_data(f);
  return t;
}

// Four 2-D inputs, one per row.
const std::vector<float> kRows = {0.5f,   -1.0f, 2.0f, 0.25f,
                                  -0.75f, 1.5f,  0.0f, 3.0f};

v1::InferResponse Infer(Client& c, const std::string& id, const v1::Tensor& x) {
  v1::InferRequest req;
  req.set_model_id(id);
  *req.mutable_inputs() = x;
  v1::InferResponse resp;
  auto ctx = Ctx();
  grpc::Status s = c.inference->Infer(ctx.get(), req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return resp;
}

std::vector<float> Outputs(const v1::InferResponse& r) {
  return {r.outputs().data().begin(), r.outputs().data().end()};
}

void TrainOneStep(Client& c, const std::string& id) {
  v1::TrainStepRequest req;
  req.set_model_id(id);
  req.mutable_optimizer()->set_kind(v1::OPTIMIZER_SGD);
  req.mutable_optimizer()->set_learning_rate(0.5f);
  *req.mutable_inputs() = MakeTensor({4, 2}, kRows);
  *req.mutable_targets() = MakeTensor({4}, {0, 1, 2, 1});
  v1::TrainStepResponse resp;
  auto ctx = Ctx();
  grpc::Status s = c.training->TrainStep(ctx.get(), req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
}

// The model's current weights under a new id (export, then import).
void CopyModel(Client& c, const std::string& from, const std::string& to) {
  v1::ExportModelRequest ex;
  ex.set_model_id(from);
  v1::ExportModelResponse file;
  {
    auto ctx = Ctx();
    ASSERT_TRUE(c.models->ExportModel(ctx.get(), ex, &file).ok());
  }
  v1::ImportModelRequest im;
  im.set_model_id(to);
  *im.mutable_file() = file.file();
  v1::Model m;
  auto ctx = Ctx();
  grpc::Status s = c.models->ImportModel(ctx.get(), im, &m);
  ASSERT_TRUE(s.ok()) << s.error_message();
}

TEST(InferTest, EachCallSeesTheLatestWeights) {
  TestServer server;
  Client c = server.MakeClient();
  CreateModel(c, MlpSpec(2, 16, 3), "net");
  const v1::Tensor x = MakeTensor({4, 2}, kRows);
  // Warm up: the first call measures the pass, later ones run inline on
  // copies that hold the step-0 weights.
  const v1::InferResponse first = Infer(c, "net", x);
  EXPECT_EQ(first.weights_step(), 0);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(Outputs(Infer(c, "net", x)), Outputs(first));
  }
  std::vector<float> previous = Outputs(first);
  for (int step = 1; step <= 3; ++step) {
    TrainOneStep(c, "net");
    const v1::InferResponse r = Infer(c, "net", x);
    EXPECT_EQ(r.weights_step(), step);
    EXPECT_NE(Outputs(r), previous) << "step " << step;
    // A fresh model built from the exported weights (its first call takes
    // the worker path, on a new copy) answers exactly the same.
    const std::string copy = absl::StrCat("copy-", step);
    CopyModel(c, "net", copy);
    EXPECT_EQ(Outputs(Infer(c, copy, x)), Outputs(r)) << "step " << step;
    previous = Outputs(r);
  }
}

TEST(InferTest, LargeBatchAgreesWithSingleRows) {
  TestServer server;
  Client c = server.MakeClient();
  CreateModel(c, MlpSpec(2, 64, 3), "net");
  std::vector<std::vector<float>> single;
  for (int r = 0; r < 4; ++r) {
    single.push_back(Outputs(
        Infer(c, "net", MakeTensor({1, 2}, {kRows[2 * r], kRows[2 * r + 1]}))));
    ASSERT_EQ(single.back().size(), 3u);
  }
  // 4,096 rows cycling through the four inputs: far over the inline budget
  // of a pass measured on one row, so it runs on a worker.
  const int n = 4096;
  std::vector<float> big;
  for (int i = 0; i < n; ++i) {
    big.push_back(kRows[2 * (i % 4)]);
    big.push_back(kRows[2 * (i % 4) + 1]);
  }
  const v1::InferResponse r = Infer(c, "net", MakeTensor({n, 2}, big));
  ASSERT_EQ(r.outputs().data_size(), n * 3);
  ASSERT_EQ(r.predictions_size(), n);
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < 3; ++k) {
      ASSERT_NEAR(r.outputs().data(i * 3 + k), single[i % 4][k], 1e-5)
          << "row " << i;
    }
  }
}

// Infer from several clients while TrainStep publishes new weights: every
// answer comes from one whole snapshot (all answers naming a step agree to
// the bit), steps never go back for a client, and the last answers see the
// last step.
TEST(InferTest, ConcurrentCallsDuringTrainingSeeWholeSnapshots) {
  TestServer server;
  Client trainer = server.MakeClient();
  CreateModel(trainer, MlpSpec(2, 32, 3), "net");
  const v1::Tensor x = MakeTensor({4, 2}, kRows);
  constexpr int kClients = 6, kSteps = 25;
  std::atomic<bool> done{false};
  std::atomic<int64_t> calls{0};
  absl::Mutex mu;
  std::map<int64_t, std::vector<float>> by_step;  // Guarded by mu.
  int64_t mismatches = 0;                         // Guarded by mu.
  std::vector<int64_t> last_step(kClients, -1);
  std::vector<int64_t> went_back(kClients, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      // One channel per client, as separate processes would have.
      Client c = server.MakeClient();
      // Until told to stop, and at least once after that (so the last
      // step is seen).
      for (bool stop = false; !stop;) {
        stop = done.load();
        const v1::InferResponse r = Infer(c, "net", x);
        calls.fetch_add(1);
        if (r.weights_step() < last_step[t]) ++went_back[t];
        last_step[t] = r.weights_step();
        absl::MutexLock lock(&mu);
        auto [it, fresh] = by_step.emplace(r.weights_step(), Outputs(r));
        if (!fresh && it->second != Outputs(r)) ++mismatches;
      }
    });
  }
  for (int step = 1; step <= kSteps; ++step) {
    // Let the clients make calls between steps (no sleeping on the clock:
    // wait for their count to move).
    const int64_t before = calls.load();
    while (calls.load() < before + kClients) std::this_thread::yield();
    TrainOneStep(trainer, "net");
  }
  done.store(true);
  for (std::thread& t : threads) t.join();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(mismatches, 0);
  for (int t = 0; t < kClients; ++t) {
    EXPECT_EQ(went_back[t], 0) << "client " << t;
    EXPECT_EQ(last_step[t], kSteps) << "client " << t;
  }
  EXPECT_EQ(by_step.count(0), 1u);
  EXPECT_EQ(by_step.count(kSteps), 1u);
  // Distinct snapshots give distinct answers.
  EXPECT_NE(by_step[0], by_step[kSteps]);
}

TEST(InferTest, ErrorsKeepTheirCodesOnTheCallbackPath) {
  TestServer server;
  Client c = server.MakeClient();
  CreateModel(c, MlpSpec(2, 8, 3), "net");
  const v1::Tensor x = MakeTensor({1, 2}, {1.0f, 2.0f});
  Infer(c, "net", x);  // Measured: later calls may run inline.
  auto call = [&](const v1::InferRequest& req) {
    v1::InferResponse resp;
    auto ctx = Ctx();
    return c.inference->Infer(ctx.get(), req, &resp).error_code();
  };
  v1::InferRequest wrong_shape;
  wrong_shape.set_model_id("net");
  *wrong_shape.mutable_inputs() = MakeTensor({1, 3}, {1, 2, 3});
  EXPECT_EQ(call(wrong_shape), grpc::StatusCode::INVALID_ARGUMENT);
  v1::InferRequest nan = wrong_shape;
  *nan.mutable_inputs() = MakeTensor({1, 2}, {1.0f, NAN});
  EXPECT_EQ(call(nan), grpc::StatusCode::INVALID_ARGUMENT);
  v1::InferRequest unknown = wrong_shape;
  unknown.set_model_id("nope");
  EXPECT_EQ(call(unknown), grpc::StatusCode::NOT_FOUND);
  v1::InferRequest top_k = wrong_shape;
  *top_k.mutable_inputs() = x;
  top_k.set_top_k(-1);
  EXPECT_EQ(call(top_k), grpc::StatusCode::INVALID_ARGUMENT);
  // A deadline already passed: DEADLINE_EXCEEDED, and the server goes on.
  {
    v1::InferRequest ok = top_k;
    ok.set_top_k(2);
    v1::InferResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() -
                     std::chrono::seconds(1));
    EXPECT_EQ(c.inference->Infer(&ctx, ok, &resp).error_code(),
              grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  EXPECT_EQ(Infer(c, "net", x).predictions_size(), 1);
}

}  // namespace
}  // namespace nnlab::testing
