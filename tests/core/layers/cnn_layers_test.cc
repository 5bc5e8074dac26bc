// Dropout, batch normalization, convolution, pooling, flatten and residual
// blocks: hand-computed values, central finite differences in training mode
// (batch norm through its batch statistics), train/eval semantics, and the
// build-time rejection of bad shapes.
#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/kernels/blas.h"
#include "core/layers/layer.h"
#include "core/layers/layer_factories.h"
#include "core/model/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/core/gradient_check.h"

namespace nnlab {
namespace {

using ::testing::HasSubstr;
using testing_util::CheckLayerGradients;
using testing_util::ConvCase;
using testing_util::FillNormal;

LayerSpec Spec(const std::string& kind) {
  LayerSpec spec;
  spec.kind = kind;
  return spec;
}

LayerSpec Conv(int64_t filters, int64_t kernel, int64_t stride,
               int64_t padding) {
  LayerSpec spec = Spec("conv2d");
  spec.filters = filters;
  spec.kernel = kernel;
  spec.stride = stride;
  spec.padding = padding;
  return spec;
}

LayerSpec Pool(const std::string& kind, int64_t kernel, int64_t stride) {
  LayerSpec spec = Spec(kind);
  spec.kernel = kernel;
  spec.stride = stride;
  return spec;
}

LayerSpec Dense(int64_t units) {
  LayerSpec spec = Spec("dense");
  spec.units = units;
  return spec;
}

LayerSpec Residual(std::vector<LayerSpec> body) {
  LayerSpec spec = Spec("residual");
  spec.body = std::move(body);
  return spec;
}

std::unique_ptr<Layer> Build(const LayerSpec& spec, const Shape& in,
                             Shape* out_shape = nullptr) {
  Rng rng(7);
  Shape out;
  auto layer =
      MakeLayer(spec, spec.kind + "0", in, InitKind::kGlorot, &rng, &out);
  EXPECT_TRUE(layer.ok()) << layer.status();
  if (out_shape != nullptr) *out_shape = out;
  return std::move(layer).value();
}

Shape Batched(int64_t n, const Shape& per_sample) {
  Shape s{n};
  s.insert(s.end(), per_sample.begin(), per_sample.end());
  return s;
}

// Moves every parameter away from its initial value (e.g. gamma = 1,
// beta = 0, biases = 0) so that the checks see generic parameters.
void PerturbParams(Layer* layer, Rng* rng) {
  for (const Param& p : layer->Params()) {
    for (int64_t i = 0; i < p.value->size(); ++i) {
      (*p.value)[i] += rng->Normal(0.0f, 0.3f);
    }
  }
}

// Distinct values 0.05 apart in random order: no two inputs of a max-pool
// window are within a finite-difference step of each other.
void FillDistinct(Tensor* x, Rng* rng) {
  std::vector<int64_t> order(x->size());
  std::iota(order.begin(), order.end(), 0);
  for (int64_t i = x->size() - 1; i > 0; --i) {
    std::swap(order[i], order[rng->UniformInt(i + 1)]);
  }
  for (int64_t i = 0; i < x->size(); ++i) {
    (*x)[i] = 0.05f * float(order[i]) - 0.025f * float(x->size());
  }
}

// ---------------------------------------------------------------- values

TEST(Conv2DTest, ForwardMatchesHandComputedValues) {
  // Input 1x3x3 = 1..9, kernel 2x2 = [[1, 0], [0, 1]], bias 0.5.
  for (int64_t padding : {0, 1}) {
    const int64_t stride = padding == 0 ? 1 : 2;
    Shape out_shape;
    auto conv = Build(Conv(1, 2, stride, padding), {1, 3, 3}, &out_shape);
    ASSERT_EQ(out_shape, Shape({1, 2, 2}));
    auto params = conv->Params();
    ASSERT_EQ(params.size(), 2u);
    EXPECT_EQ(params[0].name, "conv2d0.weight");
    EXPECT_EQ(params[1].name, "conv2d0.bias");
    ASSERT_EQ(params[0].value->shape(), Shape({1, 1, 2, 2}));
    float w[4] = {1, 0, 0, 1};
    std::copy(w, w + 4, params[0].value->data());
    (*params[1].value)[0] = 0.5f;
    Tensor x({1, 1, 3, 3});
    for (int i = 0; i < 9; ++i) x[i] = float(i + 1);
    Tensor y;
    conv->Forward(x, &y, Mode::kEval);
    ASSERT_EQ(y.shape(), Shape({1, 1, 2, 2}));
    if (padding == 0) {
      // y[i][j] = x[i][j] + x[i+1][j+1] + 0.5.
      EXPECT_FLOAT_EQ(y[0], 1 + 5 + 0.5f);
      EXPECT_FLOAT_EQ(y[1], 2 + 6 + 0.5f);
      EXPECT_FLOAT_EQ(y[2], 4 + 8 + 0.5f);
      EXPECT_FLOAT_EQ(y[3], 5 + 9 + 0.5f);
    } else {
      // Padded input rows/cols -1..3, windows start at -1 and 1:
      // y[i][j] = xp[2i-1][2j-1] + xp[2i][2j] + 0.5 (zero outside).
      EXPECT_FLOAT_EQ(y[0], 0 + 1 + 0.5f);
      EXPECT_FLOAT_EQ(y[1], 0 + 3 + 0.5f);
      EXPECT_FLOAT_EQ(y[2], 0 + 7 + 0.5f);
      EXPECT_FLOAT_EQ(y[3], 5 + 9 + 0.5f);
    }
  }
}

TEST(Conv2DTest, OutputShapes) {
  Shape out;
  Build(Conv(16, 3, 1, 1), {1, 28, 28}, &out);
  EXPECT_EQ(out, Shape({16, 28, 28}));
  Build(Conv(32, 3, 2, 1), {16, 28, 28}, &out);
  EXPECT_EQ(out, Shape({32, 14, 14}));
  Build(Conv(4, 5, 1, 0), {3, 9, 7}, &out);
  EXPECT_EQ(out, Shape({4, 5, 3}));
}

TEST(PoolTest, MaxAvgAndGlobalAverageValues) {
  // One 4x4 plane, 0..15 row-major.
  Tensor x({1, 1, 4, 4});
  for (int i = 0; i < 16; ++i) x[i] = float(i);
  Tensor y;
  auto max_pool = Build(Pool("max_pool2d", 2, 2), {1, 4, 4});
  max_pool->Forward(x, &y, Mode::kEval);
  ASSERT_EQ(y.shape(), Shape({1, 1, 2, 2}));
  EXPECT_FLOAT_EQ(y[0], 5);
  EXPECT_FLOAT_EQ(y[1], 7);
  EXPECT_FLOAT_EQ(y[2], 13);
  EXPECT_FLOAT_EQ(y[3], 15);
  // Gradient goes to the maxima only.
  Tensor g({1, 1, 2, 2});
  g.Fill(1.0f);
  Tensor dx;
  max_pool->Backward(g, &dx);
  ASSERT_EQ(dx.shape(), x.shape());
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(dx[i], (i == 5 || i == 7 || i == 13 || i == 15) ? 1.0f : 0.0f);
  }

