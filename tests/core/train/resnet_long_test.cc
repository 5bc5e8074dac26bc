// The small residual CNN of the convolution issue, trained on real
// Fashion-MNIST images. The full run (60,000 images, 3 epochs, >= 85% in the
// issue) takes tens of minutes on one core and lives in
// examples/resnet_fashion.cc; CI trains the same network, optimizer and
// batch size on the first 10,000 training images for 2 epochs and requires
// 78% on the full 10,000-image test set (seeded, so a failure is a
// regression, not noise).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/data/dataset.h"
#include "core/kernels/blas.h"
#include "core/model/model.h"
#include "core/model/zoo.h"
#include "core/train/trainer.h"
#include "gtest/gtest.h"

namespace nnlab {
namespace {

constexpr double kBarAccuracy = 0.78;  // Measured: 0.8155.

TEST(ResNetFashionTest, SubsetTrainingReachesBar) {
  SetBlasThreads(1);
  auto data = LoadFashionMnist(DefaultDatasetsDir());
  ASSERT_TRUE(data.ok()) << data.status()
                         << " (run scripts/fetch_data.sh first)";
  std::unique_ptr<ImageDataset> train = data->train->Slice(0, 10000);
  ASSERT_TRUE(train->Reshape({1, 28, 28}).ok());
  ASSERT_TRUE(data->test->Reshape({1, 28, 28}).ok());

  auto model_or = Model::Build(FashionResidualCnn());
  ASSERT_TRUE(model_or.ok()) << model_or.status();
  Model* model = model_or->get();
  // Shortcuts: identity in block 1, strided 1x1 projections in 2 and 3.
  int projections = 0;
  for (const Param& p : model->Params()) {
    if (p.name.find(".proj.weight") != std::string::npos) ++projections;
  }
  EXPECT_EQ(projections, 2);

  TrainOptions options;
  options.optimizer.kind = OptimizerKind::kMomentum;
  options.optimizer.lr = 0.05f;
  options.optimizer.momentum = 0.9f;
  options.epochs = 2;
  options.batch_size = 64;
  options.stats_every = 50;
  auto trainer = std::move(Trainer::Create(model, options)).value();

  std::vector<double> accuracy;
  int64_t stats_seen = 0;
  Trainer::Callbacks callbacks;
  callbacks.on_step = [&](const StepStats& s) {
    if (s.layers.empty()) return absl::OkStatus();
    ++stats_seen;
    // Statistics cover conv kernels, batch-norm gamma/beta and the blocks.
    bool has_conv = false, has_bn = false, has_block = false;
    for (const LayerStats& l : s.layers) {
      has_conv |= l.kind == "conv2d" && l.grad_weight_norm > 0;
      has_bn |= l.kind == "batch_norm" && l.grad_bias_norm > 0;
      has_block |= l.kind == "residual" && l.grad_weight_norm > 0;
    }
    EXPECT_TRUE(has_conv && has_bn && has_block) << "step " << s.step;
    return absl::OkStatus();
  };
  callbacks.on_eval = [&](const StepStats& at, const EvalResult& r) {
    std::printf("  epoch %d: test loss %.4f accuracy %.4f\n", at.epoch + 1,
                r.loss, r.accuracy);
    accuracy.push_back(r.accuracy);
  };
  absl::Status s = trainer->Run(*train, data->test.get(), callbacks);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_GT(stats_seen, 0);
  ASSERT_EQ(accuracy.size(), 2u);
  EXPECT_GE(accuracy.back(), kBarAccuracy);

  // Inference uses the running statistics: evaluating twice gives the same
  // numbers, independent of batch composition.
  auto a = Evaluate(model, *data->test, 100);
  auto b = Evaluate(model, *data->test, 1000);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NEAR(a->accuracy, b->accuracy, 1e-9);
  EXPECT_NEAR(a->accuracy, accuracy.back(), 1e-9);
}

}  // namespace
}  // namespace nnlab
