// Dense layer, activations and losses: values and gradients against
// central finite differences.
#include <cmath>
#include <memory>

#include "core/layers/layer.h"
#include "core/layers/layer_factories.h"
#include "core/model/loss.h"
#include "gtest/gtest.h"
#include "tests/core/gradient_check.h"

namespace nnlab {
namespace {

using testing_util::CheckLayerGradients;
using testing_util::FillNormal;

std::unique_ptr<Layer> Build(const LayerSpec& spec, const Shape& in,
                             InitKind init = InitKind::kGlorot) {
  Rng rng(7);
  Shape out;
  auto layer = MakeLayer(spec, spec.kind, in, init, &rng, &out);
  EXPECT_TRUE(layer.ok()) << layer.status();
  return std::move(layer).value();
}

TEST(DenseTest, ForwardIsAffineMap) {
  LayerSpec spec;
  spec.kind = "dense";
  spec.units = 2;
  auto layer = Build(spec, {3});
  auto params = layer->Params();
  ASSERT_EQ(params.size(), 2u);
  // W = [[1, 2, 3], [4, 5, 6]], b = [0.5, -1].
  for (int i = 0; i < 6; ++i) (*params[0].value)[i] = i + 1;
  (*params[1].value)[0] = 0.5f;
  (*params[1].value)[1] = -1.0f;
  Tensor x({1, 3});
  x[0] = 1;
  x[1] = -1;
  x[2] = 2;
  Tensor y;
  layer->Forward(x, &y, Mode::kEval);
  ASSERT_EQ(y.shape(), Shape({1, 2}));
  EXPECT_FLOAT_EQ(y[0], 1 - 2 + 6 + 0.5f);
  EXPECT_FLOAT_EQ(y[1], 4 - 5 + 12 - 1.0f);
}

TEST(DenseTest, GradientsMatchFiniteDifferences) {
  LayerSpec spec;
  spec.kind = "dense";
  spec.units = 4;
  auto layer = Build(spec, {5});
  Rng rng(1);
  Tensor x({3, 5});
  FillNormal(&x, &rng);
  CheckLayerGradients(layer.get(), &x);
}

class ActivationGradientTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ActivationGradientTest, MatchesFiniteDifferences) {
  LayerSpec spec;
  spec.kind = GetParam();
  spec.alpha = 0.1f;
  auto layer = Build(spec, {6});
  Rng rng(2);
  Tensor x({4, 6});
  FillNormal(&x, &rng);
  // Keep ReLU inputs away from the kink, where the derivative is undefined.
  for (int64_t i = 0; i < x.size(); ++i) {
    if (std::abs(x[i]) < 0.05f) x[i] = 0.3f;
  }
  CheckLayerGradients(layer.get(), &x, Mode::kTrain, 2e-2, 1e-3f);
}

INSTANTIATE_TEST_SUITE_P(All, ActivationGradientTest,
                         ::testing::Values("sigmoid", "tanh", "relu",
                                           "leaky_relu"));

TEST(ActivationTest, Values) {
  LayerSpec spec;
  Tensor x({1, 3}), y;
  x[0] = -2;
  x[1] = 0;
  x[2] = 3;
  spec.kind = "sigmoid";
  Build(spec, {3})->Forward(x, &y, Mode::kEval);
  EXPECT_NEAR(y[0], 1 / (1 + std::exp(2.0)), 1e-6);
  EXPECT_FLOAT_EQ(y[1], 0.5f);
  spec.kind = "relu";
  Build(spec, {3})->Forward(x, &y, Mode::kEval);
  EXPECT_EQ(y[0], 0);
  EXPECT_EQ(y[2], 3);
  spec.kind = "leaky_relu";
  spec.alpha = 0.1f;
  Build(spec, {3})->Forward(x, &y, Mode::kEval);
  EXPECT_FLOAT_EQ(y[0], -0.2f);
  spec.kind = "tanh";
  Build(spec, {3})->Forward(x, &y, Mode::kEval);
  EXPECT_NEAR(y[2], std::tanh(3.0), 1e-6);
}

TEST(ActivationTest, SaturationAndDeadUnits) {
  LayerSpec spec;
  spec.kind = "sigmoid";
  auto sigmoid = Build(spec, {4});
  Tensor x({1, 4}), y;
  x[0] = -10;
  x[1] = 0;
  x[2] = 1;
  x[3] = 10;
  sigmoid->Forward(x, &y, Mode::kEval);
  EXPECT_DOUBLE_EQ(sigmoid->SaturatedFraction(y), 0.5);
  spec.kind = "relu";
  auto relu = Build(spec, {2});
  Tensor x2({2, 2});
  x2[0] = -1;  // Unit 0 negative for both samples: dead.
  x2[1] = 1;
  x2[2] = -3;
  x2[3] = -1;  // Unit 1 alive in sample 0.
  relu->Forward(x2, &y, Mode::kEval);
  EXPECT_DOUBLE_EQ(relu->SaturatedFraction(y), 0.5);
}

// dLoss/dpred against central differences.
void CheckLossGradient(Loss* loss, Tensor* pred, const Tensor& target) {
  Tensor grad, scratch;
  loss->Compute(*pred, target, &grad);
  Tensor analytic = grad.Clone();
  const float h = 1e-2f;
  for (int64_t i = 0; i < pred->size(); ++i) {
    const float saved = (*pred)[i];
    (*pred)[i] = saved + h;
    const double plus = loss->Compute(*pred, target, &scratch);
    (*pred)[i] = saved - h;
    const double minus = loss->Compute(*pred, target, &scratch);
    (*pred)[i] = saved;
    const double numeric = (plus - minus) / (2 * h);
    EXPECT_LT(testing_util::RelError(analytic[i], numeric), 2e-2)
        << "element " << i << " analytic " << analytic[i] << " numeric "
        << numeric;
  }
}

TEST(LossTest, SoftmaxCrossEntropyValueAndGradient) {
  auto loss = MakeLoss(LossKind::kSoftmaxCrossEntropy);
  Tensor pred({2, 3});
  const float logits[] = {1, 2, 3, 0, 0, 0};
  std::copy(logits, logits + 6, pred.data());
  Tensor target({2});
  target[0] = 2;
  target[1] = 0;
  Tensor grad;
  const double want =
      0.5 * (-std::log(std::exp(3.0) /
                       (std::exp(1.0) + std::exp(2.0) + std::exp(3.0))) +
             std::log(3.0));
  EXPECT_NEAR(loss->Compute(pred, target, &grad), want, 1e-6);
  EXPECT_EQ(loss->CountCorrect(pred, target), 2);
  Rng rng(3);
  FillNormal(&pred, &rng);
  CheckLossGradient(loss.get(), &pred, target);
}

TEST(LossTest, MseValueAndGradient) {
  auto loss = MakeLoss(LossKind::kMse);
  Tensor pred({2, 2}), target({2, 2}), grad;
  const float p[] = {1, 2, 3, 4}, t[] = {0, 2, 1, 1};
  std::copy(p, p + 4, pred.data());
  std::copy(t, t + 4, target.data());
  // 1/(2N) sum ||y - a||^2 = (1 + 0 + 4 + 9) / 4.
  EXPECT_FLOAT_EQ(loss->Compute(pred, target, &grad), 3.5f);
  CheckLossGradient(loss.get(), &pred, target);
}

TEST(LossTest, SigmoidCrossEntropyGradient) {
  auto loss = MakeLoss(LossKind::kSigmoidCrossEntropy);
  Tensor pred({3, 1}), target({3, 1});
  Rng rng(4);
  FillNormal(&pred, &rng);
  target[0] = 1;
  target[1] = 0;
  target[2] = 1;
  CheckLossGradient(loss.get(), &pred, target);
}

TEST(LossTest, RejectsBadTargets) {
  auto ce = MakeLoss(LossKind::kSoftmaxCrossEntropy);
  Tensor target({2});
  target[0] = 1;
  target[1] = 10;  // Out of range for 3 classes.
  EXPECT_EQ(ce->ValidateTarget({2, 3}, target).code(),
            absl::StatusCode::kInvalidArgument);
  target[1] = 1.5f;  // Not an index.
  EXPECT_EQ(ce->ValidateTarget({2, 3}, target).code(),
            absl::StatusCode::kInvalidArgument);
  Tensor wrong({3});
  EXPECT_EQ(ce->ValidateTarget({2, 3}, wrong).code(),
            absl::StatusCode::kInvalidArgument);
  auto mse = MakeLoss(LossKind::kMse);
  EXPECT_EQ(mse->ValidateTarget({2, 3}, wrong).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nnlab