  auto avg_pool = Build(Pool("avg_pool2d", 3, 1), {1, 4, 4});
  avg_pool->Forward(x, &y, Mode::kEval);
  ASSERT_EQ(y.shape(), Shape({1, 1, 2, 2}));
  EXPECT_FLOAT_EQ(y[0], (0 + 1 + 2 + 4 + 5 + 6 + 8 + 9 + 10) / 9.0f);
  EXPECT_FLOAT_EQ(y[3], (5 + 6 + 7 + 9 + 10 + 11 + 13 + 14 + 15) / 9.0f);

  Shape out;
  auto gap = Build(Spec("global_avg_pool"), {1, 4, 4}, &out);
  EXPECT_EQ(out, Shape({1}));
  gap->Forward(x, &y, Mode::kEval);
  ASSERT_EQ(y.shape(), Shape({1, 1}));
  EXPECT_FLOAT_EQ(y[0], 7.5f);
}

TEST(FlattenTest, KeepsDataChangesShape) {
  Shape out;
  auto flatten = Build(Spec("flatten"), {2, 3, 4}, &out);
  EXPECT_EQ(out, Shape({24}));
  Tensor x({2, 2, 3, 4});
  for (int i = 0; i < 48; ++i) x[i] = float(i);
  Tensor y;
  flatten->Forward(x, &y, Mode::kTrain);
  ASSERT_EQ(y.shape(), Shape({2, 24}));
  for (int i = 0; i < 48; ++i) EXPECT_EQ(y[i], float(i));
  Tensor dx;
  flatten->Backward(y, &dx);
  EXPECT_EQ(dx.shape(), x.shape());
  for (int i = 0; i < 48; ++i) EXPECT_EQ(dx[i], float(i));
}

// ------------------------------------------------------------- gradients

TEST(GradientTest, Dropout) {
  LayerSpec spec = Spec("dropout");
  spec.keep_prob = 0.6f;
  auto layer = Build(spec, {12});
  Rng mask_rng(99);
  layer->SetRng(&mask_rng);
  Rng rng(1);
  Tensor x({4, 12});
  FillNormal(&x, &rng);
  // Reseeding before every forward fixes the mask.
  CheckLayerGradients(layer.get(), &x, Mode::kTrain, 2e-2, 1e-2f,
                      [&] { mask_rng.Seed(99); });
}

TEST(GradientTest, BatchNormDenseThroughBatchStatistics) {
  auto layer = Build(Spec("batch_norm"), {5});
  Rng rng(2);
  PerturbParams(layer.get(), &rng);
  Tensor x({6, 5});
  FillNormal(&x, &rng, 2.0f);
  CheckLayerGradients(layer.get(), &x, Mode::kTrain);
}

TEST(GradientTest, BatchNormConvThroughBatchStatistics) {
  auto layer = Build(Spec("batch_norm"), {3, 3, 4});
  Rng rng(3);
  PerturbParams(layer.get(), &rng);
  Tensor x({2, 3, 3, 4});
  FillNormal(&x, &rng, 1.5f);
  CheckLayerGradients(layer.get(), &x, Mode::kTrain);
}

TEST(GradientTest, BatchNormEvalMode) {
  auto layer = Build(Spec("batch_norm"), {4});
  Rng rng(4);
  PerturbParams(layer.get(), &rng);
  Tensor x({5, 4});
  FillNormal(&x, &rng);
  Tensor y;
  layer->Forward(x, &y, Mode::kTrain);  // Moves the running statistics.
  CheckLayerGradients(layer.get(), &x, Mode::kEval);
}

// Per channel, Backward recomputes xhat from the input (eval mode too).
TEST(GradientTest, BatchNormConvEvalMode) {
  auto layer = Build(Spec("batch_norm"), {3, 3, 4});
  Rng rng(5);
  PerturbParams(layer.get(), &rng);
  Tensor x({2, 3, 3, 4});
  FillNormal(&x, &rng, 1.5f);
  Tensor y;
  layer->Forward(x, &y, Mode::kTrain);  // Moves the running statistics.
  CheckLayerGradients(layer.get(), &x, Mode::kEval);
}

class ConvGradientTest : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvGradientTest, MatchesFiniteDifferences) {
  const ConvCase& c = GetParam();
  auto layer = Build(Conv(c.filters, c.kernel, c.stride, c.padding), c.in());
  Rng rng(5);
  PerturbParams(layer.get(), &rng);
  Tensor x(Batched(2, c.in()));
  FillNormal(&x, &rng);
  CheckLayerGradients(layer.get(), &x);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvGradientTest,
    ::testing::Values(ConvCase{3, 3, 1, 0, {2, 5, 5}},   // valid
                      ConvCase{3, 3, 2, 1, {2, 5, 6}},   // stride + padding
                      ConvCase{2, 2, 2, 1, {3, 4, 4}},   // even kernel
                      ConvCase{4, 1, 1, 0, {3, 3, 3}},   // pointwise
                      ConvCase{2, 1, 2, 0, {3, 5, 5}}),  // strided 1x1
    [](const ::testing::TestParamInfo<ConvCase>& info) {
      return "Case" + std::to_string(info.index);
    });

