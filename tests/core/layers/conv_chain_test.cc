// The evaluation-mode convolution chain (core/layers/conv_chain.h) against
// the same layers run one by one: batch norms folded into the
// convolutions, ReLUs and residual sums applied as they write, on 1 and 2
// threads and several batch sizes, with parameters and statistics that
// change between passes; and where it must stop (a layer it cannot fuse,
// the im2col path).
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "core/kernels/blas.h"
#include "core/kernels/onednn_conv.h"
#include "core/model/model.h"
#include "core/model/zoo.h"
#include "gtest/gtest.h"

namespace nnlab {
namespace {

class ConvChainTest : public ::testing::Test {
 protected:
  void TearDown() override {
    SetBlasThreads(saved_threads_);
    SetConvPath(saved_path_);
  }
  int saved_threads_ = BlasThreads();
  ConvPath saved_path_ = CurrentConvPath();
};

void FillUniform(Tensor* t, Rng* rng, float lo, float hi) {
  for (int64_t i = 0; i < t->size(); ++i) (*t)[i] = rng->Uniform(lo, hi);
}

// Gives every batch norm statistics and scales far from the identity, and
// every bias a value, so that a fold that dropped one would show.
void Randomise(Model* model, Rng* rng) {
  for (Param& p : model->Params()) {
    if (absl::EndsWith(p.name, ".gamma")) FillUniform(p.value, rng, 0.5f, 2.0f);
    if (absl::EndsWith(p.name, ".beta") || absl::EndsWith(p.name, ".bias")) {
      FillUniform(p.value, rng, -0.5f, 0.5f);
    }
  }
  for (auto& [name, t] : model->Buffers()) {
    if (absl::EndsWith(name, ".running_mean")) FillUniform(t, rng, -0.3f, 0.3f);
    if (absl::EndsWith(name, ".running_var")) FillUniform(t, rng, 0.2f, 3.0f);
  }
}

// The model's layers one by one, in evaluation mode.
Tensor LayerByLayer(Model* model, const Tensor& x) {
  LayerStack& stack = model->layers();
  Tensor a, b;
  a.CopyFrom(x);
  for (int i = 0; i < stack.size(); ++i) {
    stack.layer(i)->Forward(a, &b, Mode::kEval);
    std::swap(a, b);
  }
  return a;
}

// max |got - want| <= 1e-4 max |want| (folding reorders each product).
void ExpectClose(const Tensor& got, const Tensor& want) {
  ASSERT_EQ(got.shape(), want.shape());
  float scale = 0, worst = 0;
  for (int64_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, std::fabs(want[i]));
    worst = std::max(worst, std::fabs(got[i] - want[i]));
  }
  ASSERT_GT(scale, 0.0f);
  EXPECT_LE(worst, 1e-4f * scale) << "scale " << scale;
}

TEST_F(ConvChainTest, ResidualCnnMatchesLayerByLayer) {
  auto model = std::move(Model::Build(FashionResidualCnn())).value();
  Rng rng(3);
  Randomise(model.get(), &rng);
  // Stem (conv, batch norm, ReLU), three blocks each with its ReLU; the
  // global average pool and the dense head run as layers.
  const int kFused = 9;
  for (int threads : {1, 2}) {
    SetBlasThreads(threads);
    for (int64_t n : {64, 7, 1}) {
      SCOPED_TRACE(testing::Message() << threads << " threads, batch " << n);
      Tensor x({n, 1, 28, 28});
      FillUniform(&x, &rng, 0.0f, 1.0f);
      Tensor fused;
      fused.CopyFrom(model->Forward(x, Mode::kEval));
      EXPECT_EQ(model->layers().fused_layers(), kFused);
      ExpectClose(fused, LayerByLayer(model.get(), x));
    }
  }
}

// The chain folds the parameters and statistics again at every pass.
TEST_F(ConvChainTest, FollowsChangedParameters) {
  auto model = std::move(Model::Build(FashionResidualCnn())).value();
  Rng rng(5);
  Tensor x({16, 1, 28, 28});
  FillUniform(&x, &rng, 0.0f, 1.0f);
  Tensor before;
  before.CopyFrom(model->Forward(x, Mode::kEval));
  Randomise(model.get(), &rng);
  for (Param& p : model->Params()) {
    if (absl::EndsWith(p.name, ".weight")) {
      for (int64_t i = 0; i < p.value->size(); ++i) (*p.value)[i] *= 1.5f;
    }
  }
  const Tensor& after = model->Forward(x, Mode::kEval);
  EXPECT_EQ(model->layers().fused_layers(), 9);
  ExpectClose(after, LayerByLayer(model.get(), x));
  float change = 0;
  for (int64_t i = 0; i < after.size(); ++i) {
    change = std::max(change, std::fabs(after[i] - before[i]));
  }
  EXPECT_GT(change, 1e-2f);
}

LayerSpec Conv(int64_t filters, int64_t kernel = 3, int64_t padding = 1) {
  LayerSpec spec;
  spec.kind = "conv2d";
  spec.filters = filters;
  spec.kernel = kernel;
  spec.padding = padding;
  return spec;
}

LayerSpec Of(const char* kind) {
  LayerSpec spec;
  spec.kind = kind;
  return spec;
}

// Each spec: the layers, and how many of them lead the chain.
struct StopCase {
  std::string name;
  std::vector<LayerSpec> layers;
  int fused;
};

std::vector<StopCase> StopCases() {
  LayerSpec single = Of("residual");  // Its one convolution reads the input
  single.body = {Conv(8)};            // it would have to add into.
  LayerSpec pair = Of("residual");
  pair.body = {Conv(8), Of("relu"), Conv(8), Of("batch_norm")};
  LayerSpec pooled = Of("residual");  // A body with a layer it cannot fuse.
  pooled.body = {Conv(8), Of("max_pool2d"), Conv(8)};
  pooled.body[1].kernel = 1;
  pooled.body[1].stride = 1;
  return {
      {"batch_norm_after_relu",
       {Conv(8), Of("relu"), Of("batch_norm"), Conv(8)},
       2},
      {"identity_pair", {Conv(8), pair, Of("relu"), Conv(4, 1, 0)}, 4},
      {"single_conv_body", {Conv(8), single, Conv(8)}, 1},
      {"unfusable_body", {Conv(8), Of("batch_norm"), pooled, Of("relu")}, 2},
      {"residual_on_the_input", {pair, Conv(8)}, 0},
      {"starts_with_relu", {Of("relu"), Conv(8)}, 0},
  };
}

TEST_F(ConvChainTest, StopsWhereALayerCannotJoin) {
  for (const StopCase& c : StopCases()) {
    SCOPED_TRACE(c.name);
    ModelSpec spec;
    spec.input_shape = {8, 10, 10};
    spec.layers = c.layers;
    spec.layers.push_back(Of("flatten"));
    LayerSpec head = Of("dense");
    head.units = 3;
    spec.layers.push_back(head);
    spec.seed = 2;
    auto model_or = Model::Build(spec);
    ASSERT_TRUE(model_or.ok()) << model_or.status();
    auto model = std::move(model_or).value();
    Rng rng(11);
    Randomise(model.get(), &rng);
    Tensor x({5, 8, 10, 10});
    FillUniform(&x, &rng, -1.0f, 1.0f);
    Tensor out;
    out.CopyFrom(model->Forward(x, Mode::kEval));
    EXPECT_EQ(model->layers().fused_layers(), c.fused);
    ExpectClose(out, LayerByLayer(model.get(), x));
  }
}

TEST_F(ConvChainTest, Im2colPathAndTrainingRunLayerByLayer) {
  auto model = std::move(Model::Build(FashionResidualCnn())).value();
  Tensor x({4, 1, 28, 28});
  Rng rng(1);
  FillUniform(&x, &rng, 0.0f, 1.0f);
  model->Forward(x, Mode::kTrain);
  EXPECT_EQ(model->layers().fused_layers(), 0);
  SetConvPath(ConvPath::kIm2col);
  model->Forward(x, Mode::kEval);
  EXPECT_EQ(model->layers().fused_layers(), 0);
  SetConvPath(ConvPath::kAuto);
  model->Forward(x, Mode::kEval);
  EXPECT_EQ(model->layers().fused_layers(), 9);
}

}  // namespace
}  // namespace nnlab
