// Training on real data. Thresholds are what a reference framework reaches
// on the same data and split (the table); the runs are seeded, so a
// failure is a regression, not noise.
#include <cstdio>
#include <memory>

#include "core/data/dataset.h"
#include "core/model/model.h"
#include "core/train/trainer.h"
#include "gtest/gtest.h"

namespace nnlab {
namespace {

ModelSpec Mlp(std::vector<int64_t> sizes) {
  ModelSpec spec;
  spec.input_shape = {sizes[0]};
  for (size_t i = 1; i < sizes.size(); ++i) {
    LayerSpec dense;
    dense.kind = "dense";
    dense.units = sizes[i];
    spec.layers.push_back(dense);
    if (i + 1 < sizes.size()) {
      LayerSpec relu;
      relu.kind = "relu";
      spec.layers.push_back(relu);
    }
  }
  spec.init = InitKind::kHe;
  spec.seed = 1;
  return spec;
}

// Trains and returns the best test accuracy seen at an epoch's end.
double Train(const ModelSpec& spec, const TrainTest& data,
             OptimizerConfig optimizer, int epochs, int64_t batch) {
  auto model = std::move(Model::Build(spec)).value();
  TrainOptions options;
  options.optimizer = optimizer;
  options.epochs = epochs;
  options.batch_size = batch;
  options.stats_every = 0;
  auto trainer = std::move(Trainer::Create(model.get(), options)).value();
  double best = 0;
  Trainer::Callbacks callbacks;
  callbacks.on_eval = [&](const StepStats& at, const EvalResult& r) {
    std::printf("  %s epoch %d: test loss %.4f accuracy %.4f\n",
                OptimizerName(optimizer.kind), at.epoch + 1, r.loss,
                r.accuracy);
    best = std::max(best, r.accuracy);
  };
  absl::Status s = trainer->Run(*data.train, data.test.get(), callbacks);
  EXPECT_TRUE(s.ok()) << s;
  return best;
}

class MnistTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Suites derived from this one set up again in the same process: the
    // data loaded first serves them all.
    if (data_ != nullptr) return;
    auto data = LoadMnist(DefaultDatasetsDir());
    ASSERT_TRUE(data.ok()) << data.status()
                           << " (run scripts/fetch_data.sh first)";
    data_ = new TrainTest(std::move(data).value());
  }
  static TrainTest* data_;
};
TrainTest* MnistTest::data_ = nullptr;

TEST_F(MnistTest, Mlp100WithAdamReaches93Percent) {
  OptimizerConfig adam;
  adam.kind = OptimizerKind::kAdam;
  adam.lr = 1e-3f;
  EXPECT_GE(Train(Mlp({784, 100, 10}), *data_, adam, 10, 64), 0.93);
}

struct OptimizerCase {
  OptimizerKind kind;
  float lr;
};

class EveryOptimizerTest : public MnistTest,
                           public ::testing::WithParamInterface<OptimizerCase> {
};

TEST_P(EveryOptimizerTest, Reaches90PercentIn5Epochs) {
  OptimizerConfig config;
  config.kind = GetParam().kind;
  config.lr = GetParam().lr;
  config.momentum = 0.9f;
  EXPECT_GE(Train(Mlp({784, 100, 10}), *data_, config, 5, 64), 0.90);
}

INSTANTIATE_TEST_SUITE_P(
    Lecture, EveryOptimizerTest,
    ::testing::Values(OptimizerCase{OptimizerKind::kSgd, 0.1f},
                      OptimizerCase{OptimizerKind::kMomentum, 0.01f},
                      OptimizerCase{OptimizerKind::kNesterov, 0.01f},
                      OptimizerCase{OptimizerKind::kAdagrad, 0.01f},
                      OptimizerCase{OptimizerKind::kRmsprop, 0.001f},
                      OptimizerCase{OptimizerKind::kAdadelta, 1.0f},
                      OptimizerCase{OptimizerKind::kAdam, 0.001f}),
    [](const ::testing::TestParamInfo<OptimizerCase>& info) {
      return std::string(OptimizerName(info.param.kind));
    });

TEST(FashionMnistTest, Mlp256WithAdamReaches85Percent) {
  auto data = LoadFashionMnist(DefaultDatasetsDir());
  ASSERT_TRUE(data.ok()) << data.status();
  OptimizerConfig adam;
  adam.kind = OptimizerKind::kAdam;
  adam.lr = 1e-3f;
  EXPECT_GE(Train(Mlp({784, 256, 10}), *data, adam, 5, 64), 0.85);
}

}  // namespace
}  // namespace nnlab