TEST(GradientTest, Pools) {
  struct Case {
    LayerSpec spec;
    Shape in;
  };
  const Case cases[] = {
      {Pool("max_pool2d", 2, 2), {2, 4, 6}},
      {Pool("max_pool2d", 3, 1), {2, 5, 5}},  // Overlapping windows.
      {Pool("avg_pool2d", 2, 2), {2, 4, 6}},
      {Pool("avg_pool2d", 3, 2), {2, 5, 7}},
      {Spec("global_avg_pool"), {3, 4, 5}},
      {Spec("flatten"), {3, 2, 2}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.spec.kind);
    auto layer = Build(c.spec, c.in);
    Rng rng(6);
    Tensor x(Batched(2, c.in));
    FillDistinct(&x, &rng);
    CheckLayerGradients(layer.get(), &x);
  }
}

TEST(GradientTest, ResidualIdentityShortcut) {
  // conv-BN-tanh-conv-BN + x, shapes kept: identity shortcut.
  Shape out;
  auto layer =
      Build(Residual({Conv(2, 3, 1, 1), Spec("batch_norm"), Spec("tanh"),
                      Conv(2, 3, 1, 1), Spec("batch_norm")}),
            {2, 4, 4}, &out);
  EXPECT_EQ(out, Shape({2, 4, 4}));
  std::vector<std::string> names;
  for (const Param& p : layer->Params()) names.push_back(p.name);
  EXPECT_THAT(names,
              ::testing::ElementsAre(
                  "residual0.conv2d0.weight", "residual0.conv2d0.bias",
                  "residual0.batch_norm1.gamma", "residual0.batch_norm1.beta",
                  "residual0.conv2d3.weight", "residual0.conv2d3.bias",
                  "residual0.batch_norm4.gamma", "residual0.batch_norm4.beta"));
  EXPECT_EQ(layer->Buffers().size(), 4u);
  Rng rng(8);
  PerturbParams(layer.get(), &rng);
  Tensor x({3, 2, 4, 4});
  FillNormal(&x, &rng);
  CheckLayerGradients(layer.get(), &x);
}

TEST(GradientTest, ResidualStridedConvProjection) {
  // 2 -> 3 channels, 5x5 -> 3x3: 1x1 conv shortcut with stride 2.
  Shape out;
  auto layer = Build(Residual({Conv(3, 3, 2, 1), Spec("batch_norm"),
                               Spec("tanh"), Conv(3, 3, 1, 1)}),
                     {2, 5, 5}, &out);
  EXPECT_EQ(out, Shape({3, 3, 3}));
  bool has_proj = false;
  for (const Param& p : layer->Params()) {
    if (p.name == "residual0.proj.weight") {
      has_proj = true;
      EXPECT_EQ(p.value->shape(), Shape({3, 2, 1, 1}));
    }
  }
  EXPECT_TRUE(has_proj);
  Rng rng(9);
  PerturbParams(layer.get(), &rng);
  Tensor x({2, 2, 5, 5});
  FillNormal(&x, &rng);
  CheckLayerGradients(layer.get(), &x);
}

