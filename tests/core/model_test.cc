// Model building and validation, training steps, statistics, and the
// non-finite guard.
#include "core/model/model.h"

#include <cmath>
#include <memory>

#include "core/train/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nnlab {
namespace {

using ::testing::HasSubstr;

LayerSpec L(const char* kind, int64_t units = 0) {
  LayerSpec s;
  s.kind = kind;
  s.units = units;
  return s;
}

ModelSpec Mlp(std::vector<int64_t> sizes, const char* act,
              InitKind init = InitKind::kScaledNormal) {
  ModelSpec spec;
  spec.input_shape = {sizes[0]};
  for (size_t i = 1; i < sizes.size(); ++i) {
    spec.layers.push_back(L("dense", sizes[i]));
    if (i + 1 < sizes.size()) spec.layers.push_back(L(act));
  }
  spec.init = init;
  spec.seed = 42;
  return spec;
}

TEST(ModelTest, BuildsAndCountsParameters) {
  auto model = Model::Build(Mlp({784, 30, 10}, "sigmoid"));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->ParameterCount(), 784 * 30 + 30 + 30 * 10 + 10);
  EXPECT_EQ((*model)->output_shape(), Shape({10}));
  // The shape-only pass agrees with the build, and errs as it does.
  const ModelSpec spec = Mlp({784, 30, 10}, "sigmoid");
  EXPECT_EQ(*LayerStack::OutputShape(spec.layers, spec.input_shape, ""),
            Shape({10}));
  absl::StatusOr<Shape> bad =
      LayerStack::OutputShape(spec.layers, Shape({28, 28}), "");
  EXPECT_EQ(bad.status(), Model::Build([&] {
                            ModelSpec s = spec;
                            s.input_shape = {28, 28};
                            return s;
                          }())
                              .status());
  EXPECT_NE(bad.status().message().find("dense0"), std::string::npos)
      << bad.status();
}

TEST(ModelTest, RejectsBadSpecsNamingTheLayer) {
  ModelSpec zero = Mlp({784, 30, 10}, "relu");
  zero.layers[2].units = 0;
  auto s = Model::Build(zero).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("dense2"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("units"));

  ModelSpec unknown = Mlp({4, 3}, "relu");
  unknown.layers.push_back(L("softsign"));
  s = Model::Build(unknown).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("softsign1"));

  ModelSpec image = Mlp({4, 3}, "relu");
  image.input_shape = {1, 28, 28};  // Dense needs rank-1 input.
  s = Model::Build(image).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("[1, 28, 28]"));

  ModelSpec empty_input = Mlp({4, 3}, "relu");
  empty_input.input_shape = {0};
  EXPECT_EQ(Model::Build(empty_input).status().code(),
            absl::StatusCode::kInvalidArgument);

  ModelSpec one_class = Mlp({4, 1}, "relu");  // Softmax over one output.
  EXPECT_EQ(Model::Build(one_class).status().code(),
            absl::StatusCode::kInvalidArgument);

  ModelSpec huge = Mlp({1 << 20, 1 << 20, 10}, "relu");
  EXPECT_EQ(Model::Build(huge).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ModelTest, CheckInputRejectsWrongShapesAndNaN) {
  auto model = std::move(Model::Build(Mlp({4, 3}, "relu"))).value();
  Tensor ok({2, 4});
  EXPECT_TRUE(model->CheckInput(ok).ok());
  Tensor wrong({2, 5});
  EXPECT_EQ(model->CheckInput(wrong).code(),
            absl::StatusCode::kInvalidArgument);
  ok[3] = std::nanf("");
  EXPECT_EQ(model->CheckInput(ok).code(), absl::StatusCode::kInvalidArgument);
}

// A small random regression batch for the 4-input models below.
void RandomBatch(Rng* rng, Tensor* x, Tensor* y, int classes) {
  *x = Tensor({8, 4});
  *y = Tensor({8});
  for (int64_t i = 0; i < x->size(); ++i) (*x)[i] = rng->Normal();
  for (int64_t i = 0; i < 8; ++i) (*y)[i] = float(rng->UniformInt(classes));
}

