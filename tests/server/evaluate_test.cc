// The Evaluate RPC on a real server: the loss and accuracy of Infer's
// outputs over the same samples, the split a job evaluates on, and the
// errors.
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "core/data/dataset.h"
#include "gtest/gtest.h"
#include "tests/server/server_test_util.h"

namespace nnlab::testing {
namespace {

using ::grpc::StatusCode;

grpc::Status Evaluate(Client& c, const v1::EvaluateRequest& req,
                      v1::EvaluateResponse* resp) {
  auto ctx = Ctx();
  return c.training->Evaluate(ctx.get(), req, resp);
}

v1::EvaluateRequest Request(const std::string& model,
                            const std::string& dataset,
                            const std::string& split, int64_t offset,
                            int64_t limit) {
  v1::EvaluateRequest req;
  req.set_model_id(model);
  req.set_dataset(dataset);
  req.set_split(split);
  req.set_offset(offset);
  req.set_limit(limit);
  return req;
}

// Evaluate on MNIST test digits [300, 550) gives the mean softmax
// cross-entropy and the accuracy of Infer's logits on the same digits,
// read here from the IDX files; the training split is the first 8,000.
TEST(EvaluateTest, MatchesInferOnTheSameSamples) {
  TestServer server;
  Client c = server.MakeClient();
  CreateModel(c, MlpSpec(784, 32, 10, /*seed=*/5), "mlp");
  // A few steps of training, so that the accuracy is not chance.
  v1::JobSpec js;
  js.set_model_id("mlp");
  js.set_dataset("mnist");
  js.mutable_optimizer()->set_kind(v1::OPTIMIZER_ADAM);
  js.set_batch_size(64);
  js.set_max_train_samples(1024);
  v1::Job job = StartJob(c, js);
  ASSERT_EQ(WaitForJob(c, job.job_id()).state(), v1::JOB_STATE_COMPLETED);

  auto mnist = LoadMnist(DefaultDatasetsDir());
  ASSERT_TRUE(mnist.ok()) << mnist.status();
  constexpr int64_t kOffset = 300, kCount = 250;
  std::vector<int64_t> idx(kCount);
  std::iota(idx.begin(), idx.end(), kOffset);
  Tensor x, y;
  mnist->test->Gather(idx, &x, &y);
  v1::InferRequest ireq;
  ireq.set_model_id("mlp");
  ireq.mutable_inputs()->add_shape(kCount);
  ireq.mutable_inputs()->add_shape(784);
  for (int64_t i = 0; i < x.size(); ++i) ireq.mutable_inputs()->add_data(x[i]);
  v1::InferResponse iresp;
  {
    auto ctx = Ctx();
    grpc::Status s = c.inference->Infer(ctx.get(), ireq, &iresp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  ASSERT_EQ(iresp.outputs().data_size(), kCount * 10);
  ASSERT_EQ(iresp.predictions_size(), kCount);
  double loss = 0;
  int64_t correct = 0;
  for (int64_t i = 0; i < kCount; ++i) {
    const float* row = iresp.outputs().data().data() + i * 10;
    const int label = static_cast<int>(y[i]);
    double mx = row[0], z = 0;
    for (int k = 1; k < 10; ++k) mx = std::max<double>(mx, row[k]);
    for (int k = 0; k < 10; ++k) z += std::exp(row[k] - mx);
    loss += std::log(z) + mx - row[label];
    correct += iresp.predictions(static_cast<int>(i)) == label;
  }
  loss /= kCount;

  v1::EvaluateResponse r;
  grpc::Status s =
      Evaluate(c, Request("mlp", "mnist", "test", kOffset, kCount), &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.samples(), kCount);
  EXPECT_TRUE(r.is_classifier());
  EXPECT_NEAR(r.loss(), loss, 1e-5);
  EXPECT_DOUBLE_EQ(r.accuracy(), double(correct) / kCount);
  EXPECT_GT(r.accuracy(), 0.5);  // Trained: well above chance.
  EXPECT_EQ(r.weights_step(), 16);
  EXPECT_EQ(r.weights_step(), iresp.weights_step());

  // "" is the test split; limit 0 runs to the split's end.
  s = Evaluate(c, Request("mlp", "mnist", "", 1990, 0), &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.samples(), 10);
  s = Evaluate(c, Request("mlp", "mnist", "train", 7990, 100), &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.samples(), 10);
  s = Evaluate(c, Request("mlp", "mnist", "train", 0, 0), &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.samples(), kMnistTrainSamples);
}

// The whole test split of an uploaded data set gives what the job that
// trained the model reported for its last evaluation.
TEST(EvaluateTest, TestSplitIsTheOneJobsEvaluateOn) {
  TestServer server;
  Client c = server.MakeClient();
  const std::string ds = UploadBlobs(c, 320, 64);
  CreateModel(c, MlpSpec(2, 8, 2), "blob-net");
  v1::JobSpec spec;
  spec.set_model_id("blob-net");
  spec.set_dataset(ds);
  spec.mutable_optimizer()->set_kind(v1::OPTIMIZER_SGD);
  spec.mutable_optimizer()->set_learning_rate(0.1f);
  spec.set_epochs(2);
  spec.set_batch_size(16);
  v1::Job done = WaitForJob(c, StartJob(c, spec).job_id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_COMPLETED);
  ASSERT_EQ(done.last_eval().step(), 32);

  v1::EvaluateResponse r;
  grpc::Status s = Evaluate(c, Request("blob-net", ds, "test", 0, 0), &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.samples(), 64);
  EXPECT_EQ(r.weights_step(), 32);
  EXPECT_NEAR(r.loss(), done.last_eval().loss(), 1e-6);
  EXPECT_DOUBLE_EQ(r.accuracy(), done.last_eval().accuracy());
  s = Evaluate(c, Request("blob-net", ds, "train", 0, 0), &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.samples(), 256);
}

TEST(EvaluateTest, ErrorsGetTheRightCodes) {
  TestServer server;
  Client c = server.MakeClient();
  CreateModel(c, MlpSpec(784, 16, 10), "mlp");
  CreateModel(c, MlpSpec(2, 8, 2), "small");
  const std::string no_test = UploadBlobs(c, 40, 0);
  struct Case {
    v1::EvaluateRequest req;
    StatusCode code;
  };
  const Case cases[] = {
      {Request("nope", "mnist", "test", 0, 0), StatusCode::NOT_FOUND},
      {Request("mlp", "nope", "test", 0, 0), StatusCode::NOT_FOUND},
      {Request("mlp", "mnist", "validation", 0, 0),
       StatusCode::INVALID_ARGUMENT},
      {Request("mlp", "mnist", "test", 2000, 0), StatusCode::INVALID_ARGUMENT},
      {Request("mlp", "mnist", "train", 8000, 5), StatusCode::INVALID_ARGUMENT},
      {Request("mlp", "mnist", "test", -1, 0), StatusCode::INVALID_ARGUMENT},
      {Request("mlp", "mnist", "test", 0, -1), StatusCode::INVALID_ARGUMENT},
      // 2 inputs per sample against MNIST's 784.
      {Request("small", "mnist", "test", 0, 0), StatusCode::INVALID_ARGUMENT},
      {Request("small", no_test, "test", 0, 0), StatusCode::INVALID_ARGUMENT},
  };
  for (const Case& k : cases) {
    v1::EvaluateResponse r;
    grpc::Status s = Evaluate(c, k.req, &r);
    EXPECT_EQ(s.error_code(), k.code)
        << k.req.ShortDebugString() << ": " << s.error_message();
  }
  // The upload without a test split still has its training split.
  v1::EvaluateResponse r;
  grpc::Status s = Evaluate(c, Request("small", no_test, "train", 0, 0), &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.samples(), 40);
}

}  // namespace
}  // namespace nnlab::testing