TEST(GradientTest, ResidualDenseProjectionAndIdentity) {
  Rng rng(10);
  {
    SCOPED_TRACE("dense projection");
    auto layer = Build(Residual({Dense(4), Spec("tanh")}), {6});
    bool has_proj = false;
    for (const Param& p : layer->Params()) {
      has_proj |= p.name == "residual0.proj.weight";
    }
    EXPECT_TRUE(has_proj);
    PerturbParams(layer.get(), &rng);
    Tensor x({3, 6});
    FillNormal(&x, &rng);
    CheckLayerGradients(layer.get(), &x);
  }
  {
    SCOPED_TRACE("identity");
    auto layer = Build(Residual({Dense(6), Spec("sigmoid")}), {6});
    EXPECT_EQ(layer->Params().size(), 2u);  // No projection.
    PerturbParams(layer.get(), &rng);
    Tensor x({3, 6});
    FillNormal(&x, &rng);
    CheckLayerGradients(layer.get(), &x);
  }
}

TEST(ResidualTest, IdentityBlockAddsInput) {
  // With F's parameters at zero, F(x) = 0 for conv + BN(beta = 0, gamma = 0)
  // and the block is exactly the identity.
  auto layer =
      Build(Residual({Conv(2, 3, 1, 1), Spec("batch_norm")}), {2, 3, 3});
  for (const Param& p : layer->Params()) p.value->SetZero();
  Rng rng(11);
  Tensor x({2, 2, 3, 3});
  FillNormal(&x, &rng);
  Tensor y;
  layer->Forward(x, &y, Mode::kTrain);
  ASSERT_EQ(y.shape(), x.shape());
  for (int64_t i = 0; i < x.size(); ++i) EXPECT_FLOAT_EQ(y[i], x[i]);
}

// ------------------------------------------------- splits over threads

// Outputs, input gradients and parameter gradients of `spec` on x, dy.
std::vector<float> RunOnce(const LayerSpec& spec, const Tensor& x,
                           const Tensor& dy, Mode mode) {
  const Shape per_sample(x.shape().begin() + 1, x.shape().end());
  auto layer = Build(spec, per_sample);
  Rng rng(21);
  PerturbParams(layer.get(), &rng);
  Tensor y, dx;
  layer->Forward(x, &y, mode);
  layer->Backward(dy, &dx);
  std::vector<float> all(y.data(), y.data() + y.size());
  all.insert(all.end(), dx.data(), dx.data() + dx.size());
  for (const Param& p : layer->Params()) {
    all.insert(all.end(), p.grad->data(), p.grad->data() + p.grad->size());
  }
  return all;
}

// Batch norm splits the channels (rows of dense features), ReLU, the
// residual sums and dropout's evaluation copy the elements of large
// tensors (>= 32K / 64K values) over the BLAS threads: the same bits on 1
// and 2 threads, train and eval.
TEST(ThreadSplitTest, SameBitsOnOneAndTwoThreads) {
  const int saved = BlasThreads();
  Rng rng(17);
  Tensor x({8, 16, 24, 24}), dy({8, 16, 24, 24});  // 73,728 values.
  FillNormal(&x, &rng, 1.5f);
  FillNormal(&dy, &rng);
  LayerSpec leaky = Spec("leaky_relu");
  leaky.alpha = 0.1f;
  for (const LayerSpec& spec : {Spec("batch_norm"), Spec("relu"), leaky,
                                Residual({Spec("batch_norm"), Spec("relu")})}) {
    for (Mode mode : {Mode::kTrain, Mode::kEval}) {
      SCOPED_TRACE(testing::Message()
                   << spec.kind << (mode == Mode::kTrain ? " train" : " eval"));
      SetBlasThreads(1);
      const std::vector<float> one = RunOnce(spec, x, dy, mode);
      SetBlasThreads(2);
      const std::vector<float> two = RunOnce(spec, x, dy, mode);
      EXPECT_EQ(one, two);
    }
  }
  // Dense features (131,072 values): batch norm splits the rows, and
  // dropout its evaluation-mode copy.
  Tensor xf({256, 512}), dyf({256, 512});
  FillNormal(&xf, &rng, 1.5f);
  FillNormal(&dyf, &rng);
  LayerSpec dropout = Spec("dropout");
  dropout.keep_prob = 0.5f;
  for (auto [spec, mode] : {std::pair{Spec("batch_norm"), Mode::kTrain},
                            std::pair{Spec("batch_norm"), Mode::kEval},
                            std::pair{dropout, Mode::kEval}}) {
    SCOPED_TRACE(testing::Message()
                 << spec.kind << " features"
                 << (mode == Mode::kTrain ? " train" : " eval"));
    SetBlasThreads(1);
    const std::vector<float> one = RunOnce(spec, xf, dyf, mode);
    SetBlasThreads(2);
    EXPECT_EQ(one, RunOnce(spec, xf, dyf, mode));
  }
  SetBlasThreads(saved);
}

