// What Nielsen's ch. 5 setup needs from the core: sigmoid cross-entropy on
// one-hot class labels, and biases drawn from N(0, 1) — checked by value, by
// central finite differences, and through a whole model's backward pass.
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "core/model/loss.h"
#include "core/model/model.h"
#include "gtest/gtest.h"
#include "tests/core/gradient_check.h"

namespace nnlab {
namespace {

using testing_util::FillNormal;
using testing_util::RelError;

// dLoss/dpred against central differences (h = 1e-2, in double).
void CheckLossGradient(Loss* loss, Tensor* pred, const Tensor& target) {
  Tensor grad, scratch;
  loss->Compute(*pred, target, &grad);
  const Tensor analytic = grad.Clone();
  const float h = 1e-2f;
  for (int64_t i = 0; i < pred->size(); ++i) {
    const float saved = (*pred)[i];
    (*pred)[i] = saved + h;
    const double plus = loss->Compute(*pred, target, &scratch);
    (*pred)[i] = saved - h;
    const double minus = loss->Compute(*pred, target, &scratch);
    (*pred)[i] = saved;
    const double numeric = (plus - minus) / (2 * h);
    EXPECT_LT(RelError(analytic[i], numeric), 1e-2)
        << "element " << i << " analytic " << analytic[i] << " numeric "
        << numeric;
  }
}

TEST(SigmoidCrossEntropyClassesTest, SumsOverOutputsAndAveragesOverBatch) {
  auto loss = MakeLoss(LossKind::kSigmoidCrossEntropyClasses);
  ASSERT_NE(loss, nullptr);
  EXPECT_TRUE(loss->is_classifier());
  Tensor pred({2, 3}), target({2}), grad;
  const float z[] = {1, -2, 0.5f, 0, 3, -1};
  std::copy(z, z + 6, pred.data());
  target[0] = 2;
  target[1] = 1;
  // -1/N sum_n sum_k y ln a + (1 - y) ln(1 - a), y one-hot.
  double want = 0;
  for (int r = 0; r < 2; ++r) {
    for (int k = 0; k < 3; ++k) {
      const double a = 1 / (1 + std::exp(-double(z[r * 3 + k])));
      want -= k == int(target[r]) ? std::log(a) : std::log(1 - a);
    }
  }
  want /= 2;
  EXPECT_NEAR(loss->Compute(pred, target, &grad), want, 1e-6);
  // dC/dz = (a - y) / N.
  EXPECT_NEAR(grad[2], (1 / (1 + std::exp(-0.5)) - 1) / 2, 1e-7);
  EXPECT_NEAR(grad[3], (0.5 - 0) / 2, 1e-7);
  EXPECT_EQ(loss->CountCorrect(pred, target), 1);  // Row 1: argmax 1.
}

TEST(SigmoidCrossEntropyClassesTest, IsSigmoidCrossEntropyOnOneHotTargets) {
  auto classes = MakeLoss(LossKind::kSigmoidCrossEntropyClasses);
  auto binary = MakeLoss(LossKind::kSigmoidCrossEntropy);
  Rng rng(9);
  Tensor pred({5, 10}), labels({5}), one_hot({5, 10}), g1, g2;
  FillNormal(&pred, &rng, 3.0f);
  for (int r = 0; r < 5; ++r) {
    labels[r] = float((r * 7) % 10);
    one_hot[r * 10 + (r * 7) % 10] = 1;
  }
  EXPECT_FLOAT_EQ(classes->Compute(pred, labels, &g1),
                  binary->Compute(pred, one_hot, &g2));
  for (int64_t i = 0; i < g1.size(); ++i) EXPECT_FLOAT_EQ(g1[i], g2[i]);
}

TEST(SigmoidCrossEntropyClassesTest, GradientMatchesFiniteDifferences) {
  auto loss = MakeLoss(LossKind::kSigmoidCrossEntropyClasses);
  Rng rng(4);
  Tensor pred({4, 10}), target({4});
  FillNormal(&pred, &rng, 2.0f);
  for (int r = 0; r < 4; ++r) target[r] = float(3 * r);
  CheckLossGradient(loss.get(), &pred, target);
}

TEST(SigmoidCrossEntropyClassesTest, RejectsBadTargets) {
  auto loss = MakeLoss(LossKind::kSigmoidCrossEntropyClasses);
  Tensor target({2});
  target[0] = 1;
  target[1] = 10;  // Out of range for 10 outputs.
  EXPECT_EQ(loss->ValidateTarget({2, 10}, target).code(),
            absl::StatusCode::kInvalidArgument);
  target[1] = 0.5f;
  EXPECT_EQ(loss->ValidateTarget({2, 10}, target).code(),
            absl::StatusCode::kInvalidArgument);
  target[1] = 9;
  EXPECT_TRUE(loss->ValidateTarget({2, 10}, target).ok());
  Tensor one_hot({2, 10});  // The plain loss's targets are not class indices.
  EXPECT_EQ(loss->ValidateTarget({2, 10}, one_hot).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(loss->ValidateTarget({2, 10, 1}, target).code(),
            absl::StatusCode::kInvalidArgument);
}

ModelSpec SmallNet(InitKind init, BiasInit bias_init) {
  ModelSpec spec;
  spec.input_shape = {200};
  LayerSpec dense, sigmoid;
  dense.kind = "dense";
  dense.units = 400;
  sigmoid.kind = "sigmoid";
  spec.layers = {dense, sigmoid};
  dense.units = 10;
  spec.layers.push_back(dense);
  spec.loss = LossKind::kSigmoidCrossEntropyClasses;
  spec.init = init;
  spec.bias_init = bias_init;
  spec.seed = 5;
  return spec;
}

// Mean and standard deviation of a tensor.
void Moments(const Tensor& t, double* mean, double* sd) {
  double s = 0, s2 = 0;
  for (int64_t i = 0; i < t.size(); ++i) {
    s += t[i];
    s2 += double(t[i]) * t[i];
  }
  *mean = s / t.size();
  *sd = std::sqrt(s2 / t.size() - *mean * *mean);
}

TEST(BiasInitTest, DefaultKeepsEachInitialisersBiases) {
  for (InitKind init : {InitKind::kScaledNormal, InitKind::kHe}) {
    auto model =
        std::move(Model::Build(SmallNet(init, BiasInit::kDefault))).value();
    for (const Param& p : model->Params()) {
      if (p.name.find(".bias") == std::string::npos) continue;
      EXPECT_EQ(p.value->SquaredNorm(), 0) << p.name;
    }
  }
  // Under N(0, 1) dense biases have always been N(0, 1).
  auto model =
      std::move(Model::Build(SmallNet(InitKind::kNormal, BiasInit::kDefault)))
          .value();
  EXPECT_GT(model->Params()[1].value->SquaredNorm(), 100);
}

TEST(BiasInitTest, NormalDrawsUnitGaussiansAfterTheSameWeights) {
  auto plain = std::move(Model::Build(SmallNet(InitKind::kScaledNormal,
                                               BiasInit::kDefault)))
                   .value();
  auto nielsen = std::move(Model::Build(SmallNet(InitKind::kScaledNormal,
                                                 BiasInit::kNormal)))
                     .value();
  std::vector<Param> a = plain->Params(), b = nielsen->Params();
  ASSERT_EQ(a.size(), 4u);
  ASSERT_EQ(b.size(), 4u);
  for (size_t i = 0; i < a.size(); i += 2) {
    ASSERT_EQ(b[i].name.substr(b[i].name.size() - 7), ".weight");
    for (int64_t k = 0; k < a[i].value->size(); ++k) {
      ASSERT_EQ((*a[i].value)[k], (*b[i].value)[k]) << b[i].name;
    }
  }
  // W ~ N(0, 1/sqrt(200)) and the 400 hidden biases ~ N(0, 1).
  double mean, sd;
  Moments(*b[0].value, &mean, &sd);
  EXPECT_NEAR(mean, 0, 0.01);
  EXPECT_NEAR(sd, 1 / std::sqrt(200.0), 0.005);
  Moments(*b[1].value, &mean, &sd);
  EXPECT_EQ(b[1].name, "dense0.bias");
  EXPECT_NEAR(mean, 0, 0.15);  // 3 standard errors of 400 draws.
  EXPECT_NEAR(sd, 1, 0.11);
}

TEST(BiasInitTest, ZeroOverridesTheNormalInitialisersBiases) {
  auto model =
      std::move(Model::Build(SmallNet(InitKind::kNormal, BiasInit::kZero)))
          .value();
  EXPECT_EQ(model->Params()[1].value->SquaredNorm(), 0);
  EXPECT_EQ(model->Params()[3].value->SquaredNorm(), 0);
  EXPECT_GT(model->Params()[0].value->SquaredNorm(), 1000);
}

TEST(BiasInitTest, CenteredHoldsZAtZeroForInputsAtOneHalf) {
  auto model =
      std::move(Model::Build(SmallNet(InitKind::kNormal, BiasInit::kCentered)))
          .value();
  // z = W a + b with a = (1/2, ..., 1/2) is 0 in every dense layer.
  Tensor half({1, 200});
  for (int64_t i = 0; i < 200; ++i) half[i] = 0.5f;
  std::vector<Param> p = model->Params();
  for (size_t k = 0; k < p.size(); k += 2) {
    const Tensor& w = *p[k].value;
    const Tensor& b = *p[k + 1].value;
    const int64_t in = w.dim(1);
    double largest = 0;
    for (int64_t o = 0; o < w.dim(0); ++o) {
      double z = b[o];
      for (int64_t i = 0; i < in; ++i) z += 0.5 * w[o * in + i];
      largest = std::max(largest, std::abs(z));
    }
    EXPECT_LT(largest, 1e-4) << p[k].name;
  }
  // So the hidden layer's sigmoids sit at 1/2 for that input, and the
  // output layer's z is 0 as well.
  const Tensor& out = model->Forward(half, Mode::kEval);
  for (int64_t k = 0; k < out.size(); ++k) EXPECT_NEAR(out[k], 0, 1e-3);
}

// The whole Nielsen model: d(mean cost)/d(every bias) from Backward against
// central differences of the model's cost.
TEST(NielsenModelTest, BiasGradientsMatchFiniteDifferences) {
  ModelSpec spec;
  spec.input_shape = {6};
  LayerSpec dense, sigmoid;
  dense.kind = "dense";
  sigmoid.kind = "sigmoid";
  dense.units = 5;
  spec.layers = {dense, sigmoid, dense, sigmoid};
  dense.units = 4;
  spec.layers.push_back(dense);
  spec.loss = LossKind::kSigmoidCrossEntropyClasses;
  spec.init = InitKind::kScaledNormal;
  spec.bias_init = BiasInit::kNormal;
  auto model = std::move(Model::Build(spec)).value();
  Rng rng(21);
  Tensor x({8, 6}), y({8}), grad;
  FillNormal(&x, &rng);
  for (int i = 0; i < 8; ++i) y[i] = float(i % 4);
  auto cost = [&]() {
    const Tensor& out = model->Forward(x, Mode::kTrain);
    return double(model->loss()->Compute(out, y, &grad));
  };
  model->ZeroGrad();
  cost();
  model->Backward(grad);
  const float h = 1e-2f;
  for (const Param& p : model->Params()) {
    const Tensor analytic = p.grad->Clone();
    for (int64_t i = 0; i < p.value->size(); ++i) {
      const float saved = (*p.value)[i];
      (*p.value)[i] = saved + h;
      const double plus = cost();
      (*p.value)[i] = saved - h;
      const double minus = cost();
      (*p.value)[i] = saved;
      EXPECT_LT(RelError(analytic[i], (plus - minus) / (2 * h)), 2e-2)
          << p.name << "[" << i << "]";
    }
  }
}

}  // namespace
}  // namespace nnlab
