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