// The split batch norm against the textbook formula in double.
TEST(ThreadSplitTest, BatchNormMatchesDirectStatistics) {
  const int saved = BlasThreads();
  SetBlasThreads(2);
  auto layer = Build(Spec("batch_norm"), {16, 24, 24});
  Rng rng(19);
  Tensor x({8, 16, 24, 24}), y;
  FillNormal(&x, &rng, 2.0f);
  for (int64_t i = 0; i < x.size(); ++i) x[i] += 0.01f * float(i % 977);
  layer->Forward(x, &y, Mode::kTrain);
  const int64_t n = 8, c_n = 16, s_n = 24 * 24;
  for (int64_t c = 0; c < c_n; ++c) {
    double sum = 0, sum2 = 0;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t k = 0; k < s_n; ++k) sum += x[(i * c_n + c) * s_n + k];
    }
    const double mean = sum / double(n * s_n);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t k = 0; k < s_n; ++k) {
        const double d = x[(i * c_n + c) * s_n + k] - mean;
        sum2 += d * d;
      }
    }
    const double inv_std = 1.0 / std::sqrt(sum2 / double(n * s_n) + 1e-5);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t k = 0; k < s_n; k += 37) {
        const int64_t j = (i * c_n + c) * s_n + k;
        ASSERT_NEAR(y[j], (x[j] - mean) * inv_std, 1e-4)
            << "channel " << c << ", element " << j;
      }
    }
  }
  SetBlasThreads(saved);
}

// --------------------------------------------------------------- dropout

TEST(DropoutTest, PreservesExpectationInTraining) {
  LayerSpec spec = Spec("dropout");
  spec.keep_prob = 0.8f;
  auto layer = Build(spec, {100});
  Rng mask_rng(5);
  layer->SetRng(&mask_rng);
  Tensor x({1000, 100});
  x.Fill(2.0f);
  Tensor y;
  layer->Forward(x, &y, Mode::kTrain);
  double sum = 0;
  int64_t zeros = 0;
  for (int64_t i = 0; i < y.size(); ++i) {
    sum += y[i];
    if (y[i] == 0.0f) {
      ++zeros;
    } else {
      EXPECT_FLOAT_EQ(y[i], 2.0f / 0.8f);
    }
  }
  // 1e5 Bernoulli(0.8) draws: the mean of y has sd 2 * 0.5 / sqrt(1e5) =
  // 0.0032; the drop fraction has sd 0.0013.
  EXPECT_NEAR(sum / y.size(), 2.0, 0.02);
  EXPECT_NEAR(double(zeros) / y.size(), 0.2, 0.008);
  // A second step draws a fresh mask.
  Tensor y2;
  layer->Forward(x, &y2, Mode::kTrain);
  int64_t differ = 0;
  for (int64_t i = 0; i < y.size(); ++i) differ += y[i] != y2[i];
  EXPECT_GT(differ, y.size() / 5);
  // Backward uses the mask of the last forward.
  Tensor g({1000, 100});
  g.Fill(1.0f);
  Tensor dx;
  layer->Backward(g, &dx);
  for (int64_t i = 0; i < y.size(); ++i) EXPECT_EQ(dx[i], y2[i] / 2.0f);
}

TEST(DropoutTest, EvalIsExactIdentity) {
  LayerSpec spec = Spec("dropout");
  spec.keep_prob = 0.3f;
  auto layer = Build(spec, {2, 3, 3});
  Rng mask_rng(5);
  layer->SetRng(&mask_rng);
  Rng rng(12);
  Tensor x({4, 2, 3, 3});
  FillNormal(&x, &rng);
  Tensor y;
  layer->Forward(x, &y, Mode::kEval);
  ASSERT_EQ(y.shape(), x.shape());
  for (int64_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], x[i]);
  Tensor dx;
  layer->Backward(x, &dx);
  for (int64_t i = 0; i < x.size(); ++i) EXPECT_EQ(dx[i], x[i]);
}

TEST(DropoutTest, ModelUsesItsSeededRng) {
  ModelSpec spec;
  spec.input_shape = {20};
  LayerSpec drop = Spec("dropout");
  drop.keep_prob = 0.5f;
  spec.layers = {Dense(30), drop, Dense(3)};
  spec.seed = 42;
  auto a = Model::Build(spec);
  auto b = Model::Build(spec);
  ASSERT_TRUE(a.ok() && b.ok());
  Tensor x({8, 20});
  Rng rng(13);
  FillNormal(&x, &rng);
  Tensor ya = (*a)->Forward(x, Mode::kTrain).Clone();
  Tensor yb = (*b)->Forward(x, Mode::kTrain).Clone();
  for (int64_t i = 0; i < ya.size(); ++i) EXPECT_EQ(ya[i], yb[i]);
  // Training outputs are random; evaluation outputs are deterministic.
  Tensor ya2 = (*a)->Forward(x, Mode::kTrain).Clone();
  int64_t differ = 0;
  for (int64_t i = 0; i < ya.size(); ++i) differ += ya[i] != ya2[i];
  EXPECT_GT(differ, 0);
  Tensor e1 = (*a)->Forward(x, Mode::kEval).Clone();
  Tensor e2 = (*a)->Forward(x, Mode::kEval).Clone();
  for (int64_t i = 0; i < e1.size(); ++i) EXPECT_EQ(e1[i], e2[i]);
}