TEST(TrainerTest, SameSeedGivesBitIdenticalLosses) {
  std::vector<float> losses[2];
  for (int run = 0; run < 2; ++run) {
    auto model = std::move(Model::Build(Mlp({4, 16, 3}, "tanh"))).value();
    TrainOptions options;
    options.optimizer.kind = OptimizerKind::kAdam;
    auto trainer = std::move(Trainer::Create(model.get(), options)).value();
    Rng rng(5);
    Tensor x, y;
    StepStats stats;
    for (int step = 0; step < 20; ++step) {
      RandomBatch(&rng, &x, &y, 3);
      ASSERT_TRUE(trainer->TrainStep(x, y, true, &stats).ok());
      losses[run].push_back(stats.loss);
    }
  }
  EXPECT_EQ(losses[0], losses[1]);
}

TEST(TrainerTest, StepStatsDescribeEveryParameterisedLayer) {
  auto model = std::move(Model::Build(Mlp({4, 16, 8, 3}, "relu"))).value();
  TrainOptions options;
  options.optimizer.kind = OptimizerKind::kSgd;
  options.optimizer.lr = 0.1f;
  auto trainer = std::move(Trainer::Create(model.get(), options)).value();
  Rng rng(9);
  Tensor x, y;
  RandomBatch(&rng, &x, &y, 3);
  StepStats stats;
  ASSERT_TRUE(trainer->TrainStep(x, y, true, &stats).ok());
  EXPECT_EQ(stats.step, 1);
  ASSERT_EQ(stats.layers.size(), 3u);
  EXPECT_EQ(stats.layers[0].name, "dense0");
  EXPECT_EQ(stats.layers[2].name, "dense4");
  for (const LayerStats& l : stats.layers) {
    EXPECT_GT(l.grad_weight_norm, 0);
    EXPECT_GT(l.weight_norm, 0);
  }
  // Hidden layers are followed by ReLU: dead-unit fraction is reported;
  // the output layer has no activation.
  EXPECT_GE(stats.layers[0].saturated_fraction, 0);
  EXPECT_EQ(stats.layers[2].saturated_fraction, -1);
  // SGD moves W by lr * dE/dW, so the update ratio is exactly
  // lr * ||dE/dW|| / ||W_before|| (up to float rounding).
  const LayerStats& last = stats.layers[2];
  auto params = model->Params();
  EXPECT_NEAR(last.update_ratio * last.weight_norm, 0.1 * last.grad_weight_norm,
              1e-2 * 0.1 * last.grad_weight_norm);
  EXPECT_EQ(params[4].name, "dense4.weight");
}

TEST(TrainerTest, NonFiniteGradientStopsWithTheLayerNamed) {
  auto model = std::move(Model::Build(Mlp({4, 8, 3}, "relu"))).value();
  TrainOptions options;
  options.optimizer.kind = OptimizerKind::kSgd;
  options.optimizer.lr = 0.1f;
  auto trainer = std::move(Trainer::Create(model.get(), options)).value();
  // Weights so large the logits overflow to infinity.
  auto params = model->Params();
  params[0].value->Fill(1e38f);
  Tensor before = params[2].value->Clone();
  Rng rng(3);
  Tensor x, y;
  RandomBatch(&rng, &x, &y, 3);
  for (int64_t i = 0; i < x.size(); ++i) x[i] = std::abs(x[i]) + 1;
  StepStats stats;
  absl::Status s = trainer->TrainStep(x, y, false, &stats);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(s.message()), HasSubstr("step 1"));
  // The parameters are left as they were.
  for (int64_t i = 0; i < before.size(); ++i) {
    ASSERT_EQ((*params[2].value)[i], before[i]);
  }
}

TEST(TrainerTest, RejectsBadOptions) {
  auto model = std::move(Model::Build(Mlp({4, 3}, "relu"))).value();
  TrainOptions options;
  options.batch_size = 0;
  EXPECT_EQ(Trainer::Create(model.get(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.batch_size = 8;
  options.optimizer.lr = std::nanf("");
  EXPECT_EQ(Trainer::Create(model.get(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nnlab
