// Inputs the fuzz targets (tests/fuzz/) found to crash or exhaust the
// server, replayed against a real server: each must now fail with a clean
// status while the server keeps serving.
#include <cstdint>
#include <string>

#include "gtest/gtest.h"
#include "server/convert.h"
#include "tests/server/server_test_util.h"

namespace nnlab::testing {
namespace {

// The server still answers after the bad request.
void ExpectServing(Client& c) {
  auto ctx = Ctx();
  v1::ListModelsRequest req;
  v1::ListModelsResponse resp;
  EXPECT_TRUE(c.models->ListModels(ctx.get(), req, &resp).ok());
}

// A 1024x1024 convolution over a 2048x2048 image has 1M parameters (well
// within the limit) but an im2col buffer of 1024^2 * 1025^2 floats (4 TB),
// which Model::Build allocated: std::bad_alloc ended the server.
TEST(FuzzRegressionTest, ConvolutionWithHugeIm2colIsRefused) {
  TestServer server;
  Client c = server.MakeClient();
  v1::CreateModelRequest req;
  req.set_model_id("conv");
  v1::ModelSpec* spec = req.mutable_spec();
  spec->add_input_shape(1);
  spec->add_input_shape(2048);
  spec->add_input_shape(2048);
  v1::Conv2d* conv = spec->add_layers()->mutable_conv2d();
  conv->set_filters(1);
  conv->set_kernel(1024);
  spec->add_layers()->mutable_flatten();
  spec->add_layers()->mutable_dense()->set_units(2);
  auto ctx = Ctx();
  v1::Model resp;
  grpc::Status s = c.models->CreateModel(ctx.get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << s.error_message();
  EXPECT_NE(s.error_message().find("per sample"), std::string::npos)
      << s.error_message();
  ExpectServing(c);
}

// A [1] -> dense(2^20) model is small (2M parameters), but Infer on 100,000
// samples (a 400 kB request) asked Forward for a [100000, 2^20] output
// (400 GB). Now refused before any allocation; a sane batch still works.
TEST(FuzzRegressionTest, InferBatchTimesLayerWidthIsBounded) {
  TestServer server;
  Client c = server.MakeClient();
  v1::CreateModelRequest req;
  req.set_model_id("wide");
  v1::ModelSpec* spec = req.mutable_spec();
  spec->add_input_shape(1);
  spec->add_layers()->mutable_dense()->set_units(int64_t{1} << 20);
  spec->set_loss(v1::LOSS_SOFTMAX_CROSS_ENTROPY);
  {
    auto ctx = Ctx();
    v1::Model resp;
    ASSERT_TRUE(c.models->CreateModel(ctx.get(), req, &resp).ok());
  }
  v1::InferRequest infer;
  infer.set_model_id("wide");
  infer.mutable_inputs()->add_shape(100000);
  infer.mutable_inputs()->add_shape(1);
  for (int i = 0; i < 100000; ++i) infer.mutable_inputs()->add_data(0.5f);
  {
    auto ctx = Ctx();
    v1::InferResponse resp;
    grpc::Status s = c.inference->Infer(ctx.get(), infer, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << s.error_message();
  }
  // The same for client-driven training.
  v1::TrainStepRequest step;
  step.set_model_id("wide");
  *step.mutable_inputs() = infer.inputs();
  step.mutable_targets()->add_shape(100000);
  for (int i = 0; i < 100000; ++i) step.mutable_targets()->add_data(0);
  {
    auto ctx = Ctx();
    v1::TrainStepResponse resp;
    grpc::Status s = c.training->TrainStep(ctx.get(), step, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << s.error_message();
  }
  // Two samples: 2M outputs, fine.
  infer.mutable_inputs()->set_shape(0, 2);
  infer.mutable_inputs()->mutable_data()->Truncate(2);
  auto ctx = Ctx();
  v1::InferResponse resp;
  grpc::Status s = c.inference->Infer(ctx.get(), infer, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.outputs().shape(0), 2);
  EXPECT_EQ(resp.outputs().shape(1), int64_t{1} << 20);
  ExpectServing(c);
}

// The bound itself: per-sample peak times the batch.
TEST(FuzzRegressionTest, CheckBatchSizeUsesThePeakBuffer) {
  server::Limits limits;
  limits.max_tensor_elements = 1000;
  ModelSpec spec;
  spec.input_shape = {10};
  LayerSpec dense;
  dense.kind = "dense";
  dense.units = 100;
  spec.layers = {dense};
  EXPECT_EQ(server::EstimateSampleElements(spec), 100.0);
  EXPECT_TRUE(server::CheckBatchSize(spec, 10, limits).ok());
  EXPECT_EQ(server::CheckBatchSize(spec, 11, limits).code(),
            absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace nnlab::testing