TEST(DropoutTest, ModeFlowsIntoResidualBodies) {
  // x + Dropout(Dense(x)): evaluation is deterministic and equals the
  // block with the dropout removed; training draws masks.
  ModelSpec spec;
  spec.input_shape = {16};
  LayerSpec drop = Spec("dropout");
  drop.keep_prob = 0.5f;
  spec.layers = {Residual({Dense(16), drop}), Dense(3)};
  spec.seed = 3;
  ModelSpec plain = spec;
  plain.layers[0].body.pop_back();  // Same weights: dropout draws none.
  auto model = Model::Build(spec);
  auto reference = Model::Build(plain);
  ASSERT_TRUE(model.ok() && reference.ok());
  Tensor x({5, 16});
  Rng rng(15);
  FillNormal(&x, &rng);
  Tensor eval = (*model)->Forward(x, Mode::kEval).Clone();
  const Tensor& expected = (*reference)->Forward(x, Mode::kEval);
  for (int64_t i = 0; i < eval.size(); ++i) EXPECT_EQ(eval[i], expected[i]);
  const Tensor& train = (*model)->Forward(x, Mode::kTrain);
  int64_t differ = 0;
  for (int64_t i = 0; i < eval.size(); ++i) differ += eval[i] != train[i];
  EXPECT_GT(differ, 0);
}

TEST(StatsTest, CoverConvBatchNormAndResidualLayers) {
  ModelSpec spec;
  spec.input_shape = {1, 6, 6};
  spec.layers = {Conv(3, 3, 1, 1),
                 Spec("batch_norm"),
                 Spec("relu"),
                 Residual({Conv(4, 3, 2, 1), Spec("batch_norm")}),
                 Spec("global_avg_pool"),
                 Dense(2)};
  spec.init = InitKind::kHe;
  auto model = Model::Build(spec);
  ASSERT_TRUE(model.ok()) << model.status();
  Tensor x({4, 1, 6, 6}), y({4});
  Rng rng(16);
  FillNormal(&x, &rng);
  for (int i = 0; i < 4; ++i) y[i] = float(i % 2);
  Tensor grad;
  (*model)->ZeroGrad();
  const Tensor& out = (*model)->Forward(x, Mode::kTrain);
  (*model)->loss()->Compute(out, y, &grad);
  (*model)->Backward(grad);
  // Expected norms straight from the parameter gradients.
  auto norm_of = [&](const std::vector<std::string>& names) {
    double s = 0;
    for (const Param& p : (*model)->Params()) {
      for (const std::string& n : names) {
        if (p.name == n) s += p.grad->SquaredNorm();
      }
    }
    return std::sqrt(s);
  };
  std::vector<LayerStats> stats = (*model)->CollectLayerStats(nullptr);
  ASSERT_EQ(stats.size(), 4u);
  EXPECT_EQ(stats[0].kind, "conv2d");
  EXPECT_NEAR(stats[0].grad_weight_norm, norm_of({"conv2d0.weight"}), 1e-9);
  EXPECT_NEAR(stats[0].grad_bias_norm, norm_of({"conv2d0.bias"}), 1e-9);
  EXPECT_EQ(stats[1].kind, "batch_norm");
  EXPECT_NEAR(stats[1].grad_weight_norm, norm_of({"batch_norm1.gamma"}), 1e-9);
  EXPECT_NEAR(stats[1].grad_bias_norm, norm_of({"batch_norm1.beta"}), 1e-9);
  EXPECT_EQ(stats[2].kind, "residual");
  EXPECT_NEAR(stats[2].grad_weight_norm,
              norm_of({"residual3.conv2d0.weight",
                       "residual3.batch_norm1.gamma", "residual3.proj.weight"}),
              1e-9);
  EXPECT_NEAR(stats[2].grad_bias_norm,
              norm_of({"residual3.conv2d0.bias", "residual3.batch_norm1.beta",
                       "residual3.proj.bias"}),
              1e-9);
  // (A bias right before a batch norm gets no gradient: the norm's mean
  // subtraction cancels it, so only weight gradients are checked here.)
  for (const LayerStats& s : stats) EXPECT_GT(s.grad_weight_norm, 0) << s.name;
}

// ------------------------------------------------------------ batch norm

// Per-channel mean and variance of `y` [N, C, S...].
void ChannelMoments(const Tensor& y, int64_t c, std::vector<double>* mean,
                    std::vector<double>* var) {
  const int64_t n = y.dim(0), s = y.size() / (n * c);
  mean->assign(c, 0.0);
  var->assign(c, 0.0);
  for (int64_t k = 0; k < c; ++k) {
    double s1 = 0, s2 = 0;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < s; ++j) {
        const double v = y[(i * c + k) * s + j];
        s1 += v;
        s2 += v * v;
      }
    }
    (*mean)[k] = s1 / double(n * s);
    (*var)[k] = s2 / double(n * s) - (*mean)[k] * (*mean)[k];
  }
}

TEST(BatchNormTest, TrainOutputIsStandardizedPerFeature) {
  Rng rng(14);
  for (const Shape& in : {Shape{5}, Shape{3, 4, 4}}) {
    SCOPED_TRACE(ShapeToString(in));
    auto layer = Build(Spec("batch_norm"), in);
    const int64_t c = in[0];
    Tensor x(Batched(64, in));
    const int64_t s = x.size() / (64 * c);
    // Feature k has mean 3k - 4 and standard deviation k + 0.5.
    for (int64_t i = 0; i < 64; ++i) {
      for (int64_t k = 0; k < c; ++k) {
        for (int64_t j = 0; j < s; ++j) {
          x[(i * c + k) * s + j] = rng.Normal(3.0f * k - 4.0f, k + 0.5f);
        }
      }
    }
    Tensor y;
    layer->Forward(x, &y, Mode::kTrain);
    std::vector<double> mean, var;
    ChannelMoments(y, c, &mean, &var);
    for (int64_t k = 0; k < c; ++k) {
      EXPECT_NEAR(mean[k], 0.0, 1e-5);
      EXPECT_NEAR(var[k], 1.0, 1e-3);  // var / (var + 1e-5).
    }
    // gamma and beta then scale and shift: mean beta, sd |gamma|.
    auto params = layer->Params();
    ASSERT_EQ(params[0].name, "batch_norm0.gamma");
    ASSERT_EQ(params[1].name, "batch_norm0.beta");
    for (int64_t k = 0; k < c; ++k) {
      (*params[0].value)[k] = 2.0f + k;
      (*params[1].value)[k] = -1.0f + k;
    }
    layer->Forward(x, &y, Mode::kTrain);
    ChannelMoments(y, c, &mean, &var);
    for (int64_t k = 0; k < c; ++k) {
      EXPECT_NEAR(mean[k], -1.0 + k, 1e-4);
      EXPECT_NEAR(std::sqrt(var[k]), 2.0 + k, 2e-3);
    }
  }
}

TEST(BatchNormTest, RunningStatisticsAndEvalOutput) {
  LayerSpec spec = Spec("batch_norm");
  spec.momentum = 0.9f;
  spec.epsilon = 1e-3f;
  auto layer = Build(spec, {2});
  auto buffers = layer->Buffers();
  ASSERT_EQ(buffers.size(), 2u);
  EXPECT_EQ(buffers[0].first, "batch_norm0.running_mean");
  EXPECT_EQ(buffers[1].first, "batch_norm0.running_var");
  Tensor* running_mean = buffers[0].second;
  Tensor* running_var = buffers[1].second;
  EXPECT_EQ((*running_mean)[0], 0.0f);
  EXPECT_EQ((*running_var)[0], 1.0f);

  // Feature 0: 1, 2, 3, 6 (mean 3, unbiased variance 14/3);
  // feature 1: 0, 0, 4, 4 (mean 2, unbiased variance 16/3).
  Tensor x({4, 2});
  const float v[8] = {1, 0, 2, 0, 3, 4, 6, 4};
  std::copy(v, v + 8, x.data());
  Tensor y;
  layer->Forward(x, &y, Mode::kTrain);
  EXPECT_NEAR((*running_mean)[0], 0.1 * 3, 1e-6);
  EXPECT_NEAR((*running_mean)[1], 0.1 * 2, 1e-6);
  EXPECT_NEAR((*running_var)[0], 0.9 + 0.1 * 14.0 / 3, 1e-6);
  EXPECT_NEAR((*running_var)[1], 0.9 + 0.1 * 16.0 / 3, 1e-6);
  // Training output used the batch statistics (biased variance 3.5).
  EXPECT_NEAR(y[0], (1 - 3) / std::sqrt(3.5 + 1e-3), 1e-5);

  // Evaluation uses the running statistics, whatever the batch.
  auto params = layer->Params();
  (*params[0].value)[0] = 1.5f;
  (*params[0].value)[1] = 0.5f;
  (*params[1].value)[0] = 0.25f;
  (*params[1].value)[1] = -2.0f;
  (*running_mean)[0] = 1.0f;
  (*running_var)[0] = 4.0f;
  (*running_mean)[1] = -3.0f;
  (*running_var)[1] = 0.25f;
  Tensor z({1, 2});
  z[0] = 5.0f;
  z[1] = 7.0f;
  layer->Forward(z, &y, Mode::kEval);
  EXPECT_NEAR(y[0], 1.5 * (5 - 1) / std::sqrt(4 + 1e-3) + 0.25, 1e-5);
  EXPECT_NEAR(y[1], 0.5 * (7 + 3) / std::sqrt(0.25 + 1e-3) - 2.0, 1e-4);
  EXPECT_EQ((*running_mean)[0], 1.0f);  // Evaluation does not update.
}

TEST(BatchNormTest, ModelExposesNestedRunningStatistics) {
  ModelSpec spec;
  spec.input_shape = {1, 6, 6};
  spec.layers = {Conv(4, 3, 1, 1),
                 Spec("batch_norm"),
                 Spec("relu"),
                 Residual({Conv(4, 3, 1, 1), Spec("batch_norm")}),
                 Spec("global_avg_pool"),
                 Dense(3)};
  auto model = Model::Build(spec);
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<std::string> names;
  for (auto& b : (*model)->Buffers()) names.push_back(b.first);
  EXPECT_THAT(names, ::testing::ElementsAre(
                         "batch_norm1.running_mean", "batch_norm1.running_var",
                         "residual3.batch_norm1.running_mean",
                         "residual3.batch_norm1.running_var"));
}

// -------------------------------------------------------------- bad input

absl::Status BuildError(const Shape& in, std::vector<LayerSpec> layers) {
  ModelSpec spec;
  spec.input_shape = in;
  spec.layers = std::move(layers);
  spec.layers.push_back(Spec("flatten"));
  spec.layers.push_back(Dense(2));
  auto model = Model::Build(spec);
  return model.ok() ? absl::OkStatus() : model.status();
}

void ExpectInvalid(const absl::Status& status,
                   const std::vector<std::string>& parts) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  for (const std::string& part : parts) {
    EXPECT_THAT(std::string(status.message()), HasSubstr(part));
  }
}

TEST(BadInputTest, ConvKernelLargerThanPaddedInput) {
  ExpectInvalid(BuildError({1, 3, 3}, {Conv(4, 5, 1, 0)}),
                {"conv2d0", "5x5", "[1, 3, 3]"});
  ExpectInvalid(BuildError({2, 8, 2}, {Conv(4, 5, 1, 1)}),
                {"conv2d0", "5x5", "[2, 8, 2]", "padding 1"});
  // Padding 1 makes a 5x5 kernel fit a 3x3 input.
  EXPECT_TRUE(BuildError({1, 3, 3}, {Conv(4, 5, 1, 1)}).ok());
}

TEST(BadInputTest, ResidualBodyThatCannotBeProjected) {
  // Rank 3 -> rank 1.
  ExpectInvalid(BuildError({1, 8, 8}, {Residual({Spec("flatten"), Dense(10)})}),
                {"residual0", "[1, 8, 8]", "[10]", "projected"});
  // Body that grows the map (padding 2 on a 3x3 kernel): no 1x1 conv matches.
  ExpectInvalid(BuildError({2, 8, 8}, {Residual({Conv(2, 3, 1, 2)})}),
                {"residual0", "[2, 8, 8]", "[2, 10, 10]"});
  // Errors inside the body name the nested layer.
  ExpectInvalid(BuildError({1, 3, 3}, {Residual({Conv(2, 5, 1, 0)})}),
                {"residual0", "residual0.conv2d0", "[1, 3, 3]"});
  ExpectInvalid(BuildError({1, 4, 4}, {Residual({})}),
                {"residual0", "body is empty"});
}

TEST(BadInputTest, PoolThatDoesNotDivide) {
  ExpectInvalid(BuildError({3, 5, 5}, {Pool("max_pool2d", 2, 2)}),
                {"max_pool2d0", "[3, 5, 5]", "does not divide"});
  ExpectInvalid(BuildError({3, 6, 7}, {Pool("avg_pool2d", 2, 2)}),
                {"avg_pool2d0", "[3, 6, 7]", "does not divide"});
  ExpectInvalid(BuildError({3, 2, 2}, {Pool("avg_pool2d", 3, 1)}),
                {"avg_pool2d0", "[3, 2, 2]", "larger"});
  EXPECT_TRUE(BuildError({3, 6, 6}, {Pool("max_pool2d", 2, 2)}).ok());
}

TEST(BadInputTest, WrongRank) {
  ExpectInvalid(BuildError({784}, {Conv(4, 3, 1, 1)}), {"conv2d0", "[784]"});
  ExpectInvalid(BuildError({784}, {Pool("max_pool2d", 2, 2)}),
                {"max_pool2d0", "[784]"});
  ExpectInvalid(BuildError({784}, {Pool("avg_pool2d", 2, 2)}),
                {"avg_pool2d0", "[784]"});
  ExpectInvalid(BuildError({28, 28}, {Spec("global_avg_pool")}),
                {"global_avg_pool0", "[28, 28]"});
  ExpectInvalid(BuildError({28, 28}, {Spec("batch_norm")}),
                {"batch_norm0", "[28, 28]"});
  ExpectInvalid(BuildError({1, 2, 3, 4}, {Spec("batch_norm")}),
                {"batch_norm0", "[1, 2, 3, 4]"});
}

TEST(BadInputTest, FieldsOutOfRange) {
  LayerSpec drop = Spec("dropout");
  for (float p : {0.0f, -0.5f, 1.5f, std::nanf("")}) {
    drop.keep_prob = p;
    ExpectInvalid(BuildError({4}, {drop}), {"dropout0", "keep_prob"});
  }
  LayerSpec bn = Spec("batch_norm");
  bn.momentum = 1.0f;
  ExpectInvalid(BuildError({4}, {bn}), {"batch_norm0", "momentum"});
  bn.momentum = 0.9f;
  bn.epsilon = 0.0f;
  ExpectInvalid(BuildError({4}, {bn}), {"batch_norm0", "epsilon"});
  ExpectInvalid(BuildError({1, 4, 4}, {Conv(0, 3, 1, 1)}),
                {"conv2d0", "filters"});
  ExpectInvalid(BuildError({1, 4, 4}, {Conv(2, 0, 1, 0)}),
                {"conv2d0", "kernel"});
  ExpectInvalid(BuildError({1, 4, 4}, {Conv(2, 3, 0, 1)}),
                {"conv2d0", "stride"});
  ExpectInvalid(BuildError({1, 4, 4}, {Conv(2, 3, 1, 3)}),
                {"conv2d0", "padding"});
  ExpectInvalid(BuildError({1, 4, 4}, {Pool("max_pool2d", 2, 0)}),
                {"max_pool2d0", "stride"});
}

}  // namespace
}  // namespace nnlab
